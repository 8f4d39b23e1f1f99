"""The typer app every command registers on, the options commands share, and the one-line error handling.

Errors a user can cause end in one line on stderr (``shotfit: ...``) and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler

from shotfit import __version__
from shotfit.cli.display import console, err_console
from shotfit.engine.tracking_options import disable_mlflow_telemetry
from shotfit.errors import ShotfitError
from shotfit.io import hold_native_output
from shotfit.runs.folder import RunFolder
from shotfit.workflows.precedence import resolve_train_config
from shotfit.workflows.requests import TrainRequest

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Learn an artist's edit from a few fixed keyframes and apply it to every frame of a shot.")


# Request fields whose option is not simply --field-name (the rest: "tile_overlap" is --tile-overlap).
FLAGS = {"overrides": "--set", "config_file": "--config", "keyframes": "--target", "masks": "--mask",
         "json_path": "--json", "allowed_plugins": "--allow-plugin"}


def flag_for(parameter: str, flags: Mapping[str, str] | None = None) -> str:
    """The command-line option that sets a request field: ``"resume"`` -> ``--resume``."""
    known = {**FLAGS, **(flags or {})}
    return known.get(parameter, "--" + parameter.replace("_", "-"))


def error_text(err: ShotfitError, flags: Mapping[str, str] | None = None) -> str:
    """The error's line as the CLI shows it: with the option to change when the error names a field."""
    text = str(err)
    if err.parameter is None:
        return text
    flag = flag_for(err.parameter, flags)
    return text if flag in text else f"{text} ({flag})"


@contextlib.contextmanager
def user_errors(flags: Mapping[str, str] | None = None) -> Iterator[None]:
    """Turn user-caused failures into one line and an exit status; keep tracebacks for real bugs.

    Args:
        flags: The command's own option for a request field where it is not ``--field-name`` or one
            of :data:`FLAGS` (e.g. ``{"run": "--sweep"}``).
    """
    try:
        yield
    except ShotfitError as err:
        error_line(f"shotfit: {error_text(err, flags)}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        error_line("shotfit: interrupted; everything already written is kept")
        raise typer.Exit(130) from None
    except OSError as err:
        where = f"'{err.filename}': " if err.filename else ""
        error_line(f"shotfit: {where}{err.strerror or err}")
        raise typer.Exit(1) from None


def use_training_threads(request: TrainRequest) -> None:
    """Give torch the ``train.threads`` of the config this training will use (as the workflow resolves
    it). Threads are the process's, so the command sets them and the library never does; a config
    that cannot be read is left for the training itself to report."""
    try:
        threads = resolve_train_config(request, RunFolder(request.out)).train.threads
    except (ShotfitError, OSError, ValueError):
        return
    use_threads(threads)


def use_render_threads(run: Path) -> None:
    """Give torch the ``train.threads`` of the run being rendered (see :func:`use_training_threads`)."""
    try:
        threads = RunFolder(run).read_config().train.threads
    except (ShotfitError, OSError, ValueError):
        return
    use_threads(threads)


def use_threads(threads: int) -> None:
    """``threads`` for torch; 0: the cores this process may use (see ``device.configure_threads``)."""
    try:  # imports torch: not before a command needs it
        from shotfit.device import configure_threads
    except ImportError:  # no PyTorch here: the torch engine says so in its own line
        return
    configure_threads(threads)


def error_line(text: str) -> None:
    # soft_wrap: one line however narrow the terminal, so scripts and logs can grep it.
    err_console.print(text, markup=False, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        console.print(f"shotfit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (checkpoints, plans).")] = False,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version.")] = None,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err_console, show_path=False)], force=True)
    # the command owns its process: stdout and stderr (a damaged file is reported in one line), environment
    hold_native_output()
    disable_mlflow_telemetry()


SOURCE_HELP = ("The shot: a folder of frames, a pattern (plate.####.exr, plate.@@@@.dpx, plate.%04d.png, "
               "'plate.$F4.exr') or a video file.")
SourceOpt = Annotated[str, typer.Option("--source", help=SOURCE_HELP)]
FirstOpt = Annotated[Optional[int], typer.Option("--first", help="Use the shot from this frame on.")]
LastOpt = Annotated[Optional[int], typer.Option("--last", help="Use the shot up to this frame (included).")]


NoTrackOpt = Annotated[bool, typer.Option("--no-track", help="Do not track the run in MLflow and TensorBoard.")]
TrackingUriOpt = Annotated[Optional[str], typer.Option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking server or store (default: sqlite beside the run folder).")]
ExperimentOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment name.")]
OcioConfigOpt = Annotated[Optional[str], typer.Option(
    "--ocio-config", help="OpenColorIO config file or ocio:// URI (default: $OCIO, else the built-in "
    "ACES studio config).")]
ColorspaceOpt = Annotated[Optional[str], typer.Option(
    "--colorspace", help="OCIO colour space of the source and keyframes (name, alias or role; default: "
    "scene_linear for float frames, sRGB for 8/16-bit); renders are written in it.")]
