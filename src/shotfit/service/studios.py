"""A studio's limits and retention as an operator sets them, and as a studio's key sees them with its usage.

Each limit is a column of the studio's row; None there means the server's default (``ServiceSettings``).
``max_concurrent_jobs`` and ``requests_per_minute`` bound each key of the studio (a key's own row value,
where set, wins); the others bound the studio as a whole.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import func, select

from shotfit.errors import ShotfitError
from shotfit.service import schemas
from shotfit.service.keys import Caller
from shotfit.service.ratelimit import requests_this_minute
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import ApiKey, Job, Shot, ShotFile, Store, Studio, Upload

# the operator's name of each setting -> (the studio's column, what it is, the smallest value)
SETTINGS: dict[str, tuple[str, str, float]] = {
    "max_jobs": ("max_concurrent_jobs", "jobs queued or running at once, per key", 1),
    "rate_per_minute": ("requests_per_minute", "requests a minute, per key (0: unlimited)", 0),
    "retention_days": ("retention_days", "days after which uploads and results are deleted", 0),
    "max_upload_bytes": ("max_file_bytes", "bytes of the largest file", 1),
    "max_files": ("max_files", "files per shot and role", 1),
    "max_storage_bytes": ("max_storage_bytes", "bytes of all the studio's files together", 1),
}
DEFAULT = "default"  # the value that hands a setting back to the server's default
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_setting(name: str, text: str) -> int | float | None:
    """An operator's value for setting ``name``: a whole number (bytes may carry a unit: ``2GiB``, ``500MB``),
    a number of days for ``retention_days``, or ``default`` (None: the server's default)."""
    if name not in SETTINGS:
        raise ShotfitError(f"no studio setting {name!r}; the settings are {', '.join(SETTINGS)}")
    value = text.strip()
    if value.lower() == DEFAULT:
        return None
    _, meaning, least = SETTINGS[name]
    number: float
    if name.endswith("_bytes") and (sized := _SIZE.match(value)):
        unit = (sized.group(2) or "").lower().removesuffix("b")
        number = float(sized.group(1)) * _UNITS[unit]
    else:
        try:
            number = float(value)
        except ValueError:
            raise ShotfitError(f"{name} takes a number ({meaning}) or {DEFAULT!r}, not {text!r}",
                               parameter=name) from None
    if not math.isfinite(number) or number < least:
        raise ShotfitError(f"{name} must be at least {least:g} ({meaning}), not {text!r}", parameter=name)
    if name == "retention_days":
        return number
    if number != int(number):
        raise ShotfitError(f"{name} takes a whole number ({meaning}), not {text!r}", parameter=name)
    return int(number)


@dataclass(frozen=True)
class StudioRow:
    """A studio as ``studios list`` shows it: its own settings (None: the server's default) and what it holds."""

    name: str
    settings: dict[str, int | float | None]
    active_keys: int
    shots: int
    storage_bytes: int


def set_limits(store: Store, studio: str, changes: Mapping[str, int | float | None]) -> StudioRow:
    """Set some of a studio's settings (None: back to the server's default); the studio as it is now."""
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ShotfitError(f"no studio setting {unknown[0]!r}; the settings are {', '.join(SETTINGS)}")
    with store.session() as session:
        row = session.scalar(select(Studio).where(Studio.name == studio.strip()))
        if row is None:
            raise ShotfitError(f"no studio named {studio!r} (a studio is made with its first key)")
        for name, value in changes.items():
            setattr(row, SETTINGS[name][0], value)
    return _rows(store, studio.strip())[0]


def list_studios(store: Store) -> list[StudioRow]:
    """Every studio, by name."""
    return _rows(store, None)


def _rows(store: Store, only: str | None) -> list[StudioRow]:
    keys = (select(ApiKey.studio_id, func.count().label("n")).where(ApiKey.revoked.is_(None))
            .group_by(ApiKey.studio_id).subquery())
    shots = select(Shot.studio_id, func.count().label("n")).group_by(Shot.studio_id).subquery()
    used = select(Upload.studio_id, func.sum(Upload.size).label("n")).group_by(Upload.studio_id).subquery()
    query = (select(Studio, keys.c.n, shots.c.n, used.c.n)
             .outerjoin(keys, keys.c.studio_id == Studio.id).outerjoin(shots, shots.c.studio_id == Studio.id)
             .outerjoin(used, used.c.studio_id == Studio.id).order_by(Studio.name))
    if only is not None:
        query = query.where(Studio.name == only)
    with store.session() as session:
        return [StudioRow(studio.name, {name: getattr(studio, column) for name, (column, _, _) in SETTINGS.items()},
                          int(n_keys or 0), int(n_shots or 0), int(n_bytes or 0))
                for studio, n_keys, n_shots, n_bytes in session.execute(query).all()]


def studio_view(store: Store, settings: ServiceSettings, caller: Caller) -> schemas.StudioInfo:
    """What the calling key may do and has used: the limits in force (the studio's or the server's)."""
    defaults = settings.limits
    with store.session() as session:
        studio = session.get(Studio, caller.studio_id)
        assert studio is not None  # the caller's key was just read with it
        jobs = session.scalar(select(func.count()).select_from(Job).where(
            Job.key_id == caller.key_id, Job.state.in_(("queued", "running")))) or 0
        shots = session.scalar(select(func.count()).select_from(Shot).where(Shot.studio_id == studio.id)) or 0
        files = session.scalar(select(func.count()).select_from(ShotFile).where(ShotFile.studio_id == studio.id)) or 0
        used = session.scalar(select(func.coalesce(func.sum(Upload.size), 0)).where(
            Upload.studio_id == studio.id)) or 0
        requests = requests_this_minute(session.connection(), caller.key_id, time.time())
    limits = schemas.StudioLimits(
        max_concurrent_jobs=caller.max_concurrent_jobs or defaults.max_concurrent_jobs,
        requests_per_minute=caller.requests_per_minute if caller.requests_per_minute is not None
        else defaults.requests_per_minute,
        max_file_bytes=studio.max_file_bytes or defaults.max_file_bytes,
        max_files=studio.max_files or defaults.max_files,
        max_storage_bytes=studio.max_storage_bytes or defaults.max_storage_bytes,
        max_pixels=defaults.max_pixels,
        retention_days=studio.retention_days if studio.retention_days is not None else settings.retention_days)
    usage = schemas.StudioUsage(jobs_active=int(jobs), requests_this_minute=requests, shots=int(shots),
                                files=int(files), storage_bytes=int(used))
    return schemas.StudioInfo(studio=studio.name, key_id=caller.key_id, limits=limits, usage=usage)
