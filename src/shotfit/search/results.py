"""A sweep's results as data: ranked rows, ``trials.csv``, ``best.yaml`` and ``metric_vs_params.png``.

Read from the trials' own records (``OUT/trials/<name>/trial.json``), so nothing here needs Ray or
rich: the CLI prints the rows as a table, a notebook can read them the same way.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotfit.config import Config, apply_values, config_to_dict
from shotfit.files import write_bytes_atomic, write_text_atomic
from shotfit.runs.folder import RunFolder
from shotfit.search.spec import Budget, SweepSpec

PHASES = ("search", "top-k")
NUMBERS = ("val/psnr", "val/ssim", "val/lpips", "test/psnr", "test/ssim", "test/lpips", "test/warping_error",
           "test/hf_error")


@dataclass(frozen=True)
class TrialRow:
    """One trial: its settings, its numbers (``val/*``, ``test/*``, ``loss/*``), how far it got."""

    name: str
    phase: str
    status: str  # finished, stopped (early, by the scheduler), error, running
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    step: int
    seconds: float | None
    run: Path
    overrides: tuple[str, ...] = ()
    error: str | None = None

    def value(self, metric: str) -> float | None:
        value = self.metrics.get(metric)
        return None if value is None or math.isnan(value) else float(value)


@dataclass(frozen=True)
class SweepResult:
    """Rows ranked (finished first, by the metric), the best, and the files written."""

    out: Path
    metric: str
    mode: str
    rows: tuple[TrialRow, ...]
    best: TrialRow | None
    best_config: Path | None
    csv: Path
    plot: Path | None
    param_keys: tuple[str, ...] = field(default_factory=tuple)

    def best_params(self) -> dict[str, Any]:
        if self.best is None:
            return {}
        return {"best.trial": self.best.name, **{f"best.{k}": v for k, v in self.best.params.items()}}

    def best_metrics(self) -> dict[str, float]:
        if self.best is None:
            return {}
        return {f"best/{k}": v for k, v in self.best.metrics.items() if k in NUMBERS and not math.isnan(v)}

    def files(self) -> list[Path]:
        # sweep.json: what started the sweep (the sweep file's contents), written by the runner
        return [p for p in (self.csv, self.best_config, self.plot, self.out / "sweep.json") if p is not None]


def collect(out: Path, phase: str | None = None) -> list[TrialRow]:
    """Every trial recorded under ``out/trials`` (of one phase, if given), in name order."""
    rows = []
    for path in sorted(Path(out, "trials").glob("*/trial.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if phase is None or record.get("phase") == phase:
            metrics = {k: float(v) for k, v in record.get("metrics", {}).items()}
            rows.append(TrialRow(record["name"], record.get("phase", "search"), record.get("status", "running"),
                                 dict(record.get("params", {})), metrics, int(record.get("step", 0)),
                                 record.get("seconds"), Path(record["run"]), tuple(record.get("overrides", ())),
                                 record.get("error")))
    return rows


def rank(rows: Sequence[TrialRow], metric: str, mode: str) -> list[TrialRow]:
    """Best first: finished trials by ``metric``, then those stopped early (by how far they got and
    their metric), then the rest. Ties keep name order."""
    sign = -1.0 if mode == "max" else 1.0

    def key(row: TrialRow) -> tuple[int, float, float]:
        value = row.value(metric)
        group = {"finished": 0, "stopped": 1}.get(row.status, 2) if value is not None else 2
        return group, -row.step if group == 1 else 0, sign * value if value is not None else 0.0

    return sorted(rows, key=key)


def write_results(out: Path, spec: SweepSpec, budget: Budget, base: Config) -> SweepResult:
    """Write ``trials.csv``, ``best.yaml`` and ``metric_vs_params.png`` for the trials so far."""
    out = Path(out)
    search = rank(collect(out, "search"), spec.metric, spec.mode)
    top = rank(collect(out, "top-k"), spec.metric, spec.mode)
    pool = top if any(r.status == "finished" for r in top) else search
    best = next((r for r in pool if r.status == "finished" and r.value(spec.metric) is not None), None)
    rows = [*top, *search]
    param_keys = tuple(sorted({k for r in rows for k in r.params}))
    csv_path = out / "trials.csv"
    write_text_atomic(csv_path, trials_csv(rows, param_keys))
    best_path = None
    if best is not None:
        best_budget = spec.top_k_budget if best.phase == "top-k" and spec.top_k_budget else budget
        best_path = out / "best.yaml"
        write_text_atomic(best_path, best_config_yaml(best, spec, best_budget, base))
    plot = out / "metric_vs_params.png"
    if search:
        write_bytes_atomic(plot, plot_metric_vs_params(search, spec))
    else:
        plot = None
    return SweepResult(out, spec.metric, spec.mode, tuple(rows), best, best_path, csv_path, plot, param_keys)


def trials_csv(rows: Sequence[TrialRow], param_keys: Sequence[str]) -> str:
    """Every trial, one line each: name, phase, status, params, every number, steps, seconds, run, error."""
    numbers = sorted({k for r in rows for k in r.metrics}, key=lambda k: (k not in NUMBERS, k))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", "phase", "status", *param_keys, *numbers, "steps", "seconds", "run", "error"])
    for r in rows:
        writer.writerow([r.name, r.phase, r.status, *(r.params.get(k, "") for k in param_keys),
                         *(_csv_number(r.metrics.get(k)) for k in numbers), r.step,
                         "" if r.seconds is None else f"{r.seconds:.1f}", str(r.run), r.error or ""])
    return buffer.getvalue()


def best_config_yaml(best: TrialRow, spec: SweepSpec, budget: Budget, base: Config) -> str:
    """The best trial's full config, ready for ``shotfit train --config``: every keyframe trains (the
    hold-out is dropped), the sweep's CPU share is dropped, steps are the budget that earned the score."""
    import yaml

    try:
        cfg = RunFolder(best.run).read_config()  # as resolved by the trial, model options written out
    except Exception:  # the run folder was moved or pruned: rebuild from what the trial was given
        cfg = apply_values(base, best.params)
    train = dataclasses.replace(cfg.train, threads=base.train.threads,
                                steps=budget.steps if budget.steps else cfg.train.steps)
    cfg = dataclasses.replace(cfg, train=train, data=dataclasses.replace(cfg.data, validation_frames=()))
    score = best.value(spec.metric)
    header = (f"# shotfit sweep '{spec.name}': best trial '{best.name}' ({spec.metric} {score:.4g}).\n"
              f"# data.validation_frames is dropped: this config trains on every keyframe "
              f"(the sweep held {', '.join(map(str, base.data.validation_frames))} out to score trials).\n"
              f"# shotfit train --config best.yaml --source ... --target ... --out ...\n")
    return header + yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


def plot_metric_vs_params(rows: Sequence[TrialRow], spec: SweepSpec) -> bytes:
    """PNG: the metric against each searched setting (log x for log-scaled ones), or, for named
    trials, a bar per trial. Trials stopped early are drawn hollow at their last validation."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    scored = [r for r in rows if r.value(spec.metric) is not None]
    keys = list(spec.space) or ["trial"]
    figure = Figure(figsize=(4.2 * min(len(keys), 3), 3.4 * math.ceil(len(keys) / 3)), layout="constrained")
    axes = figure.subplots(math.ceil(len(keys) / 3), min(len(keys), 3), squeeze=False).ravel()
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    if not spec.space:
        _bars(axes[0], scored, spec.metric)
    for ax, key in zip(axes, spec.space, strict=False):
        dim = spec.space[key]
        for status, style in (("finished", {"color": "C0"}), ("stopped", {"facecolors": "none", "edgecolors": "C0"})):
            chosen = [r for r in scored if r.status == status and key in r.params]
            xs = [_x(r.params[key], dim.values) for r in chosen]
            if xs:
                ax.scatter(xs, [r.value(spec.metric) for r in chosen], s=28,
                           label="stopped early" if status == "stopped" else "finished", **style)
        if dim.is_log or _spans_decades(dim.values):
            ax.set_xscale("log")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in dim.values):
            ax.set_xticks(range(len(dim.values)), [str(v) for v in dim.values])
        ax.set_xlabel(key)
        ax.set_ylabel(spec.metric)
        ax.grid(alpha=0.3)
        if any(r.status == "stopped" for r in scored):
            ax.legend(fontsize=7)
    better = "lower" if spec.mode == "min" else "higher"
    figure.suptitle(f"sweep '{spec.name}': {spec.metric} ({better} is better)")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _bars(ax: Any, rows: Sequence[TrialRow], metric: str) -> None:
    names = [r.name for r in rows]
    ax.bar(range(len(rows)), [r.value(metric) for r in rows],
           color=["C0" if r.status == "finished" else "C7" for r in rows])
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, axis="y")


def _x(value: Any, values: Sequence[Any]) -> Any:
    """A setting's position on the x axis: itself if numeric, else its index among the choices."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return list(values).index(value) if value in values else len(values)


def _spans_decades(values: Sequence[Any]) -> bool:
    """A list of positive numbers ranging over more than a factor 20 (learning rates) reads best on log x."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(numbers) == len(values) and min(numbers) > 0 and max(numbers) / min(numbers) > 20


def _csv_number(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.6g}"
