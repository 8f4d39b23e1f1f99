"""``shotfit suggest``: which frames to paint, before painting and after a run. Parses the options,
calls :func:`shotfit.api.suggest`, shows progress and the table."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import Progress
from rich.table import Table

from shotfit import api  # resolves its names on first use: importing it loads no PyTorch
from shotfit.cli.app import SourceOpt, app, use_render_threads, user_errors
from shotfit.cli.display import console, fmt, progress_display

if TYPE_CHECKING:
    from shotfit.suggest.request import SuggestResult
    from shotfit.suggest.workflow import SuggestProgress

STAGES = {"features": "look", "flips": "flips", "sheet": "sheet"}


@app.command()
def suggest(
    source: SourceOpt,
    count: Annotated[Optional[int], typer.Option(
        "--count", help="Frames to suggest (needed before painting; after a run, default: rank every unpainted "
        "frame).")] = None,
    have: Annotated[Optional[str], typer.Option("--have", help="Folder of frames painted already (by frame "
                                                "number): counted as chosen, never suggested.")] = None,
    run: Annotated[Optional[Path], typer.Option("--run", help="A run trained on this shot: rank its unpainted "
                                                "frames by predicted error.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Also write the suggestions as JSON "
                                                      "(FILE.json).")] = None,
    sheet: Annotated[Optional[Path], typer.Option("--sheet", help="Contact sheet of the worst frames with "
                                                  "heat maps (FILE.png; default RUN/suggest.png).")] = None,
    sheet_frames: Annotated[int, typer.Option("--sheet-frames", help="Rows of the contact sheet.")] = 6,
    strategy: Annotated[str, typer.Option("--strategy", help="cover (lowest mean distance to a painted frame) "
                                          "or farthest (lowest largest distance).")] = "cover",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = "auto",
) -> None:
    """Which frames to paint: before painting, the frames that cover the shot (cuts respected); after a run,
    the unpainted frames ranked by predicted error, with a contact sheet of the worst."""
    if run is not None:
        use_render_threads(run)
    with user_errors():
        request = api.SuggestRequest(source, count=count, have=have, run=run, json_path=json_path, sheet=sheet,
                                     sheet_frames=sheet_frames, strategy=strategy, device=device)
        with progress_display() as progress:
            result = api.suggest(request, on_progress=_rows(progress))
    console.print(_table(result))
    for line in _notes(result):
        console.print(line, highlight=False, soft_wrap=True)


def _rows(progress: Progress) -> Callable[[SuggestProgress], None]:
    tasks: dict[str, int] = {}

    def on_progress(report: SuggestProgress) -> None:
        if report.stage not in tasks:
            tasks[report.stage] = progress.add_task(STAGES.get(report.stage, report.stage), total=report.total,
                                                    info="")
        progress.update(tasks[report.stage], completed=report.done, total=report.total)

    return on_progress


def _table(result: SuggestResult) -> Table:
    after = result.mode == "after"
    title = ("unpainted frames, worst predicted first" if after
             else f"frames to paint ({len(result.segments)} cut segment{'s' if len(result.segments) != 1 else ''})")
    table = Table(title=title)
    for column in ("#", "frame", "segment", "distance", *(("score", "flips") if after else ()), "why"):
        table.add_column(column, justify="left" if column == "why" else "right",
                         overflow="fold" if column == "why" else "ellipsis")
    for item in result.frames:
        extra = (fmt(item.predicted_error, 2), "-" if item.disagreement is None else f"{item.disagreement:.3g}") \
            if after else ()
        table.add_row(str(item.rank), str(item.frame), str(item.segment), fmt(item.distance, 3), *extra, item.reason)
    return table


def _notes(result: SuggestResult) -> list[str]:
    lines = []
    if result.cuts:
        lines.append(f"cuts before frames {', '.join(map(str, result.cuts))}")
    if result.uncovered:
        spans = ", ".join(f"{result.segments[n - 1][0]}-{result.segments[n - 1][1]}" for n in result.uncovered)
        if result.mode == "after":
            lines.append(f"no keyframe in segments {spans}: paint one frame of each")
        else:
            lines.append(f"no frame painted or suggested in segments {spans}: a larger count would cover them")
    if result.sheet is not None:
        lines.append(f"contact sheet: {result.sheet}")
    if result.json_path is not None:
        lines.append(f"suggestions: {result.json_path}")
    return lines
