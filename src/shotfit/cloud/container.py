"""A SageMaker training job's work, as ``shotfit train`` with no options runs it (:mod:`shotfit.cli.job`
prints the metric lines and the outcome, and turns it into the exit status).

What a job does, in the order it sees it:

1. reads the hyperparameters (:mod:`shotfit.cloud.contract`) and the ``source``, ``keyframes`` and
   optional ``masks`` channels;
2. trains into ``/opt/ml/checkpoints/run``, the folder SageMaker syncs to S3 while the job runs and
   copies back when a managed-spot job restarts after an interruption: the run then resumes from its
   newest checkpoint, with the time budget counted across both starts;
3. on SIGTERM (the interruption notice, or ``StopTrainingJob``) finishes the step, checkpoints,
   puts that step's weights in ``/opt/ml/model/run`` (SageMaker uploads them after a stop) and exits
   with status 143 without writing a failure;
4. prints every tracked number as a metric line on stdout (SageMaker charts them through the job's
   metric definitions; ``shotfit cloud status`` reads them back from CloudWatch Logs);
5. copies the finished run folder (without its checkpoints) to ``/opt/ml/model/run``, exports the
   network there (``model.onnx`` by default), and exits 0. SageMaker then uploads ``model.tar.gz``;
6. on any error writes the one-line reason to ``/opt/ml/output/failure`` (SageMaker shows it as the
   job's FailureReason) and exits 1.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from shotfit.cloud.contract import RUN_NAME, JobPaths, JobSettings, job_settings, read_hyperparameters
from shotfit.engine.stopping import stop_on_signals
from shotfit.engine.tracking_options import TrackingOptions
from shotfit.errors import FrameError, quoted
from shotfit.files import write_text_atomic
from shotfit.io.sequence import VIDEO_EXTENSIONS
from shotfit.runs.folder import RunFolder, load_state, model_state, save_state
from shotfit.workflows.precedence import resolve_train_config
from shotfit.workflows.requests import ExportRequest, TrainCallbacks, TrainRequest

if TYPE_CHECKING:
    from shotfit.engine.trainer import StoppedBy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobResult:
    """How a job's training ended: ``stopped_by`` as :class:`~shotfit.engine.trainer.TrainResult`'s
    (``StoppedBy.STOP`` after a SIGTERM, then ``signal`` names it), and where its model and checkpoints are."""

    steps_done: int
    stopped_by: StoppedBy
    signal: str | None
    model: Path
    checkpoints: Path


def train_job(paths: JobPaths, environ: Mapping[str, str],
              on_metrics: Callable[[int, dict[str, float]], None] | None = None) -> JobResult:
    """Train the job laid out at ``paths`` and put its model in ``paths.model``.

    Raises:
        ShotfitError: bad hyperparameters, a missing channel, unreadable frames... (one line each).
    """
    # PyTorch is imported here, not when the command line starts
    from shotfit.device import configure_threads
    from shotfit.engine.trainer import StoppedBy
    from shotfit.workflows.training import run_training

    settings = job_settings(read_hyperparameters(paths, environ), where=quoted(paths.hyperparameters))
    options = settings.options
    source = _channel(paths, "source", single_file=True)
    keyframes = _channel(paths, "keyframes")
    masks = options.mask or _channel(paths, "masks", required=False)
    run = RunFolder(paths.run)
    resume = run.is_run()
    minutes = options.minutes
    if resume and minutes is not None:
        minutes = _minutes_left(run, minutes)
    job_name = environ.get("TRAINING_JOB_NAME")
    log.info("training job %s: %s; %d config overrides%s", job_name or "(local)",
             f"resuming {paths.run}" if resume else f"new run in {paths.run}", len(settings.overrides),
             f"; ignored {', '.join(settings.ignored)}" if settings.ignored else "")
    tracking = TrackingOptions(
        uri=environ.get("MLFLOW_TRACKING_URI") or None,
        experiment=options.experiment or environ.get("MLFLOW_EXPERIMENT_NAME") or "shotfit",
        run_name=job_name, tags={"sagemaker.training_job": job_name} if job_name else {})
    # Only what the job was given goes in: an option left None is the run's config's to decide.
    request = TrainRequest(source, keyframes, paths.run, overrides=settings.overrides, steps=options.steps,
                           minutes=minutes, resume=resume, masks=masks, device=options.device,
                           first=options.first, last=options.last, colorspace=options.colorspace,
                           working_space=options.working_space, ocio_config=options.ocio_config,
                           tracking=tracking)
    # the job owns its process: its threads are set here, not by the library
    configure_threads(resolve_train_config(request, RunFolder(paths.run)).train.threads)
    with stop_on_signals() as stop:
        summary = run_training(request, TrainCallbacks(on_metrics=on_metrics, should_stop=stop))
    result = summary.result
    # StopTrainingJob and a spot interruption both send SIGTERM, 120 s before SIGKILL, and SageMaker
    # uploads /opt/ml/model after a stop: the weights of that step go there (without exports, which
    # may not fit in the 120 s; `shotfit export` makes them from the fetched run).
    model = publish(paths, settings, stopped=result.stopped_by is StoppedBy.STOP)
    return JobResult(result.steps_done, result.stopped_by, stop.signal, model, run.checkpoints)


def publish(paths: JobPaths, settings: JobSettings, stopped: bool = False) -> Path:
    """The run folder, without checkpoints, as ``/opt/ml/model/run``: finished, with its exports, or
    ``stopped`` early, with the newest checkpoint's weights as its model.pt and no exports."""
    from shotfit.workflows.exporting import run_export  # PyTorch and onnx: only when a job ends

    run = RunFolder(paths.run)
    target = paths.model / RUN_NAME
    staging = paths.model / f".{RUN_NAME}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(run.path, staging, ignore=shutil.ignore_patterns("checkpoints", "model.pt"))
    if stopped:
        save_state(model_state(load_state(run.latest_checkpoint())), staging / "model.pt")
    else:
        shutil.copy2(run.model_path, staging / "model.pt")
    for fmt in () if stopped else settings.export:
        exported = run_export(ExportRequest(staging, fmt))
        log.info("exported %s (matches PyTorch to %.1e)", exported.path.name, exported.max_difference)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


