"""API keys: ``sfk_<key id>_<secret>``. Only a SHA-256 of the secret is stored, so a copy of the store
gives no key; the id part finds the row, and the secret is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from shotfit.errors import ShotfitError
from shotfit.service.store import ApiKey, Store, Studio
from shotfit.service.store.models import new_id, now

PREFIX = "sfk"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: the studio and the key."""

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


def authenticate(store: Store, token: str) -> Caller | None:
    """The caller a bearer token belongs to; None for a malformed, unknown or revoked key."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    with store.session() as session:
        row = session.execute(select(ApiKey, Studio.name).join(Studio, Studio.id == ApiKey.studio_id)
                              .where(ApiKey.id == f"key_{parts[1]}")).first()
    if row is None:
        return None
    key, studio_name = row
    if key.revoked is not None or not hmac.compare_digest(key.secret_hash, _hash(parts[2])):
        return None
    return Caller(key.studio_id, studio_name, key.id, key.max_concurrent_jobs, key.requests_per_minute)
