"""A render job shared out on Ray: the frames still to render, cut into ``render.workers`` runs of
neighbours (the library's own :func:`~shotfit.infer.render.chunks`), each rendered by a Ray task of its own
beside the job's task (frames are independent and deterministic, so a chunk writes the bytes the plain
render would).

Each chunk records itself in the store as it starts (``job_chunks``: its process and host, attempt and frames;
its end when its task returns), fetches the job's files from the store and puts back each frame it writes,
then records the frame in the store (``job_frames``): chunks may run on other machines, so the job's task counts progress
from the store, not from its own folder. A chunk stops when the job is cancelled or its attempt is over
(asked of the store once a heartbeat). A chunk's own error fails the job in its one line; a chunk whose
worker died queues the job again once the attempt's other chunks have stopped, and the next attempt renders
only the frames still missing.

The same chunked render without the server is :mod:`shotfit.workflows.chunked`. The two share the counting
and the cutting, and each chunk's plain render; not the waiting: there, progress is the files that appear
in the caller's folder, the caller asks ``should_stop``, a failed chunk lets the others finish, and a lost
one is retried by Ray; here, the chunks may be on other machines, stop themselves, and a failure ends the
attempt at once (a new attempt, not a retry, renders what is missing).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update

from shotfit.infer.render import FrameDone, chunks
from shotfit.service import jobwork
from shotfit.service.assignment import Assignment, own_process
from shotfit.service.claims import requeue
from shotfit.service.jobfiles import job_folders, put_back, stage
from shotfit.service.store import Job, JobChunk, JobFrame, Store, open_store
from shotfit.service.store.models import now

log = logging.getLogger(__name__)

LAST_FRAME_S = 60.0  # how long a chunk may take over its frame in hand once its attempt is over (a 4K frame, slowly)


def render_chunk(assignment: Assignment, frames: list[int]) -> bool:
    """A Ray task: render ``frames`` of a render job into its folder (frames there already are skipped),
    recording each frame written; True when it stopped early (cancelled, or the attempt is over)."""
    own_process(assignment.threads)
    store = open_store(assignment.db_url, migrate=False)
    try:
        with store.session() as session:
            job = session.get(Job, assignment.job_id)
            if job is None:
                return True
            folders = job_folders(assignment, job.studio_id, job.kind, job.shot_id, job.run_id)
            studio_id, settings = job.studio_id, dict(job.settings)
            # which process renders these frames, from where: what an operator (and a test's kill -9) reads
            session.add(JobChunk(job_id=assignment.job_id, attempt=assignment.attempt, first_frame=frames[0],
                                 frames=list(frames), pid=os.getpid(), host=socket.gethostname()))
        try:
            return _render(store, assignment, folders, studio_id, settings, frames)
        finally:
            _record_end(store, assignment, frames[0])
    finally:
        store.close()


def _render(store: Store, assignment: Assignment, folders: jobwork.JobFolders, studio_id: str,
            settings: dict[str, Any], frames: list[int]) -> bool:
    """The chunk's plain render, each frame put back and then recorded; True when it stopped early."""
    watch = _ChunkWatch(store, assignment)
    mirror = stage(assignment, studio_id, folders, fresh=False)

    def written(done: FrameDone) -> None:
        if not done.skipped:
            put_back(mirror, done.path)  # the frame is in the store before the store counts it
            with store.session() as session:
                session.add(JobFrame(job_id=assignment.job_id, frame=done.frame, attempt=assignment.attempt))

    return jobwork.render(folders, settings, written, watch.should_stop, frames=frames).stopped


def _record_end(store: Store, assignment: Assignment, first_frame: int) -> None:
    """The chunk's task is returning (its frames done, stopped, or failed): its process is Ray's again."""
    try:
        with store.session() as session:
            session.execute(update(JobChunk).where(
                JobChunk.job_id == assignment.job_id, JobChunk.attempt == assignment.attempt,
                JobChunk.first_frame == first_frame).values(ended=now()).execution_options(synchronize_session=False))
    except Exception:  # the store away for a moment: the chunk's own outcome (its error) matters more
        log.exception("job %s: the end of the chunk from frame %d was not recorded", assignment.job_id, first_frame)


