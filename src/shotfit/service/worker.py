"""A job's worker: the entry point a Ray task runs. It owns its process (threads, environment), runs the
job through :mod:`shotfit.service.jobwork` (that is, :mod:`shotfit.api`), and reports to the store:
progress, a heartbeat, the final state and a one-line error.

With the studios' files in a store (``files``: S3 or any fsspec URL), a job works on local copies: its
inputs (the shot, the run it renders or exports, what an earlier attempt left) are fetched to the same
layout under the local storage folder before it starts, and what it writes is put back as it goes (each
rendered frame at once, the rest at every heartbeat) and before its final state is written, so a result
the API lists is in the store, and an attempt on another machine resumes from what the last one put. A
training job's newest contact sheet is named in its record once the sheet is in the store: what a client
watching the job reads, with no listing of the store. Where the job's files are, and their fetching and
putting back, are :mod:`.jobfiles`; a render shared out on several Ray workers is :mod:`.render_chunks`.

It writes only while the job is still at its own attempt: a worker that was thought lost, and
replaced, finds so at its next heartbeat and stops without touching the job's record.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from shotfit import api
from shotfit.errors import ShotfitError
from shotfit.infer.render import FrameDone
from shotfit.runs.folder import RunFolder
from shotfit.service import jobwork, render_chunks, sweepjob
from shotfit.service.assignment import Assignment, own_process
from shotfit.service.jobfiles import job_folders, put_back, stage
from shotfit.service.storage import Mirror
from shotfit.service.store import Job, JobFrame, Store, open_store
from shotfit.service.store.models import now
from shotfit.service.webhooks import enqueue

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 0.5  # the store hears of progress at most this often (and at the end)


def run_assignment(assignment: Assignment) -> str:
    """Run one attempt of a job; the state it ended in (``superseded`` when another attempt took it over)."""
    own_process(assignment.threads)
    store = open_store(assignment.db_url, migrate=False)
    try:
        return Attempt(store, assignment).run()
    finally:
        store.close()


def newest_stored_sheet(mirror: Mirror, run: RunFolder) -> str | None:
    """The name of the run's newest contact sheet that the store holds too (``mirror`` put or fetched it), as
    :func:`jobwork.latest_preview` orders them; None before the first. Read from the local copy and what the
    mirror knows: the store is not asked."""
    if not run.previews.is_dir():
        return None
    sheets = {f"run/previews/{sheet.name}": sheet.name for sheet in sorted(run.previews.glob("*.png"))
              if not sheet.name.startswith(".") and mirror.stores(sheet)}  # hidden: the write guard's temporaries
    return jobwork.latest_preview(sheets)


def warm_worker() -> None:
    """Import what a job needs (PyTorch, the trainer, the renderer) in a worker process before any job comes."""
    own_process(0)
    # start-up time is the point: these are what a first job would otherwise wait for
    from shotfit.workflows import exporting, rendering, training  # noqa: F401


class _Stopped(Exception):
    """Raised from a progress callback to stop a library call that takes no ``should_stop``."""


class Attempt:
    """One attempt of one job, and its reports to the store."""

    def __init__(self, store: Store, assignment: Assignment) -> None:
        self.store, self.assignment = store, assignment
        self.job_id, self.attempt = assignment.job_id, assignment.attempt
        self.cancelled = threading.Event()
        self.superseded = threading.Event()
        self._progress: dict[str, Any] = {}
        self._dirty = False
        self._last_write = 0.0
        self._lock = threading.Lock()
        self._reporting = threading.Lock()  # one write at a time: a slower older one never lands after a newer
        self._beating = threading.Event()
        self._mlflow_seen = False
        self._run = Path()
        self._mirror: Mirror | None = None
        self._kind = ""
        self._preview: str | None = None  # the contact sheet the job's record names (its ``preview``)
        self._trials: dict[str, str] = {}

    # --- reports -----------------------------------------------------------------------------------

    def _mine(self) -> Any:
        return (Job.id == self.job_id) & (Job.attempt == self.attempt) & (Job.state == "running")

    def _write(self, **values: Any) -> bool:
        with self.store.session() as session:
            done = session.execute(update(Job).where(self._mine()).values(updated=now(), **values)
                                   .execution_options(synchronize_session=False))
        if done.rowcount != 1:
            self.superseded.set()
        return done.rowcount == 1

    def heartbeat(self) -> None:
        """Tell the store this attempt lives (with any progress not yet written, and a newer contact sheet in the
        storage), and hear of a cancel."""
        with self._reporting:
            with self._lock:
                values: dict[str, Any] = {"heartbeat": now()}
                if self._dirty:
                    values["progress"], self._dirty, self._last_write = dict(self._progress), False, time.monotonic()
            values.update(self._new_preview())
            if not self._write(**values):
                return
            self._preview = values.get("preview", self._preview)
        with self.store.session() as session:
            if session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)):
                self.cancelled.set()

    def _beat(self) -> None:
        parent = os.getppid()
        while not self._beating.wait(self.assignment.heartbeat_s):
            if os.getppid() != parent:  # Ray's node process died (its server was killed): this attempt is orphaned
                log.warning("job %s: the worker's Ray node is gone; stopping", self.job_id)
                self.superseded.set()
                return
            try:
                self.heartbeat()
                if self._mirror is not None:
                    self._mirror.push()  # checkpoints, previews, frames: what a client or a next attempt reads
            except Exception:  # the store away for a moment: the next beat tries again
                log.exception("heartbeat of job %s failed", self.job_id)

    def _new_preview(self) -> dict[str, Any]:
        """``{"preview": name}`` when the newest contact sheet of the run that the storage holds too (put there,
        or fetched from there by this attempt) is not the one the job's record names; else nothing. Clients read
        the record, so a sheet is named only once it can be served, and the previews folder in the store is
        never listed to find it (there, each listing is a request)."""
        if self._kind != "train" or self._mirror is None:  # before staging, the local copy is not the store's
            return {}
        newest = newest_stored_sheet(self._mirror, RunFolder(self._run))
        return {} if newest == self._preview else {"preview": newest}

    def should_stop(self) -> bool:
        return self.cancelled.is_set() or self.superseded.is_set()

    def report(self, **progress: Any) -> None:
        with self._lock:
            self._progress.update(progress)
            self._dirty = True
            due = time.monotonic() - self._last_write >= PROGRESS_EVERY_S
        if due:
            self.heartbeat()

    # --- the work ----------------------------------------------------------------------------------

    def run(self) -> str:
        with self.store.session() as session:
            job = session.get(Job, self.job_id)
            if job is None or job.attempt != self.attempt or job.state != "running":
                return "superseded"
            kind, settings, shot_id, run_id, studio_id = job.kind, dict(job.settings), job.shot_id, job.run_id, \
                job.studio_id
            self._kind, self._preview = kind, job.preview
        folders = job_folders(self.assignment, studio_id, kind, shot_id, run_id)
        work = folders.work
        self._run = folders.run or work
        # not shown by the API: which process runs this attempt (operators, and the tests' kill -9), from where
        self._progress.update(worker_pid=os.getpid(), worker_host=socket.gethostname(), attempt=self.attempt)
        self.heartbeat()
        beat = threading.Thread(target=self._beat, name=f"heartbeat-{self.job_id}", daemon=True)
        beat.start()
        try:
            with self._only_attempt(work):
                stopped = True
                if not self.should_stop():
                    self._mirror = stage(self.assignment, studio_id, folders)
                    stopped = self._do(kind, folders, settings)
                    put_back(self._mirror)  # before the final state: a result the API lists is in the store
            state, error = ("cancelled" if stopped else "succeeded"), None
        except ShotfitError as err:  # the CLI's line, with the server's own folders left out
            state, error = "failed", str(err).replace(f"{folders.work.parent.parent}/", "")
        except Exception as err:  # a bug: the traceback to the worker's log, one line to the job
            traceback.print_exc()
            first = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
            state, error = "failed", f"internal error ({type(err).__name__}: {first[:300]})"
        finally:
            self._beating.set()
            beat.join()
        if self.superseded.is_set() and not self.cancelled.is_set():
            return "superseded"
        with self._lock:
            progress = dict(self._progress)
        with self._reporting:  # the sheets put back above are named with the final state
            if not self._write(state=state, error=error, finished=now(), progress=progress, **self._new_preview()):
                return "superseded"
        enqueue(self.store, self.job_id, f"job.{state}")
        return state

    @contextlib.contextmanager
    def _only_attempt(self, work: Path) -> Iterator[None]:
        """Hold the job folder's lock while working: an earlier attempt whose worker outlived its server (it
        notices within a heartbeat and stops) finishes its last write before this one reads or writes.
        The kernel drops the lock when a process dies, kill -9 included."""
        work.mkdir(parents=True, exist_ok=True)
        fd = os.open(work / ".attempt.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self.should_stop():
                        yield
                        return
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)

    def _do(self, kind: str, folders: jobwork.JobFolders, settings: dict[str, Any]) -> bool:
        """Run the job's kind; True when it stopped early (cancelled, or taken over)."""
        folders.work.mkdir(parents=True, exist_ok=True)
        if kind == "train":
            summary = jobwork.train(folders, settings, self._tracking(folders), api.TrainCallbacks(
                on_step=self._on_step, should_stop=self.should_stop))
            return summary.result.stopped_by is api.StoppedBy.STOP
        if kind == "render":
            workers = int(settings.get("render.workers", 1))
            if workers > 1:
                stopped = self._render_in_chunks(folders, settings, workers)
            else:
                stopped = jobwork.render(folders, settings, self._on_frame, self.should_stop).stopped
            if not stopped:
                if workers > 1 and self._mirror is not None:
                    self._mirror.pull()  # frames that chunks on other machines rendered
                jobwork.finish_render(folders, settings)
            return stopped
        if kind == "export":
            jobwork.export(folders, settings)
            return False
        if kind == "sweep":
            try:
                jobwork.sweep(folders, settings, self._tracking(folders), self._on_trial, self.should_stop)
            except KeyboardInterrupt:  # how a sweep says it was stopped (its results so far are written)
                if not self.should_stop():
                    raise
                return True
            return False
        if kind == "suggest":
            try:
                jobwork.suggest(folders, settings, self._on_suggest)
            except _Stopped:
                return True
            return False
        raise ShotfitError(f"job kind {kind!r} is not run by this server")

    def _tracking(self, folders: jobwork.JobFolders) -> api.TrackingOptions:
        """One experiment per studio in the service's store, a run named after the job."""
        return api.TrackingOptions(uri=self.assignment.tracking_uri, run_name=self.job_id,
                                   experiment=f"shotfit {folders.work.parent.parent.name}")

    def _on_trial(self, update: Any) -> None:
        """A sweep's trials: how many started and ended, the latest one's step of its budget."""
        self._trials[update.name] = update.status
        if not self._mlflow_seen and (parent := sweepjob.parent_run(self._run)) is not None:
            self._mlflow_seen = True
            self._write(mlflow_run_id=parent)
        ended = sum(status in ("finished", "stopped", "error") for status in self._trials.values())
        self.report(trials_started=len(self._trials), trials_done=ended, step=update.step,
                    steps=update.budget.steps)

    def _render_in_chunks(self, folders: jobwork.JobFolders, settings: dict[str, Any], workers: int) -> bool:
        """The frames still to render, shared out in ``workers`` Ray tasks (:mod:`.render_chunks`); True when
        stopped early, or when a chunk's worker died and the job is queued again."""
        return render_chunks.render_in_chunks(self.store, self.assignment, folders, settings, workers, self.report,
                                              self.should_stop, self.superseded)

    def _on_step(self, report: Any) -> None:
        if not self._mlflow_seen:
            self._note_mlflow()
        if "first_step" not in self._progress:  # a resumed attempt starts after its checkpoint, never at 1
            self._progress["first_step"] = report.step
        left = max(report.horizon - report.step, 0)
        self.report(step=report.step, steps=report.horizon, losses={k: float(v) for k, v in report.losses.items()},
                    eta_s=left / report.steps_per_s if report.steps_per_s > 0 else None)

    def _note_mlflow(self) -> None:
        """The MLflow run id, from run.json once training wrote it."""
        try:
            info = RunFolder(self._run).read_info()
        except (ShotfitError, OSError):
            return
        self._mlflow_seen = True
        if info.mlflow_run_id:
            self._write(mlflow_run_id=info.mlflow_run_id)

    def _on_suggest(self, progress: api.SuggestProgress) -> None:
        """Progress of each pass; a cancel stops the job after the frame in hand (suggest takes no should_stop)."""
        self.report(stage=progress.stage, frames_done=progress.done, frames_total=progress.total)
        if self.should_stop():
            raise _Stopped

    def _on_frame(self, done: FrameDone) -> None:
        if not done.skipped:
            if self._mirror is not None:
                put_back(self._mirror, done.path)  # the frame is in the store before the store counts it
            with self.store.session() as session:
                session.add(JobFrame(job_id=self.job_id, frame=done.frame, attempt=self.attempt))
        left = done.total - done.done
        self.report(frames_done=done.done, frames_total=done.total, fps=done.frames_per_s,
                    eta_s=left / done.frames_per_s if done.frames_per_s > 0 else None)
