"""One trial of a sweep, as Ray Tune runs it in a worker: train, report each validation, score.

The trial keeps its own record in ``OUT/trials/<name>/trial.json`` (params, step, latest numbers,
status), rewritten at every validation, so the sweep's table can be read back without Ray. A trial
stopped early by the scheduler has its process ended by Ray inside ``tune.report``; the driver then
marks its MLflow run KILLED (see :mod:`shotfit.search.runner`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shotfit.config import Config, apply_values
from shotfit.device import configure_threads
from shotfit.engine.tracking_options import TrackingOptions, disable_mlflow_telemetry
from shotfit.engine.tracking_sweep import log_run_metrics
from shotfit.engine.trainer import loss_metrics
from shotfit.files import write_text_atomic
from shotfit.io import hold_native_output
from shotfit.runs.folder import RunFolder
from shotfit.search.spec import Budget, NamedTrial
from shotfit.search.values import plain, settings_text
from shotfit.workflows.rendering import evaluate, render
from shotfit.workflows.requests import TrainCallbacks, TrainRequest
from shotfit.workflows.training import TrainSummary, run_training

# Each ranking metric's stand-in while a trial trains: the scheduler compares trials on it at every
# rung, and on the metric itself once a trial has finished (test/* exists only then).
PROXY = {"val/psnr": "val/psnr", "val/ssim": "val/ssim", "val/lpips": "val/lpips", "test/psnr": "val/psnr",
         "test/ssim": "val/ssim", "test/lpips": "val/lpips", "test/warping_error": "val/lpips",
         "test/hf_error": "val/lpips"}
TRIAL_RECORD = "trial.json"


@dataclass(frozen=True)
class TrialSetup:
    """Everything a worker needs besides the trial's own config (absolute paths only: Ray moves the
    worker into a folder of its own)."""

    source: Path
    keyframes: Path
    masks: Path | None
    truth: Path | None
    held_out: tuple[int, ...]
    base: Config  # the sweep's base config: config file + set: + the hold-out
    trials_dir: Path
    phase: str  # "search" or "top-k"
    budget: Budget
    validate_every: int
    metric: str
    threads: int
    tracking: TrackingOptions
    named: Mapping[str, NamedTrial] = field(default_factory=dict)  # trial name -> its settings
    device: str | None = None


def trial_name(config: Mapping[str, Any], number: int) -> str:
    """A trial's folder and run name: its roster name (named, grid, random and top-k trials carry it in
    their config as ``trial``), else (an Optuna trial) ``trial-NNN`` by number."""
    if "trial" in config:
        return str(config["trial"])
    return f"trial-{number:03d}"


def searched_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's config keys that are settings (not its roster name)."""
    return {k: plain(v) for k, v in config.items() if k != "trial"}


def run_trial(config: dict[str, Any], setup: TrialSetup) -> None:
    """The Tune function trainable: ``tune.with_parameters(run_trial, setup=...)``."""
    from ray import tune


    # the worker's process is the trial's own: its threads, decoders' output and MLflow telemetry as the CLI has them
    configure_threads(setup.threads)
    hold_native_output()
    disable_mlflow_telemetry()
    name = tune.get_context().get_trial_name()
    folder = setup.trials_dir / name
    run_dir = folder / "run"
    named = setup.named.get(str(config.get("trial")))
    params = dict(named.values) if named is not None else searched_params(config)
    # for people reading the record: the named trial's overrides as written, else the settings as text
    overrides = named.overrides if named is not None else settings_text(params)
    resume = RunFolder(run_dir).is_run()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)  # a start that died before it wrote its config: ours to redo
    earlier = read_record(folder) or {}
    record = {"name": name, "phase": setup.phase, "params": params, "overrides": list(overrides),
              "status": "running", "step": 0, "metrics": {}, "seconds": None, "run": str(run_dir), "error": None,
              "placement_groups": _placement_groups(earlier)}
    # recorded before training: a resumed sweep knows this trial's settings (an Optuna trial's too) and,
    # in a shared Ray, which placement group a killed sweep left holding CPUs
    _write_record(folder, record)
    started = time.monotonic()

    def on_validate(step: int, numbers: dict[str, float]) -> None:
        record.update(step=step, metrics={**record["metrics"], **numbers})
        _write_record(folder, record)
        # The final validation is reported with the final scores below, once.
        if step % setup.validate_every == 0 and (setup.budget.steps is None or step < setup.budget.steps):
            tune.report(_report(step, record["metrics"], setup.metric, time.monotonic() - started))

    tracking = dataclasses.replace(setup.tracking, run_name=name, tags={
        **setup.tracking.tags, "shotfit.sweep.phase": setup.phase, "shotfit.sweep.trial": name})
    try:
        cfg = apply_values(setup.base, {**params, "train.threads": setup.threads})
        summary = _train(setup, cfg, run_dir, resume, tracking, on_validate)
        numbers = {k: v for k, v in summary.metrics["final"].items() if k.startswith("val/")}
        numbers.update(loss_metrics(summary.metrics["final"]))
        steps = summary.result.steps_done
        scoring_started = time.monotonic()
        if setup.truth is not None:
            numbers.update(_score_unfixed_frames(setup, folder, run_dir, tracking, steps))
        scoring_s = time.monotonic() - scoring_started
    except BaseException as err:
        if not isinstance(err, SystemExit):  # SystemExit: Ray stopping the trial; the driver says so
            record.update(status="error", error=str(err).splitlines()[0] if str(err) else type(err).__name__)
            _write_record(folder, record)
        raise
    # training time over every start of the run (a resumed trial counts its earlier part), plus scoring
    seconds = summary.result.elapsed_s + scoring_s
    record.update(status="finished", step=steps, metrics={**record["metrics"], **numbers}, seconds=seconds)
    _write_record(folder, record)
    tune.report({**_report(steps, record["metrics"], setup.metric, seconds), "finished": True})


