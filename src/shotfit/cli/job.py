"""``shotfit train`` with no options, inside a SageMaker training job: what the job's log shows and its
exit status (the work itself is :func:`shotfit.cloud.container.train_job`).

stdout carries the metric lines (``shotfit-metrics: step=... loss/total=...``) and the final line;
stderr the log, and on failure the reason, which also goes to ``/opt/ml/output/failure``. Exit status
0 when the model is in ``/opt/ml/model``, 143 after a SIGTERM (checkpointed; a restarted spot job goes
on), 1 on an error, 130 on Ctrl-C.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping

from rich.console import Console

from shotfit.cli.display import console, err_console
from shotfit.cloud.container import train_job, write_failure
from shotfit.cloud.contract import OPTION_KEYS, JobPaths, metric_line
from shotfit.engine.trainer import StoppedBy
from shotfit.errors import ShotfitError, quoted

EXIT_STOPPED = 143  # 128 + SIGTERM, as a shell reports a process ended by it


def run_job(environ: Mapping[str, str] | None = None) -> int:
    """Run the training job laid out under ``$SAGEMAKER_BASE_DIR`` (default ``/opt/ml``); the exit status."""
    env = dict(os.environ if environ is None else environ)
    paths = JobPaths.from_environment(env)
    try:
        result = train_job(paths, env, on_metrics=print_metric_line)
    except ShotfitError as err:
        return _failed(paths, f"shotfit: {_job_error(err)}")
    except KeyboardInterrupt:
        _say("shotfit: interrupted; the checkpoints written so far are kept", err_console)
        return 130
    except Exception as err:  # a bug: the traceback for the log, one line for FailureReason
        traceback.print_exc()
        first = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
        return _failed(paths, f"shotfit: internal error ({type(err).__name__}: {first[:300]})")
    if result.stopped_by is StoppedBy.STOP:
        _say(f"shotfit: {result.signal} at step {result.steps_done}: checkpoint saved in {result.checkpoints} (a "
             f"restarted spot job resumes from it); the weights of step {result.steps_done} are in {result.model}",
             err_console)
        return EXIT_STOPPED
    _say(f"shotfit: trained {result.steps_done} steps ({result.stopped_by}); model in {result.model}")
    return 0


def print_metric_line(step: int, numbers: Mapping[str, float]) -> None:
    """One metric line on stdout, flushed at once (CloudWatch Logs reads the stream as it grows)."""
    _say(metric_line(step, numbers))


def _job_error(err: ShotfitError) -> str:
    """The error's line, naming the hyperparameter to change when the error is about one."""
    name = {"masks": "mask"}.get(err.parameter or "", err.parameter)
    return f"{err} (hyperparameter '{name}')" if name in OPTION_KEYS else str(err)


def _failed(paths: JobPaths, message: str) -> int:
    _say(message, err_console)
    try:
        write_failure(paths, message)
    except OSError as err:
        _say(f"shotfit: could not write {quoted(paths.failure)} ({err.strerror or err})", err_console)
    return 1


def _say(line: str, where: Console = console) -> None:
    """One line, as it is: no markup, no colour, never wrapped (log readers and regexes parse it)."""
    where.print(line, markup=False, highlight=False, soft_wrap=True)