@overload
def _channel(paths: JobPaths, name: str, *, required: Literal[True] = True, single_file: bool = False) -> str: ...
@overload
def _channel(paths: JobPaths, name: str, *, required: bool, single_file: bool = False) -> str | None: ...
def _channel(paths: JobPaths, name: str, *, required: bool = True, single_file: bool = False) -> str | None:
    """The channel's folder (or, for the source, the one video file in it); None for an absent optional one."""
    folder = paths.channels[name]
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".")) if folder.is_dir() else []
    if not entries:
        if not required:
            return None
        state = "is empty" if folder.is_dir() else "does not exist"
        raise FrameError(f"input channel '{name}' ({quoted(folder)}) {state}: the job needs the {name} "
                         "frames as a channel of that name")
    if single_file and len(entries) == 1 and entries[0].suffix.lower() in VIDEO_EXTENSIONS:
        return str(entries[0])
    return str(folder)


def _minutes_left(run: RunFolder, minutes: float) -> float:
    """The budget left after the time already trained by earlier starts of this job."""
    latest = run.latest_checkpoint()
    spent = float(load_state(latest).get("elapsed_s", 0.0)) if latest is not None else 0.0
    left = minutes - spent / 60.0
    log.info("time budget: %.1f of %.1f minutes already trained", spent / 60.0, minutes)
    return max(left, 0.01)


def write_failure(paths: JobPaths, message: str) -> None:
    """The one-line reason in ``output/failure``, which SageMaker shows as the job's FailureReason."""
    write_text_atomic(paths.failure, message + "\n")
