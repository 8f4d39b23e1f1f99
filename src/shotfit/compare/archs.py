"""Comparing networks: every network on the same keyframes, loss, augmentation and budget.

For each budget the benchmark runs one sweep (:mod:`shotfit.search`) with a named trial per network
and seed, as many at once as the machine allows; each trial trains on the shot's keyframes but one (held out, as in
every sweep), renders the whole shot and is scored against the truth on every frame nobody fixed
(``test/*``: PSNR, SSIM, LPIPS, warping error, high-frequency error). Costs (parameters, FLOPs per
pixel, training step time, render throughput) are measured separately in one quiet process
(:mod:`shotfit.compare.costs`), since trials share the machine.

``OUT/<budget>/`` holds each sweep (``OUT/<budget>.yaml`` is its sweep file), so an interrupted
benchmark picks up where it stopped; ``OUT/archs.csv``, ``archs.md`` and ``archs.png`` are the report.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shotfit.config import Config, apply_overrides
from shotfit.errors import ConfigError, ShotfitError, quoted
from shotfit.files import write_bytes_atomic, write_text_atomic
from shotfit.search import results
from shotfit.search.spec import load_sweep

log = logging.getLogger(__name__)

# The scores of a trial that the report averages over seeds, best-direction first in the table.
SCORES = ("test/psnr", "test/ssim", "test/lpips", "test/warping_error", "test/hf_error", "val/lpips")
# Training settings every architecture shares in the benchmark (the demo's: patches of 96, batch 8).
SHARED_SETTINGS = ("augment.patch_size=96", "data.batch_size=8", "train.validate_every=50",
                   "train.preview_every=100", "train.checkpoint_every=100")


@dataclass(frozen=True)
class BenchShot:
    """The shot a benchmark trains on: the built-in sample, or folders with a truth for every frame."""

    name: str
    sample: bool = False
    source: Path | None = None
    keyframes: Path | None = None
    truth: Path | None = None
    validation_frames: tuple[int, ...] | None = None


# The built-in sample (``--shot sample``): its keyframes less frame 40, which the sweep holds out.
SAMPLE_SHOT = BenchShot("sample", sample=True, validation_frames=(40,))


@dataclass(frozen=True)
class BenchBudget:
    """One budget every architecture gets: steps or minutes of training (one of them)."""

    steps: int | None = None
    minutes: float | None = None

    @property
    def tag(self) -> str:
        return f"steps-{self.steps}" if self.steps else f"minutes-{self.minutes:g}"

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise ConfigError("a benchmark budget is steps or minutes, one of them")


@dataclass(frozen=True)
class ArchResult:
    """One architecture under one budget: scores as mean and spread over seeds, and its costs."""

    arch: str
    budget: str
    seeds: int
    mean: Mapping[str, float]
    std: Mapping[str, float]
    steps: float  # mean steps trained (a minutes budget gives each network what it reached)
    seconds: float  # mean training + scoring seconds of a trial
    costs: Mapping[str, Any] = field(default_factory=dict)


def run_benchmark(shot: BenchShot, archs: Sequence[str], budgets: Sequence[BenchBudget], seeds: int, out: Path,
                  overrides: Sequence[str] = (), sweep_options: Mapping[str, Any] | None = None,
                  on_sweep: Callable[[str], None] | None = None) -> None:
    """Train and score every architecture under every budget: one sweep per budget, a named trial
    per network and seed, as many at once as the machine allows. An interrupted sweep is resumed.

    Args:
        shot: where the keyframes and truth come from.
        archs: registered architecture names, each at its own default options.
        budgets: the budgets; each architecture gets each one.
        seeds: trials per architecture (seeds ``train.seed``, +1, ...).
        out: the benchmark folder.
        overrides: config overrides shared by every trial, after :data:`SHARED_SETTINGS`.
        sweep_options: passed to :class:`shotfit.search.runner.SweepOptions` (tracking, CPUs, device).
        on_sweep: told the name of each sweep as it starts.
    """
    # Ray is an optional dependency (the sweep extra): only a comparison that trains needs it
    from shotfit.search.runner import SweepOptions, run_sweep

    for budget in budgets:
        folder = out / budget.tag
        data: dict[str, Any] = {
            "name": f"archs-{budget.tag}", "metric": "test/lpips", "strategy": "grid", "samples": seeds,
            "early_stop": "none", "set": [*SHARED_SETTINGS, *overrides],
            "budget": {"steps": budget.steps} if budget.steps else {"minutes": budget.minutes},
            "trials": [{"name": arch, "set": [f"model.arch={arch}"]} for arch in archs],
        }
        if shot.sample:
            data["shot"] = "sample"
        else:
            data.update(source=str(shot.source), keyframes=str(shot.keyframes), truth=str(shot.truth))
        if shot.validation_frames:
            data["validation_frames"] = list(shot.validation_frames)
        # a real sweep file beside the sweep: `shotfit sweep` runs it alone, exactly as here
        sweep_file = out / f"{budget.tag}.yaml"
        text = yaml.safe_dump(data, sort_keys=False)
        if (folder / "sweep.json").is_file() and sweep_file.is_file() and sweep_file.read_text() == text:
            if _finished(folder, len(archs) * seeds):
                log.info("benchmark: %s already finished", budget.tag)
                continue
            resume = True
        elif folder.exists():
            raise ShotfitError(f"{quoted(folder)} holds a benchmark of other networks, seeds or settings: "
                               "give another --out")
        else:
            resume = False
        write_text_atomic(sweep_file, text)
        spec = load_sweep(sweep_file)
        if on_sweep is not None:
            on_sweep(spec.name)
        run_sweep(spec, SweepOptions(folder, resume=resume, **dict(sweep_options or {})))


def collect_results(out: Path, archs: Sequence[str], budgets: Sequence[BenchBudget],
                    costs: Mapping[str, Mapping[str, Any]]) -> list[ArchResult]:
    """Each (budget, architecture)'s finished trials, averaged over seeds."""
    found = []
    for budget in budgets:
        finished = [r for r in results.collect(out / budget.tag, "search") if r.status == "finished"]
        for arch in archs:
            rows = [r for r in finished if _arch_of(r.name) == arch]
            if not rows:
                continue
            mean, std = {}, {}
            for key in SCORES:
                values = [v for r in rows if (v := r.value(key)) is not None]
                if values:
                    mean[key] = statistics.fmean(values)
                    std[key] = statistics.stdev(values) if len(values) > 1 else 0.0
            found.append(ArchResult(arch, budget.tag, len(rows), mean, std,
                                    statistics.fmean(r.step for r in rows),
                                    statistics.fmean(r.seconds or 0.0 for r in rows), costs.get(arch, {})))
    return found


