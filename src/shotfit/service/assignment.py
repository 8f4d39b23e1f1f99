"""What the dispatcher tells a worker (a plain record: it travels to Ray workers by pickling)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    """What a worker is told: which job, which attempt of it, and where the store and files are."""

    job_id: str
    attempt: int
    db_url: str
    storage: str
    heartbeat_s: float
    threads: int
    tracking_uri: str | None = None
    files: str | None = None  # the store URL of the studios' files (None: under ``storage``)
    kind: str = ""  # the job's kind: a sweep's task is only Tune's driver, and asks Ray for no CPU