def _train(setup: TrialSetup, cfg: Config, run_dir: Path, resume: bool, tracking: TrackingOptions,
           on_validate: Callable[[int, dict[str, float]], None]) -> TrainSummary:
    request = TrainRequest(setup.source, setup.keyframes, run_dir, config=cfg, steps=setup.budget.steps,
                           minutes=setup.budget.minutes, resume=resume, masks=setup.masks, device=setup.device,
                           tracking=tracking)
    return run_training(request, TrainCallbacks(on_validate=on_validate))


def _placement_groups(earlier: Mapping[str, Any]) -> list[str]:
    """The placement groups this trial ran in, over every start: Tune's, which outlive a driver killed in a
    Ray that goes on (a service's); a resumed sweep frees those left idle."""
    import ray  # the worker is Ray's (Tune's trial actor)

    group = ray.util.get_current_placement_group()
    found = earlier.get("placement_groups")
    known = [g for g in found if isinstance(g, str)] if isinstance(found, list) else []
    return [*known, group.id.hex()] if group is not None and group.id.hex() not in known else known


def read_record(folder: Path) -> dict[str, Any] | None:
    """A trial's ``trial.json``, or None when it never got that far."""
    try:
        return json.loads((folder / TRIAL_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _report(step: int, metrics: Mapping[str, float], metric: str, seconds: float) -> dict[str, Any]:
    """What Tune sees: ``score`` (what the scheduler and the searcher compare), the step, every number."""
    score = score_of(metrics, metric)
    return {"score": score if score is not None else float("nan"), "step": int(step),
            "seconds": float(seconds), **{k: float(v) for k, v in metrics.items()}}


def score_of(metrics: Mapping[str, float], metric: str) -> float | None:
    """What the scheduler and the searcher compare: the metric, or its stand-in while a trial trains."""
    score = metrics.get(metric, metrics.get(PROXY[metric]))
    return float(score) if score is not None else None


def _score_unfixed_frames(setup: TrialSetup, folder: Path, run_dir: Path, tracking: TrackingOptions,
                          step: int) -> dict[str, float]:
    """Render the shot and score the frames nobody fixed against the truth: ``test/*``."""
    render(run_dir, setup.source, folder / "render", device=setup.device or "auto")
    report = evaluate(folder / "render", setup.truth, source=setup.source,
                          json_path=folder / "eval.json", held_out=setup.held_out)
    summary = report.summary(setup.held_out)
    scores = {f"test/{k}": float(summary[k]) for k in ("psnr", "ssim", "lpips", "warping_error", "hf_error")
              if summary.get(k) is not None}
    run_id = RunFolder(run_dir).read_info().mlflow_run_id
    if run_id:
        log_run_metrics(tracking, run_id, scores, step)
    return scores


def _write_record(folder: Path, record: Mapping[str, Any]) -> None:
    write_text_atomic(folder / TRIAL_RECORD, json.dumps(record, indent=1, default=str))
