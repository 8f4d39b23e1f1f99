"""A render shared out on Ray: the frames still to render, cut into runs of neighbouring frames, each run
rendered by a Ray task with the CPUs and GPUs a render worker declares.

Frames are independent and deterministic, so a chunk renders exactly the bytes the plain render would, and
each is written atomically into the same folder (the write guard's temporaries carry host and process, so
chunks never remove each other's). What is on disk is the truth: progress is the outputs that appeared, a
chunk that fails leaves the frames it wrote, and rendering again renders only the frames still missing.

Ray is the caller's: the entry point starts it or connects to a cluster (``ray.init``) and shuts it down;
this module only submits tasks to the Ray this process already runs, so it changes nothing process-wide.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shotfit.errors import ConfigError, ShotfitError
from shotfit.files import ensure_writable_folder
from shotfit.infer.render import FrameDone, RenderResult, chunks, frames_pending
from shotfit.io import Shot
from shotfit.workflows.requests import RenderRequest

log = logging.getLogger(__name__)

POLL_S = 0.5  # how often the outputs are looked for (progress) and a stop is asked for
CHUNK_RETRIES = 2  # a chunk whose worker died runs again (it skips the frames its first try wrote)

RenderChunk = Callable[[RenderRequest], RenderResult]


def check_workers(request: RenderRequest) -> None:
    """The worker settings, in one line naming the field at fault, before anything is read or started."""
    workers, cpus, gpus = request.workers, request.cpus_per_worker, request.gpus_per_worker
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"render workers must be a whole number of at least 1, not {workers!r}", parameter="workers")
    if not (isinstance(cpus, (int, float)) and math.isfinite(cpus) and cpus > 0):
        raise ConfigError(f"CPUs per render worker must be a number above 0, not {cpus!r}",
                          parameter="cpus_per_worker")
    if not (isinstance(gpus, (int, float)) and math.isfinite(gpus) and gpus >= 0):
        raise ConfigError(f"GPUs per render worker must be a number of at least 0, not {gpus!r}",
                          parameter="gpus_per_worker")


def render_in_chunks(request: RenderRequest, shot: Shot, wanted: Sequence[int], missing: Sequence[range],
                     render_chunk: RenderChunk, on_frame: Callable[[FrameDone], None] | None = None,
                     should_stop: Callable[[], bool] | None = None) -> RenderResult:
    """Render ``wanted`` frames of ``shot`` into ``request.out`` on ``request.workers`` Ray tasks at once.

    Args:
        request: The render; each chunk runs it with its own ``frames`` (no review, no workers).
        shot: The opened source (output names, and which frames are already rendered).
        wanted: The frames to render, ascending; ``missing``: those the source lacks, for the result.
        render_chunk: What a task runs with its chunk's request: the plain render (a module-level function,
            so Ray sends it by name).
        on_frame: Called in this process as each frame appears (frames already there first, ``skipped``).
        should_stop: Asked every :data:`POLL_S`; True cancels the chunks (the frames written stay) and
            returns with ``stopped`` set.

    Raises:
        ShotfitError: Ray is missing or not started, no node can hold a worker, a chunk failed (its own
            one-line error) or its worker was lost.
    """
    ray = _running_ray()
    assert request.workers is not None
    _check_resources(ray, request.cpus_per_worker, request.gpus_per_worker)
    out = ensure_writable_folder(request.out)
    started = time.monotonic()
    pending = frames_pending(shot, out, wanted)
    skipped = len(wanted) - len(pending)
    progress = _Progress(shot, out, len(wanted), on_frame)
    progress.already_there([f for f in wanted if f not in set(pending)])
    results: list[RenderResult] = []
    stopped = False
    if pending:
        task = ray.remote(num_cpus=request.cpus_per_worker, num_gpus=request.gpus_per_worker,
                          max_retries=CHUNK_RETRIES)(run_chunk)
        threads = max(1, int(request.cpus_per_worker))
        refs = [task.remote(render_chunk, _chunk_request(request, chunk), threads)
                for chunk in chunks(pending, request.workers)]
        log.info("rendering %d frames in %d chunks on Ray", len(pending), len(refs))
        results, stopped = _wait(ray, refs, progress, pending, should_stop)
    seconds = time.monotonic() - started
    rendered = sum(result.rendered for result in results)
    skipped += sum(result.skipped for result in results)
    done = tuple(f for f in wanted if (out / shot.output_name(f)).exists()) if stopped else tuple(wanted)
    return RenderResult(rendered, skipped, seconds, out, tuple(missing), done, stopped=stopped)


def run_chunk(render_chunk: RenderChunk, request: RenderRequest, threads: int) -> RenderResult:
    """A Ray task, and so an entry point in its worker's process: torch's threads as the worker declares them,
    then the plain render of the chunk's frames."""
    try:  # PyTorch only for its thread count: the onnxruntime engine renders where it is not installed
        from shotfit.device import configure_threads
    except ImportError:
        pass
    else:
        configure_threads(threads)
    return render_chunk(request)


