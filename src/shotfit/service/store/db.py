"""Opening the store: an engine for a SQLite file or a PostgreSQL URL, migrated to the newest schema.

SQLite runs in WAL mode with a busy timeout, so the server's threads and its workers (other
processes on the same machine) read while one writes. PostgreSQL URLs (``postgresql://``) use psycopg 3.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from shotfit.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")


def engine_url(url: str) -> str:
    """The SQLAlchemy URL for a store URL: ``postgresql://`` goes through psycopg 3."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Store:
    """An engine and its sessions. ``session()`` is a unit of work: committed on success, rolled back on error."""

    def __init__(self, url: str) -> None:
        self.url = url
        full = engine_url(url)
        try:
            parsed = make_url(full)
        except Exception:  # sqlalchemy raises ArgumentError, and others for odd strings
            raise ConfigError(f"database URL {url!r} is not a SQLAlchemy URL (sqlite:///PATH or "
                              "postgresql://USER@HOST/DB)", parameter="db") from None
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # a pool that holds a connection for each of the server's threads (AnyIO's 40, and the dispatcher,
            # housekeeper and webhook threads): a connection opened past it would be closed again at once, and
            # each new one costs its pragmas and the schema read
            self.engine: Engine = create_engine(full, connect_args={"check_same_thread": False, "timeout": 30},
                                                pool_size=48, max_overflow=16)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        elif self.dialect == "postgresql":
            self.engine = create_engine(full, pool_pre_ping=True, pool_size=20, max_overflow=40)
        else:
            raise ConfigError(f"database URL {url!r}: the store runs on sqlite or postgresql, not {self.dialect}",
                              parameter="db")
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = threading.Lock() if self.dialect == "sqlite" else None

    @contextlib.contextmanager
    def write_turn(self) -> Iterator[None]:
        """Hold this process's turn to write, on SQLite: around a write that many threads make at once.

        SQLite lets one connection write at a time, and one kept waiting polls in its busy handler, sleeping
        1, 2, 5 ... up to 100 ms between tries, so 50 threads counting requests at once left some waiting
        100-200 ms for a lock held a fraction of a millisecond. Threads of one process queue here instead
        and are woken as the turn is free; other processes (workers) still meet the busy handler. A no-op on
        PostgreSQL, whose writers wait on the row itself.
        """
        if self._writer is None:
            yield
            return
        with self._writer:
            yield

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic; creates the tables on a new database)."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str, migrate: bool = True) -> Store:
    """The store at ``url``, migrated to the newest schema unless ``migrate`` is False."""
    store = Store(url)
    if migrate:
        store.migrate()
    return store
