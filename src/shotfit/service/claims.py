"""A job's life in the store, in single statements whose row counts say who won: claiming a queued job,
vouching for a running one, queueing again one whose worker or server is gone.

An attempt number fences every write: a job claimed again gets ``attempt + 1``, and statements about
an older attempt change nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select, update

from shotfit.service.store import Job, Store
from shotfit.service.store.models import now

log = logging.getLogger(__name__)


def claim(store: Store, job_id: str, worker: str) -> int | None:
    """Take a queued job for ``worker`` atomically; its new attempt number, or None when another took it."""
    with store.session() as session:
        stamp = now()
        done = session.execute(update(Job).where(Job.id == job_id, Job.state == "queued").values(
            state="running", attempt=Job.attempt + 1, worker=worker, heartbeat=stamp, updated=stamp,
            started=func.coalesce(Job.started, stamp)).execution_options(synchronize_session=False))
        if done.rowcount != 1:
            return None
        attempt = session.scalar(select(Job.attempt).where(Job.id == job_id))
    return attempt


def requeue(store: Store, job_id: str, attempt: int, why: str) -> bool:
    """Queue a running job again, if it is still at ``attempt`` (a later attempt is left alone)."""
    with store.session() as session:
        done = session.execute(update(Job).where(Job.id == job_id, Job.state == "running", Job.attempt == attempt)
                               .values(state="queued", worker=None, updated=now())
                               .execution_options(synchronize_session=False))
    if done.rowcount == 1:
        log.warning("job %s (attempt %d) queued again: %s", job_id, attempt, why)
    return done.rowcount == 1


def vouch(store: Store, jobs: list[tuple[str, int]]) -> None:
    """Heartbeats for the attempts this server's runner still holds alive (a worker starting up, which may
    take a while to import PyTorch, or one busy in a long step): a job goes stale only when its server
    is gone; a dead worker is noticed through its runner's handle."""
    if not jobs:
        return
    stamp = now()
    with store.session() as session:
        for job_id, attempt in jobs:
            session.execute(update(Job).where(Job.id == job_id, Job.attempt == attempt, Job.state == "running")
                            .values(heartbeat=stamp).execution_options(synchronize_session=False))


def requeue_stale(store: Store, stale_s: float) -> list[str]:
    """Queue again every running job whose heartbeat is older than ``stale_s``; their ids."""
    cutoff = now() - timedelta(seconds=stale_s)
    with store.session() as session:
        rows = session.execute(select(Job.id, Job.attempt).where(Job.state == "running", Job.heartbeat < cutoff)).all()
    return [job_id for job_id, attempt in rows if requeue(store, job_id, attempt, f"no heartbeat for {stale_s:.0f} s")]


def requeue_own(store: Store, server: str) -> list[str]:
    """At start: jobs this server had claimed before it restarted have no worker left; queue them again."""
    with store.session() as session:
        rows = session.execute(select(Job.id, Job.attempt, Job.worker).where(Job.state == "running")).all()
    return [job_id for job_id, attempt, worker in rows
            if (worker or "").startswith(server + "/") and requeue(store, job_id, attempt, "the server restarted")]
