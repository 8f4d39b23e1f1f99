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
from typing import Any, Protocol

from sqlalchemy import select

from shotfit.service.assignment import Assignment
from shotfit.service.claims import claim, requeue, requeue_own, requeue_stale, vouch
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import Job, Store
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
            queued = session.execute(select(Job.id, Job.kind).where(Job.state == "queued").order_by(Job.created)
                                     .limit(free * 2)).all()
        for job_id, kind in queued:
            if free <= 0:
                break
            attempt = claim(self.store, job_id, f"{self.server}/{job_id}")
            if attempt is None:
                continue
            enqueue(self.store, job_id, "job.running")
            assignment = Assignment(job_id, attempt, self.store.url, str(self.settings.storage),
                                    self.settings.heartbeat_s, self.settings.cpus_per_job, self.settings.tracking_store,
                                    self.settings.files, kind)
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
        self._tracking = settings.tracking_store
        self._task = ray.remote(num_cpus=settings.cpus_per_job, num_gpus=settings.gpus_per_job,
                                max_retries=0)(work or run_assignment)
        self._warm = ray.remote(num_cpus=settings.cpus_per_job, num_gpus=settings.gpus_per_job)(warm_worker)

    def submit(self, assignment: Assignment) -> Handle:
        # a sweep's task only drives Tune: its trials take the CPUs (and GPUs), so it holds none they wait for
        task = self._task.options(num_cpus=0, num_gpus=0) if assignment.kind == "sweep" else self._task
        return _RayHandle(self._ray, task.remote(assignment))

    def warm(self) -> None:
        """Start the workers' processes and their imports now, so a first job waits for neither."""
        prepare_tracking(self._tracking)
        for _ in range(self.capacity):
            self._warm.remote()


def prepare_tracking(uri: str) -> None:
    """Make the MLflow store before any job: a new SQLite store takes seconds (tables, migrations), and two
    jobs making it at once would leave one untracked."""
    try:
        import mlflow  # the jobs' tracking store: only a server that runs jobs prepares it

        mlflow.MlflowClient(uri).search_experiments(max_results=1)
    except Exception as err:  # an unreachable tracking server: each job reports it in its own words
        log.warning("MLflow store %s is not ready: %s", uri, str(err).splitlines()[0] if str(err) else err)


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