def write_report(found: Sequence[ArchResult], folder: Path, title: str) -> dict[str, Path]:
    """``archs.csv``, ``archs.md`` (a table per budget) and ``archs.png`` (quality against speed)."""
    paths = {"csv": folder / "archs.csv", "md": folder / "archs.md", "png": folder / "archs.png"}
    write_text_atomic(paths["csv"], results_csv(found))
    write_text_atomic(paths["md"], results_markdown(found, title))
    write_bytes_atomic(paths["png"], plot_quality_vs_speed(found, title))
    return paths


def results_csv(found: Sequence[ArchResult]) -> str:
    cost_keys = ("parameters", "flops_per_pixel", "train_step_s", "train_patches_per_s", "render_megapixels_per_s",
                 "render_size", "threads", "device")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["budget", "arch", "seeds", "steps", "seconds", *(f"{k}_mean" for k in SCORES),
                     *(f"{k}_std" for k in SCORES), *cost_keys])
    for r in found:
        writer.writerow([r.budget, r.arch, r.seeds, f"{r.steps:.0f}", f"{r.seconds:.1f}",
                         *(_number(r.mean.get(k)) for k in SCORES), *(_number(r.std.get(k)) for k in SCORES),
                         *("x".join(map(str, r.costs[k])) if k == "render_size" and k in r.costs
                           else r.costs.get(k, "") for k in cost_keys)])
    return buffer.getvalue()


