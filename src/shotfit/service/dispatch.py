"""The dispatcher: claims queued jobs from the store and hands each to a worker; queues again the jobs whose
worker is gone.

Claiming is one ``UPDATE jobs SET state='running', attempt=attempt+1 ... WHERE id=? AND state='queued'``
whose row count says who won, so two servers on one store never run a job twice. A running job tells
the store it is alive every few seconds (its heartbeat); the server whose runner holds the job vouches for it too (a
worker may take seconds to start). One silent for ``stale_s`` (its server is gone), one whose worker
died, or one claimed by this server before it restarted, is queued again, and its next attempt resumes from what the last
one wrote (the run's checkpoint, the frames on disk). A worker whose attempt was taken over stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import select, update

from shotfit.service.assignment import Assignment
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import Job, Store
from shotfit.service.store.models import now
from shotfit.service.webhooks import enqueue

log = logging.getLogger(__name__)


class Handle(Protocol):
    """A job handed to a worker: ``done()`` once it ended; ``lost()`` says whether it died without finishing."""

    def done(self) -> bool: ...

    def lost(self) -> bool: ...


class JobRunner(Protocol):
    """Where jobs run. :class:`RayRunner` runs each as a Ray task."""

    capacity: int

    def submit(self, assignment: Assignment) -> Handle: ...

    def warm(self) -> None: ...


def server_id(port: int | None = None) -> str:
    """This server's name in the store (host, and port when known): the prefix of the jobs it claims."""
    return f"{socket.gethostname()}:{port if port is not None else os.getpid()}"


def claim(store: Store, job_id: str, worker: str) -> int | None:
    """Take a queued job for ``worker`` atomically; its new attempt number, or None when another took it."""
    with store.session() as session:
        stamp = now()
        done = session.execute(update(Job).where(Job.id == job_id, Job.state == "queued").values(
            state="running", attempt=Job.attempt + 1, worker=worker, heartbeat=stamp, updated=stamp,
            started=stamp).execution_options(synchronize_session=False))
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


class Dispatcher:
    """A daemon thread: every ``poll_s`` it queues lost jobs again and claims queued ones up to the runner's capacity."""

    def __init__(self, store: Store, settings: ServiceSettings, runner: JobRunner, server: str | None = None) -> None:
        self.store, self.settings, self.runner = store, settings, runner
        self.server = server or settings.server or server_id()
        self.running: dict[str, tuple[int, Handle]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shotfit-dispatcher", daemon=True)

    def start(self) -> None:
        requeue_own(self.store, self.server)
        self.runner.warm()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the store away for a moment: the next round tries again
                log.exception("dispatching failed this round")
            self._stop.wait(self.settings.poll_s)

    def tick(self) -> None:
        """One round: forget finished handles (queueing again the lost), queue stale jobs, claim new ones."""
        alive = []
        for job_id, (attempt, handle) in list(self.running.items()):
            if handle.done():
                del self.running[job_id]
                if handle.lost():
                    requeue(self.store, job_id, attempt, "its worker died")
            else:
                alive.append((job_id, attempt))
        vouch(self.store, alive)
        requeue_stale(self.store, self.settings.stale_s)
        free = self.runner.capacity - len(self.running)
        if free <= 0:
            return
        with self.store.session() as session:
            queued = session.scalars(select(Job.id).where(Job.state == "queued").order_by(Job.created)
                                     .limit(free * 2)).all()
        for job_id in queued:
            if free <= 0:
                break
            attempt = claim(self.store, job_id, f"{self.server}/{job_id}")
            if attempt is None:
                continue
            enqueue(self.store, job_id, "job.running")
            assignment = Assignment(job_id, attempt, self.store.url, str(self.settings.storage),
                                    self.settings.heartbeat_s, self.settings.cpus_per_job, self.settings.tracking_uri)
            self.running[job_id] = (attempt, self.runner.submit(assignment))
            free -= 1


class RayRunner:
    """Runs each job as a Ray task (``num_cpus``/``num_gpus`` as the settings say) in a Ray that the entry
    point started or connected to. Ray does not retry a job's task: the dispatcher queues it again, and
    the next attempt resumes."""

    def __init__(self, settings: ServiceSettings, work: Callable[[Assignment], str] | None = None) -> None:
        import ray  # Ray is the service's engine, imported when jobs are run (seconds to import)

        # the task imports the library's heavy layers (PyTorch): only a server that runs jobs loads them
        from shotfit.service.worker import run_assignment, warm_worker

        self._ray = ray
        self.capacity = settings.workers
        self._task = ray.remote(num_cpus=settings.cpus_per_job, num_gpus=settings.gpus_per_job,
                                max_retries=0)(work or run_assignment)
        self._warm = ray.remote(num_cpus=settings.cpus_per_job, num_gpus=settings.gpus_per_job)(warm_worker)

    def submit(self, assignment: Assignment) -> Handle:
        return _RayHandle(self._ray, self._task.remote(assignment))

    def warm(self) -> None:
        """Start the workers' processes and their imports now, so a first job waits for neither."""
        for _ in range(self.capacity):
            self._warm.remote()


class _RayHandle:
    def __init__(self, ray: Any, ref: Any) -> None:
        self._ray, self._ref, self._lost = ray, ref, False

    def done(self) -> bool:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        if not ready:
            return False
        try:
            self._ray.get(self._ref)
        except Exception as err:  # the worker process died (killed, out of memory): no state was written
            log.warning("worker ended without finishing: %s", str(err).splitlines()[0] if str(err) else err)
            self._lost = True
        return True

    def lost(self) -> bool:
        return self._lost
