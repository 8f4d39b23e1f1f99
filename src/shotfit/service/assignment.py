"""What the dispatcher tells a worker (a plain record: it travels to Ray workers by pickling), and what a
worker's process sets before it runs one."""

from __future__ import annotations

import os
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


def own_process(threads: int) -> None:
    """What a worker process (a job's task, a render chunk's task: entry points both) may set and a library
    call may not: torch's threads, MLflow's telemetry."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import torch  # the worker's own setting; torch is loaded by the job anyway

    if threads > 0:
        torch.set_num_threads(threads)
