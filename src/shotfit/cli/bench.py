"""``shotfit archs`` and ``shotfit bench archs``: the networks on offer, and the battle between them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from shotfit import api
from shotfit.cli.app import ExperimentOpt, NoTrackOpt, TrackingUriOpt, app, user_errors
from shotfit.cli.display import console
from shotfit.errors import ConfigError

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks: networks against each other on a real shot.")
app.add_typer(bench_app, name="bench")


@app.command("archs")
def list_archs() -> None:
    """The registered networks, with their parameter counts at their default options."""
    # imports PyTorch, which `shotfit --help` should not wait for
    from shotfit.archs import ARCHS, build_network, count_parameters

    table = Table(title="networks (use with --set model.arch=NAME; options with --set model.OPTION=...)")
    for column, justify in (("name", "left"), ("parameters", "right"), ("summary", "left")):
        table.add_column(column, justify=justify)
    for name in ARCHS.available():
        network = build_network(name)
        summary = (type(network).__doc__ or "").strip().splitlines()[0]
        table.add_row(name, f"{count_parameters(network) / 1e6:.2f} M", summary)
    console.print(table)


@bench_app.command("archs")
def bench_archs(
    shot: Annotated[str, typer.Option("--shot", help="The built-in sample shot (sample), unless --source "
                                      "gives your own.")] = "sample",
    source: Annotated[Optional[Path], typer.Option("--source", help="Your own shot instead of --shot "
                                                   "(with --target and --truth).")] = None,
    target: Annotated[Optional[Path], typer.Option("--target", help="Its fixed keyframes.")] = None,
    truth: Annotated[Optional[Path], typer.Option("--truth", help="Its ground truth for every frame "
                                                  "that is not a keyframe.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Benchmark folder (default: bench-archs/SHOT); "
                                                "finished sweeps in it are not run again.")] = None,
    archs: Annotated[Optional[str], typer.Option("--archs", help="Comma-separated networks (default: all).")] = None,
    steps: Annotated[int, typer.Option("--steps", min=0, help="Step budget per network (0: none, with "
                                       "--minutes).")] = 300,
    minutes: Annotated[Optional[float], typer.Option("--minutes", min=0.01, help="Also a wall-clock budget "
                                                     "per network, in minutes.")] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Trials per network and budget.")] = 2,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config value for every "
                                                      "network: section.key=value.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Folder for archs.md, archs.csv and "
                                                   "archs.png (default: --out).")] = None,
    render_size: Annotated[str, typer.Option("--render-size", help="WIDTHxHEIGHT of the frame whose "
                                             "render is timed.")] = "1280x720",
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Torch threads while measuring "
                                                   "costs (default: torch's).")] = None,
    remeasure: Annotated[bool, typer.Option("--remeasure", help="Measure costs again.")] = False,
    report_only: Annotated[bool, typer.Option("--report-only", help="Train nothing: measure costs and "
                                              "rewrite the report from the trials already there.")] = False,
    cpus_per_trial: Annotated[Optional[int], typer.Option("--cpus-per-trial", min=1, help="Threads per trial.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:N, mps.")] = None,
    no_track: NoTrackOpt = False,
    tracking_uri: TrackingUriOpt = None,
    experiment: ExperimentOpt = "shotfit",
) -> None:
    """Train every network on the same keyframes, loss and budget; score, time and plot them."""
    # imports PyTorch, which `shotfit --help` should not wait for
    from shotfit.device import configure_threads

    with user_errors({"report_dir": "--report"}):
        size = _size(render_size)
        if source is not None:
            if target is None or truth is None:
                raise ConfigError("--source needs --target (the fixed keyframes) and --truth (every other frame)")
            bench_shot = api.BenchShot(source.name, source=source.resolve(), keyframes=target.resolve(),
                                       truth=truth.resolve())
        elif shot == "sample":
            bench_shot = api.SAMPLE_SHOT
        else:
            raise ConfigError(f"unknown benchmark shot {shot!r}: give --shot sample, or your own shot with "
                              "--source, --target and --truth")
        folder = out or Path("bench-archs") / (source.name if source is not None else shot)
        if threads is not None:
            configure_threads(threads)  # the costs are measured in this process; each trial sets its own
        tracking = api.TrackingOptions(enabled=not no_track, uri=tracking_uri, experiment=experiment)
        result = api.bench_archs(bench_shot, folder, archs=archs.split(",") if archs else None, steps=steps or None,
                                 minutes=minutes, seeds=seeds, overrides=set_ or (), report_dir=report,
                                 render_size=size, remeasure=remeasure, train=not report_only,
                                 tracking=tracking, cpus_per_trial=cpus_per_trial, device=device,
                                 on_stage=lambda stage: console.print(f"[dim]{stage}[/dim]"))
    console.print(result.report["md"].read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"table: {result.report['md']}; every number: {result.report['csv']}; "
                  f"figure: {result.report['png']}", highlight=False)


def _size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (720, 1280), as (height, width)."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise ConfigError(f"--render-size {text!r} must be WIDTHxHEIGHT, e.g. 1920x1080")
    return int(height), int(width)
