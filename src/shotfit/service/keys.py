"""API keys: ``sfk_<key id>_<secret>``. Only a SHA-256 of the secret is stored, so a copy of the store
gives no key; the id part finds the row, and the secret is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from shotfit.errors import ShotfitError
from shotfit.service.store import ApiKey, Store, Studio
from shotfit.service.store.models import new_id, now

PREFIX = "sfk"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the studio and the key, with the key's limits (its own, else its studio's;
    None: the server's default)."""

    studio_id: str
    studio_name: str
    key_id: str
    max_concurrent_jobs: int | None
    requests_per_minute: int | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, studio: str) -> tuple[str, str]:
    """A new key for ``studio`` (created when new): (key id, the full key, to show once)."""
    name = studio.strip()
    if not name or len(name) > 200:
        raise ShotfitError("a studio name needs 1 to 200 characters", parameter="studio")
    secret = secrets.token_urlsafe(32)
    with store.session() as session:
        row = session.scalar(select(Studio).where(Studio.name == name))
        if row is None:
            row = Studio(id=new_id("studio"), name=name)
            session.add(row)
            session.flush()
        key_id = new_id("key")
        session.add(ApiKey(id=key_id, studio_id=row.id, secret_hash=_hash(secret)))
    return key_id, f"{PREFIX}_{key_id.removeprefix('key_')}_{secret}"


def revoke_key(store: Store, key_id: str) -> bool:
    """Revoke a key at once; False when no such key (or already revoked)."""
    with store.session() as session:
        row = session.get(ApiKey, key_id)
        if row is None or row.revoked is not None:
            return False
        row.revoked = now()
    return True


def list_keys(store: Store) -> list[tuple[str, str, str, str | None]]:
    """(key id, studio, created, revoked) of every key, oldest first."""
    with store.session() as session:
        rows = session.execute(select(ApiKey, Studio.name).join(Studio, Studio.id == ApiKey.studio_id)
                               .order_by(ApiKey.created)).all()
        return [(key.id, name, key.created.isoformat(timespec="seconds"),
                 None if key.revoked is None else key.revoked.isoformat(timespec="seconds")) for key, name in rows]


# one Core statement (no ORM objects): it runs on every request
_BY_ID = (select(ApiKey.secret_hash, ApiKey.revoked, ApiKey.studio_id, Studio.name,
                 ApiKey.max_concurrent_jobs, Studio.max_concurrent_jobs,
                 ApiKey.requests_per_minute, Studio.requests_per_minute)
          .join(Studio, Studio.id == ApiKey.studio_id))


def identify(connection: Connection, token: str) -> Caller | None:
    """The caller a bearer token belongs to, read on ``connection``; None for a malformed, unknown or revoked key."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    key_id = f"key_{parts[1]}"
    row = connection.execute(_BY_ID.where(ApiKey.id == key_id)).first()
    if row is None:
        return None
    secret_hash, revoked, studio_id, studio_name, key_jobs, studio_jobs, key_rate, studio_rate = row
    if revoked is not None or not hmac.compare_digest(secret_hash, _hash(parts[2])):
        return None
    return Caller(studio_id, studio_name, key_id, key_jobs if key_jobs is not None else studio_jobs,
                  key_rate if key_rate is not None else studio_rate)


def authenticate(store: Store, token: str) -> Caller | None:
    """The caller a bearer token belongs to; None for a malformed, unknown or revoked key."""
    with store.engine.connect() as connection:
        return identify(connection, token)