def _chunk_request(request: RenderRequest, frames: Sequence[int]) -> RenderRequest:
    return dataclasses.replace(request, frames=tuple(frames), review=None, workers=None)


def _running_ray() -> Any:
    try:
        import ray  # an optional dependency, and seconds to import: only a render on workers loads it
    except ImportError:
        raise ShotfitError("rendering on several workers needs Ray: pip install 'ray[default]'",
                           parameter="workers") from None
    if not ray.is_initialized():
        raise ShotfitError("rendering on workers needs Ray running in this process: start a local Ray or "
                           "connect to a cluster (ray.init) before rendering", parameter="workers")
    return ray


def _check_resources(ray: Any, cpus: float, gpus: float) -> None:
    """Refuse a worker no node could ever hold (Ray would wait for it for ever)."""
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(res.get("CPU", 0) >= cpus and res.get("GPU", 0) >= gpus for res in nodes):
        return
    largest: dict[str, float] = max(nodes, key=lambda res: (res.get("GPU", 0), res.get("CPU", 0)), default={})
    field = "gpus_per_worker" if gpus > 0 and all(res.get("GPU", 0) < gpus for res in nodes) else "cpus_per_worker"
    raise ShotfitError(f"no Ray node has {cpus:g} CPUs and {gpus:g} GPUs for a render worker (the largest has "
                       f"{largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs)", parameter=field)


def _wait(ray: Any, refs: list[Any], progress: _Progress, pending: Sequence[int],
          should_stop: Callable[[], bool] | None) -> tuple[list[RenderResult], bool]:
    """The chunks' results as they finish, with progress from the frames that appeared; (results, stopped).

    A chunk that fails lets the others finish their frames (work a rerun need not redo), then its error is
    raised; a stop or an interrupt cancels them all at once.
    """
    results: list[RenderResult] = []
    failure: Exception | None = None
    waiting, stopped = list(refs), False
    progress.watch(pending)
    try:
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=POLL_S)
            for ref in ready:
                try:
                    results.append(ray.get(ref))
                except ray.exceptions.RayError as err:
                    failure = failure or _chunk_error(ray, err)
                    log.warning("a render chunk failed (%s); the other chunks finish their frames", failure)
            progress.look()
            if waiting and should_stop is not None and should_stop():
                stopped = True
                break
    finally:
        for ref in waiting:  # the rest stop now: on a stop or an interrupt alike
            ray.cancel(ref)
    progress.look()
    if failure is not None:
        raise failure
    return results, stopped


def _chunk_error(ray: Any, err: Exception) -> Exception:
    """A chunk's failure: its own error (a ShotfitError's one line names the file or setting at fault; a bug
    keeps its traceback), or its worker lost past its retries."""
    if isinstance(err, ray.exceptions.RayTaskError) and isinstance(err.cause, Exception):
        return err.cause
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ShotfitError(f"a render worker was lost ({first[:200]}); the frames written are kept, and rendering "
                        "again renders the rest", parameter="workers")


class _Progress:
    """Frames reported as their outputs appear (each is renamed into place whole, so one there is done)."""

    def __init__(self, shot: Shot, out: Path, total: int, on_frame: Callable[[FrameDone], None] | None) -> None:
        self.shot, self.out, self.total, self.on_frame = shot, out, total, on_frame
        self.done = self.rendered = 0
        self.unseen: list[int] = []
        self.started = time.monotonic()

    def already_there(self, frames: Sequence[int]) -> None:
        for frame in frames:
            self.done += 1
            self._say(frame, skipped=True)

    def watch(self, frames: Sequence[int]) -> None:
        self.unseen, self.started = list(frames), time.monotonic()

    def look(self) -> None:
        still = []
        for frame in self.unseen:
            if (self.out / self.shot.output_name(frame)).exists():
                self.done, self.rendered = self.done + 1, self.rendered + 1
                self._say(frame, skipped=False)
            else:
                still.append(frame)
        self.unseen = still

    def _say(self, frame: int, skipped: bool) -> None:
        if self.on_frame is not None:
            speed = self.rendered / max(time.monotonic() - self.started, 1e-9)
            self.on_frame(FrameDone(frame, self.out / self.shot.output_name(frame), self.done, self.total,
                                    skipped, speed))