class _ChunkWatch:
    """A chunk's ``should_stop``: the job cancelled, its attempt over, or this worker's Ray node gone
    (the store is asked at most once a heartbeat)."""

    def __init__(self, store: Store, assignment: Assignment) -> None:
        self.store, self.assignment = store, assignment
        self.parent, self.asked, self.stop = os.getppid(), 0.0, False

    def should_stop(self) -> bool:
        if self.stop or os.getppid() != self.parent:
            return True
        if time.monotonic() - self.asked >= self.assignment.heartbeat_s:
            self.asked = time.monotonic()
            with self.store.session() as session:
                job = session.get(Job, self.assignment.job_id)
                self.stop = (job is None or job.cancel_requested or job.attempt != self.assignment.attempt
                             or job.state != "running")
        return self.stop


def render_in_chunks(store: Store, assignment: Assignment, folders: jobwork.JobFolders, settings: dict[str, Any],
                     workers: int, report: Callable[..., None], should_stop: Callable[[], bool],
                     superseded: threading.Event) -> bool:
    """The frames still to render, shared out in ``workers`` runs rendered by Ray tasks at once; True when
    stopped early. Called in the job's task (a Ray worker), with its attempt's ``report`` (frames done,
    fps, ETA), ``should_stop`` and ``superseded``: set when a chunk's worker died and the job is queued
    again, which ends this attempt."""
    import ray  # the worker's engine: chunks run as Ray tasks beside this one (this process is a Ray worker)

    pending, total = jobwork.pending_frames(folders, settings)
    before, started = total - len(pending), time.monotonic()
    task = ray.remote(num_cpus=max(assignment.threads, 1), max_retries=0)(render_chunk)
    refs = [task.remote(assignment, chunk) for chunk in chunks(pending, workers)]
    stopped = False
    try:
        while refs:
            ready, refs = ray.wait(refs, num_returns=1, timeout=1.0)
            for ref in ready:
                stopped = ray.get(ref) or stopped
            written = frames_written(store, assignment)
            speed = written / max(time.monotonic() - started, 1e-6)
            report(frames_done=before + written, frames_total=total, fps=speed,
                   eta_s=(len(pending) - written) / speed if speed > 0 else None)
    except ray.exceptions.RayTaskError as err:  # a chunk's own error (a ShotfitError, say): the job's
        raise err.cause from None
    except ray.exceptions.RayError as err:  # a chunk's worker died: queue the job again
        log.warning("job %s: a render chunk was lost (%s)", assignment.job_id, type(err).__name__)
        requeue(store, assignment.job_id, assignment.attempt, "a render chunk's worker died")
        superseded.set()
        _let_the_others_stop(ray, refs, assignment.heartbeat_s + LAST_FRAME_S)
        refs = []
        return True
    finally:
        for ref in refs:
            ray.cancel(ref)
    return stopped or should_stop()


def _let_the_others_stop(ray: Any, refs: list[Any], wait_s: float) -> None:
    """After a lost chunk, the attempt's other chunks see the job queued at their next heartbeat and stop after
    the frame in hand, recorded. Waiting for them holds this attempt's lock on the job folder until they have,
    so the next attempt never counts the frames still to render while one of them is still writing one (it
    would render that frame again). One still running after ``wait_s`` is ended by force: its frame in hand
    is never torn (written atomically), only rendered again by the next attempt."""
    if not refs:
        return
    _, running = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
    for ref in running:
        log.warning("a render chunk did not stop within %.0f s of its job being queued again: ended", wait_s)
        ray.cancel(ref, force=True)


def frames_written(store: Store, assignment: Assignment) -> int:
    """The frames this attempt's chunks recorded in the store (each one put back first)."""
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(JobFrame).where(
            JobFrame.job_id == assignment.job_id, JobFrame.attempt == assignment.attempt)) or 0
