"""``shotfit train`` inside a SageMaker training job (the image runs ``shotfit train`` with no options).

What it does, in the order a job sees it:

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
import os
import shutil
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path

from shotfit.cloud.contract import RUN_NAME, JobPaths, JobSettings, job_settings, metric_line, read_hyperparameters
from shotfit.engine.run_folder import RunFolder, load_state, model_state, save_state
from shotfit.errors import FrameError, ShotfitError, quoted
from shotfit.files import write_text_atomic
from shotfit.io.sequence import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

EXIT_STOPPED = 143  # 128 + SIGTERM, as a shell reports a process ended by it


def run_job(environ: Mapping[str, str] | None = None) -> int:
    """Run the training job laid out under ``$SAGEMAKER_BASE_DIR`` (default ``/opt/ml``); the exit status."""
    env = dict(os.environ if environ is None else environ)
    paths = JobPaths.from_environment(env)
    try:
        return _train_job(paths, env)
    except ShotfitError as err:
        return _fail(paths, f"shotfit: {err}")
    except KeyboardInterrupt:
        print("shotfit: interrupted; the checkpoints written so far are kept", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: the traceback for the logs, one line for FailureReason
        traceback.print_exc()
        first = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        return _fail(paths, f"shotfit: internal error ({type(err).__name__}: {first[:300]})")


def _train_job(paths: JobPaths, env: Mapping[str, str]) -> int:
    from shotfit.api.training import train  # PyTorch is imported here
    from shotfit.engine.stopping import stop_on_signals
    from shotfit.engine.tracking import TrackingOptions

    settings = job_settings(read_hyperparameters(paths, env), where=quoted(paths.hyperparameters))
    options = settings.options
    source = _channel(paths, "source", single_file=True)
    keyframes = _channel(paths, "keyframes")
    masks = options.get("mask") or _channel(paths, "masks", required=False)
    run = RunFolder(paths.run)
    resume = run.is_run()
    minutes = options.get("minutes")
    if resume and minutes is not None:
        minutes = _minutes_left(run, minutes)
    job_name = env.get("TRAINING_JOB_NAME")
    log.info("training job %s: %s; %d config overrides%s", job_name or "(local)",
             f"resuming {paths.run}" if resume else f"new run in {paths.run}", len(settings.overrides),
             f"; ignored {', '.join(settings.ignored)}" if settings.ignored else "")
    tracking = TrackingOptions(
        uri=env.get("MLFLOW_TRACKING_URI") or None,
        experiment=options.get("experiment") or env.get("MLFLOW_EXPERIMENT_NAME") or "shotfit",
        run_name=job_name, tags={"sagemaker.training_job": job_name} if job_name else {})
    with stop_on_signals() as stop:
        summary = train(source, keyframes, paths.run, overrides=settings.overrides, steps=options.get("steps"),
                        minutes=minutes, resume=resume, masks=masks, device=options.get("device"),
                        first=options.get("first"), last=options.get("last"),
                        colorspace=options.get("colorspace"), working_space=options.get("working_space"),
                        ocio_config=options.get("ocio_config"), tracking=tracking,
                        on_metrics=print_metric_line, should_stop=stop)
    result = summary.result
    if result.stopped_by == "stop":
        # StopTrainingJob and a spot interruption both send SIGTERM, 120 s before SIGKILL, and SageMaker
        # uploads /opt/ml/model after a stop: the weights of this step go there (without exports,
        # which may not fit in the 120 s; `shotfit export` makes them from the fetched run).
        published = publish(paths, settings, stopped=True)
        print(f"shotfit: {stop.signal} at step {result.steps_done}: checkpoint saved in {run.checkpoints} (a "
              f"restarted spot job resumes from it); the weights of step {result.steps_done} are in {published}",
              file=sys.stderr, flush=True)
        return EXIT_STOPPED
    published = publish(paths, settings)
    print(f"shotfit: trained {result.steps_done} steps ({result.stopped_by}); model in {published}", flush=True)
    return 0


def publish(paths: JobPaths, settings: JobSettings, stopped: bool = False) -> Path:
    """The run folder, without checkpoints, as ``/opt/ml/model/run``: finished, with its exports, or
    ``stopped`` early, with the newest checkpoint's weights as its model.pt and no exports."""
    from shotfit.api.exporting import export

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
        exported = export(staging, fmt)
        log.info("exported %s (matches PyTorch to %.1e)", exported.path.name, exported.max_difference)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def print_metric_line(step: int, numbers: Mapping[str, float]) -> None:
    """One metric line on stdout, flushed at once (CloudWatch Logs reads the stream as it grows)."""
    print(metric_line(step, numbers), flush=True)


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


def _fail(paths: JobPaths, message: str) -> int:
    """The reason on stderr and in ``output/failure`` (SageMaker's FailureReason); exit status 1."""
    print(message, file=sys.stderr, flush=True)
    try:
        write_text_atomic(paths.failure, message + "\n")
    except OSError as err:
        print(f"shotfit: could not write {quoted(paths.failure)} ({err.strerror or err})", file=sys.stderr)
    return 1
