"""The typer app every command registers on, the options commands share, and the one-line error handling.

Errors a user can cause end in one line on stderr (``shotfit: ...``) and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler


from shotfit import __version__
from shotfit.cli.display import console, err_console
from shotfit.config import Config, apply_overrides, load_config
from shotfit.engine.tracking_options import disable_mlflow_telemetry
from shotfit.errors import ShotfitError
from shotfit.io import hold_native_output
from shotfit.runs.folder import RunFolder

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Learn an artist's edit from a few fixed keyframes and apply it to every frame of a shot.")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user-caused failures into one line and an exit status; keep tracebacks for real bugs."""
    try:
        yield
    except ShotfitError as err:
        error_line(f"shotfit: {err}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        error_line("shotfit: interrupted; everything already written is kept")
        raise typer.Exit(130) from None
    except OSError as err:
        where = f"'{err.filename}': " if err.filename else ""
        error_line(f"shotfit: {where}{err.strerror or err}")
        raise typer.Exit(1) from None


def use_run_threads(run: Path, config: Path | None = None, overrides: Sequence[str] = (),
                    saved: bool = True) -> None:
    """Give torch the ``train.threads`` of the config a run uses: its ``config`` file, else its saved
    config (``saved``: a resume or a render) or the defaults, with ``overrides`` on top.

    Threads are the process's, so the command sets them and the library never does. A config that
    cannot be read is left for the command itself to report.
    """
    try:
        base = load_config(config) if config else RunFolder(run).read_config() if saved else Config()
        threads = apply_overrides(base, overrides).train.threads
    except (ShotfitError, OSError, ValueError):
        return
    if threads > 0:
        # imports torch: not before a command needs it
        from shotfit.device import configure_threads

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
