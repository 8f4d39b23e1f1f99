"""What the command line draws: progress rows, live sweep tables, result tables.

The library never prints; these turn its callbacks and results into rich output on the consoles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Column, Table

if TYPE_CHECKING:  # the command line starts without importing torch
    from shotfit.engine.trainer import StepReport
    from shotfit.infer.render import FrameDone

console = Console()
err_console = Console(stderr=True)


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
    for column in ("PSNR dB", "PSNR edited", "SSIM", "LPIPS", "HF err", "warp err", "warp err (truth)"):
        table.add_column(column, justify="right")
    table.add_row(fmt(summary["psnr"], 2), fmt(summary["psnr_edited"], 2), fmt(summary["ssim"], 4),
                  fmt(summary["lpips"], 4), fmt(summary["hf_error"], 3), fmt(summary["warping_error"], 6),
                  fmt(summary["warping_error_truth"], 6))
    console.print(table)
    if per_frame:
        frames = Table(title="per frame")
        for column in ("frame", "PSNR dB", "PSNR edited", "edited %", "SSIM", "LPIPS", "HF err"):
            frames.add_column(column, justify="right")
        for row in report.frames:
            share = None if row.edited_fraction is None else 100 * row.edited_fraction
            frames.add_row(str(row.frame), fmt(row.psnr, 2), fmt(row.psnr_edited, 2), fmt(share, 1),
                           fmt(row.ssim, 4), fmt(row.lpips, 4), fmt(row.hf_error, 3))
        console.print(frames)


def fmt(value: float | None, digits: int) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if value == float("inf"):
        return "inf"
    return f"{value:.{digits}f}"


def demo_table(result) -> Table:
    """The sample's held-out scores: the untouched input beside shotfit's render."""
    table = Table(title=f"{len(result.held_out)} held-out frames (never shown to the network) vs the clean clip")
    for column in ("", "PSNR dB", "SSIM", "LPIPS", "warp err"):
        table.add_column(column, justify="right")
    for name, summary in (("compressed input", result.untouched), ("shotfit", result.model)):
        table.add_row(name, fmt(summary["psnr"], 2), fmt(summary["ssim"], 4), fmt(summary["lpips"], 4),
                      fmt(summary["warping_error"], 6))
    table.add_row("clean clip", "", "", "", fmt(result.model["warping_error_truth"], 6))
    return table


@contextlib.contextmanager
def sweep_display(metric: str) -> Iterator[Callable]:
    """A live table of the running trials: step of budget and latest held-out numbers."""
    from rich.live import Live

    trials: dict[tuple[str, str], object] = {}
    numbers = list(dict.fromkeys(("val/psnr", "val/ssim", "val/lpips", metric)))

    def table() -> Table:
        live = Table(title="trials, latest validation", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("phase", "trial", "status", "step", *numbers):
            live.add_column(_header(column), justify="left" if column in ("phase", "trial", "status") else "right",
                            no_wrap=True)
        for update in trials.values():
            budget = update.budget.steps
            live.add_row(update.phase, update.name, update.status,
                         f"{update.step}/{budget}" if budget else str(update.step),
                         *(fmt(update.metrics.get(k), 2 if k.endswith("psnr") else 4) for k in numbers))
        return live

    # refreshed on each update, from the thread that runs the sweep: no refresh thread of its own
    with Live(table(), console=err_console, auto_refresh=False, transient=True) as live:
        def watch(update) -> None:
            trials[(update.phase, update.name)] = update
            live.update(table(), refresh=True)

        yield watch


def sweep_table(result, width: int) -> Table:
    """Every trial, best first (the top-k phase's "-top" trials above the search): status, searched
    settings, the metric, and as many other held-out numbers as ``width`` columns allow."""
    metric = result.metric
    others = [k for k in ("val/psnr", "val/ssim", "val/lpips", "test/psnr", "test/ssim", "test/lpips",
                          "test/warping_error") if k != metric and any(k in row.metrics for row in result.rows)]
    columns = {"trial": [row.name for row in result.rows], "status": [row.status for row in result.rows]}
    columns.update({k: [_param(row.params.get(k)) for row in result.rows] for k in result.param_keys})
    numbers = {k: [fmt(row.metrics.get(k), 2 if k.endswith("psnr") else 4) for row in result.rows]
               for k in (metric, *others)}
    tail = {"steps": [str(row.step) for row in result.rows],
            "time": ["-" if row.seconds is None else f"{row.seconds:.0f}s" for row in result.rows]}

    def size(key: str, cells: list[str]) -> int:  # the column's width with its padding and divider
        return max(len(line) for line in [*_header(key).splitlines(), *cells]) + 3

    used = sum(size(k, v) for part in (columns, tail, {metric: numbers[metric]}) for k, v in part.items())
    for key in others:
        used += size(key, numbers[key])
        if used > width:
            del numbers[key]
    better = "lower" if result.mode == "min" else "higher"
    table = Table(title=f"{len(result.rows)} trials ranked by {metric} ({better} is better; best in green)",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for key in (*columns, *numbers, *tail):
        table.add_column(_header(key), justify="left" if key in ("trial", "status") else "right", no_wrap=True,
                         style="bold" if key == metric else None)
    for i, row in enumerate(result.rows):
        table.add_row(*(cells[i] for part in (columns, numbers, tail) for cells in part.values()),
                      style="green" if row is result.best else None)
    return table


def _header(key: str) -> str:
    """Two-line headers ("val" over "psnr") keep the number columns as narrow as their numbers."""
    if key == "time":
        return "train\ntime"  # training (and scoring) time, over every resume of the trial
    return key.replace("warping_error", "warp err").replace("/", "\n", 1).replace(".", "\n", 1)


def _param(value: object) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
