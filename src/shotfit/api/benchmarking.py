"""``shotfit bench archs`` as a function: train every network on one shot, measure costs, write the report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.archs import ARCHS
from shotfit.compare.archs import (
    ArchResult,
    BenchBudget,
    BenchShot,
    bench_config,
    collect_results,
    load_costs,
    run_benchmark,
    save_costs,
    write_report,
)
from shotfit.compare.costs import measure_costs
from shotfit.engine.tracking_options import TrackingOptions
from shotfit.errors import ConfigError
from shotfit.files import guard_output

log = logging.getLogger(__name__)
COSTS_FILE = "costs.json"


@dataclass(frozen=True)
class ArchBenchResult:
    results: tuple[ArchResult, ...]
    report: dict[str, Path]


def bench_archs(shot: BenchShot, out: str | Path, archs: Sequence[str] | None = None, steps: int | None = 300,
                minutes: float | None = None, seeds: int = 2, overrides: Sequence[str] = (),
                report_dir: str | Path | None = None, render_size: tuple[int, int] = (720, 1280),
                remeasure: bool = False, train: bool = True,
                tracking: TrackingOptions | None = None, cpus_per_trial: int | None = None,
                device: str | None = None, on_stage: Callable[[str], None] | None = None) -> ArchBenchResult:
    """Run the architecture benchmark (see :mod:`shotfit.compare.archs`) and write its report.

    Costs are measured on torch's thread count as the caller set it (the CLI's ``--threads``).

    Args:
        shot: the shot: :data:`~shotfit.compare.archs.SAMPLE_SHOT`, or folders with a truth for every frame.
        out: the benchmark folder; sweeps already finished in it are not run again.
        archs: architectures to compare (default: every registered one).
        steps, minutes: a step budget, a wall-clock budget, or both (each network gets each).
        seeds: trials per network and budget.
        overrides: config overrides every network trains with.
        report_dir: where ``archs.md``, ``archs.csv`` and ``archs.png`` go (default: ``out``).
        render_size: (height, width) of the frame whose render is timed.
        remeasure: measure costs again even for networks already measured in ``out``.
        train: False only measures costs and rewrites the report from the trials already there.
        tracking, cpus_per_trial, device: as for a sweep.
        on_stage: told what runs next (a sweep's name, or "costs <arch>").

    Raises:
        ConfigError: unknown architecture, no budget, fewer than one seed.
    """
    names = list(archs) if archs else ARCHS.available()
    for name in names:
        ARCHS.get(name)  # one line naming the known ones if not
    if seeds < 1:
        raise ConfigError(f"seeds must be at least 1, got {seeds}")
    budgets = [b for b in (BenchBudget(steps=steps) if steps else None,
                           BenchBudget(minutes=minutes) if minutes else None) if b is not None]
    if not budgets:
        raise ConfigError("give a step budget, a wall-clock budget (minutes), or both", parameter="steps")
    inputs = [(what, path) for what, path in (("source", shot.source), ("keyframes", shot.keyframes),
                                              ("truth", shot.truth)) if path is not None]
    out = guard_output(out, "bench", protected=inputs, parameter="out")
    if report_dir is not None:
        guard_output(report_dir, "bench", protected=inputs, parameter="report_dir")
    out.mkdir(parents=True, exist_ok=True)
    cfg = bench_config(overrides)  # checks the overrides before anything trains
    if train:
        options: dict[str, Any] = {"tracking": tracking or TrackingOptions(), "cpus_per_trial": cpus_per_trial,
                                   "device": device}
        run_benchmark(shot, names, budgets, seeds, out, overrides, options, on_sweep=on_stage)
    costs_path = out / COSTS_FILE
    costs = load_costs(costs_path)
    for name in names:
        if remeasure or name not in costs:
            if on_stage is not None:
                on_stage(f"costs {name}")
            costs[name] = measure_costs(name, cfg, render_size, options=cfg.model.args,
                                        device=device if device and device != "auto" else "cpu").to_dict()
            save_costs(costs_path, costs)
    found = collect_results(out, names, budgets, costs)
    report = write_report(found, Path(report_dir or out), f"architectures on '{shot.name}'")
    return ArchBenchResult(tuple(found), report)