def results_markdown(found: Sequence[ArchResult], title: str) -> str:
    """A table per budget, best test LPIPS first; mean ± spread over seeds."""
    lines = [f"### {title}", ""]
    for budget in dict.fromkeys(r.budget for r in found):
        rows = sorted((r for r in found if r.budget == budget), key=lambda r: r.mean.get("test/lpips", math.inf))
        lines += [f"**Budget {budget.replace('-', ' ')}**; test = every frame nobody fixed, against the truth; "
                  "mean ± standard deviation over seeds.", "",
                  "| network | params (M) | GFLOP / MPx | train step (s) | render MP/s | seeds | steps | PSNR ↑ "
                  "| SSIM ↑ | LPIPS ↓ | warping error ↓ | HF error ↓ |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            c = r.costs
            lines.append(
                f"| {r.arch} | {_fmt(c.get('parameters'), 1e-6, 2)} | {_fmt(c.get('flops_per_pixel'), 1e-3, 1)} "
                f"| {_fmt(c.get('train_step_s'), 1, 2)} | {_fmt(c.get('render_megapixels_per_s'), 1, 2)} "
                f"| {r.seeds} | {r.steps:.0f} | {_pm(r, 'test/psnr', 2)} | {_pm(r, 'test/ssim', 3)} | {_pm(r, 'test/lpips', 3)} "
                f"| {_pm(r, 'test/warping_error', 6)} | {_pm(r, 'test/hf_error', 3)} |")
        lines.append("")
    measured = next((r.costs for r in found if r.costs), None)
    if measured:
        height, width = measured["render_size"]
        lines.append(f"Costs measured in one process with {measured['threads']} thread(s) on {measured['device']}: "
                     f"training step = batch of patches through the hybrid loss and an AdamW update; render = one "
                     f"{width}x{height} frame, tiled as `render.tile` says. FLOPs count convolutions and matrix "
                     "products only.")
    return "\n".join(lines) + "\n"


def plot_quality_vs_speed(found: Sequence[ArchResult], title: str) -> bytes:
    """PNG: test LPIPS (with its spread over seeds) against training step time and render throughput."""
    # matplotlib is an optional dependency (the sweep extra), as in the sweep's own plots
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    markers = dict(zip(dict.fromkeys(r.budget for r in found), "osD^v"))
    for ax, key, label in ((axes[0], "train_step_s", "training step (s), lower is faster"),
                           (axes[1], "render_megapixels_per_s", "render throughput (MP/s), higher is faster")):
        for r in found:
            if key not in r.costs or "test/lpips" not in r.mean:
                continue
            ax.errorbar(r.costs[key], r.mean["test/lpips"], yerr=r.std.get("test/lpips", 0.0),
                        marker=markers[r.budget], capsize=3, linestyle="none", label=f"{r.arch} ({r.budget})")
            ax.annotate(r.arch, (r.costs[key], r.mean["test/lpips"]), textcoords="offset points", xytext=(5, 4),
                        fontsize=8)
        ax.set_xlabel(label)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test LPIPS (lower is better)")
    fig.suptitle(title)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.12 if handles else 0, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def bench_config(overrides: Sequence[str] = ()) -> Config:
    """The config every architecture trains with in the benchmark (costs are measured under it too)."""
    return apply_overrides(Config(), [*SHARED_SETTINGS, *overrides])


def save_costs(path: Path, costs: Mapping[str, Mapping[str, Any]]) -> None:
    write_text_atomic(path, json.dumps(costs, indent=1))


def load_costs(path: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as err:
        raise ShotfitError(f"{quoted(path)} is not valid JSON ({err}); delete it to measure again") from None


def _finished(folder: Path, trials: int) -> bool:
    rows = results.collect(folder, "search") if folder.is_dir() else []
    return sum(r.status == "finished" for r in rows) >= trials


def _arch_of(trial: str) -> str:
    """``unet_attn-seed1`` -> ``unet_attn`` (a trial is named after its network, and its seed if several)."""
    name, _, seed = trial.rpartition("-seed")
    return name if name and seed.isdigit() else trial


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _fmt(value: float | None, scale: float, digits: int) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def _pm(r: ArchResult, key: str, digits: int) -> str:
    if key not in r.mean:
        return "-"
    spread = f" ± {r.std[key]:.{digits}f}" if r.seeds > 1 else ""
    return f"{r.mean[key]:.{digits}f}{spread}"
