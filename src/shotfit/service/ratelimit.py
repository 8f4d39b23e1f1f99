"""A key's requests a minute, counted in the store so that every server on it shares one budget.

Each key has one row in ``rate_counts``: the minute it counts (minutes since 1970, UTC) and the requests
in it. A request adds itself with one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (SQLite 3.35+,
PostgreSQL 9.5+): the database applies it atomically, so two servers behind a load balancer can neither
lose a count nor both admit the request that fills the budget. A new minute starts the count again in the
same statement; a server whose clock lags another's counts into the newer minute rather than resetting it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, case, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shotfit.service.store import RateCount

WINDOW_S = 60


@dataclass(frozen=True)
class Counted:
    """This request's place in its key's minute."""

    count: int
    window: int

    def retry_after(self, at: float) -> int:
        """Whole seconds from ``at`` (seconds since 1970) until the counted minute ends; at least 1."""
        return max(1, min(WINDOW_S, int((self.window + 1) * WINDOW_S - at + 0.999)))


def _upsert(dialect: str) -> Any:
    """The counting statement in ``dialect`` (built once: SQLAlchemy then reuses its compiled form)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = RateCount.__table__
    statement = insert(RateCount).values(key_id=bindparam("key_id"), window=bindparam("window"), count=1)
    same_or_older = statement.excluded.window <= table.c.window
    return statement.on_conflict_do_update(
        index_elements=[table.c.key_id],
        set_={"count": case((same_or_older, table.c.count + 1), else_=1),
              "window": case((same_or_older, table.c.window), else_=statement.excluded.window)},
    ).returning(table.c.count, table.c.window)


_STATEMENTS = {dialect: _upsert(dialect) for dialect in ("sqlite", "postgresql")}


def count_request(connection: Connection, dialect: str, key_id: str, at: float) -> Counted:
    """Count one request of ``key_id`` at ``at`` (seconds since 1970) on ``connection``, in its transaction.

    On PostgreSQL the count is committed without waiting for the disk (``synchronous_commit`` off for this
    transaction only): a crash may forget the last few counts, which costs nothing, and a request does not
    wait for an fsync.
    """
    if dialect == "postgresql":
        connection.execute(text("SET LOCAL synchronous_commit TO OFF"))
    count, window = connection.execute(_STATEMENTS[dialect], {"key_id": key_id, "window": int(at // WINDOW_S)}).one()
    return Counted(count, window)


def requests_this_minute(connection: Connection, key_id: str, at: float) -> int:
    """How many requests ``key_id`` has made in the minute of ``at`` (0 when its last was in an earlier one)."""
    row = connection.execute(RateCount.__table__.select().where(RateCount.key_id == key_id)).first()
    return 0 if row is None or row.window < int(at // WINDOW_S) else int(row.count)
