"""Sweep jobs: a sweep of the job's own shot, defined by its settings, run on the service's Ray.

What is searched comes from the settings, as data: ``sweep.preset`` names one of the built-in sweep
files (shipped in the package, :mod:`shotfit.search.builtin`: its space or named trials, metric,
strategy, budget and settings; looked up by name, never a path), and ``sweep.values.SECTION.KEY`` (a list) or
``sweep.uniform|loguniform|randint|lograndint|choice.SECTION.KEY`` (bounds or choices) give or add
dimensions; ``sweep.metric``, ``sweep.steps`` ... the rest. The config keys of the settings are the
sweep's ``set:``. The shot (source, keyframes, truth) is always the job's: no path comes from the job.
Every searched key and value is checked as a job setting is, so a sweep can never set what a job may
not (``loss.extra`` plug-ins, a ``colour.config`` file).

The job's Ray task is Tune's driver and runs in the Ray the service runs on (``SweepRequest.joined``):
its trials are Tune's own tasks and actors, each taking its CPUs from the cluster, while the driver
takes none (:class:`~shotfit.service.dispatch.RayRunner`), so sweeps cannot hold the CPUs their trials
wait for.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from shotfit import api
from shotfit.errors import ConfigError, quoted
from shotfit.files import write_text_atomic
from shotfit.io import open_shot
from shotfit.search.builtin import builtin_sweep, builtin_sweeps
from shotfit.search.spec import DISTRIBUTIONS, METRICS, STRATEGIES, parse_sweep

DIMENSIONS = ("values", *DISTRIBUTIONS)  # sweep.values.loss.l1: [0, 1]; sweep.loguniform.train.lr: [1e-4, 1e-2]
DIMENSION_KEY = r"^sweep\.(" + "|".join(DIMENSIONS) + r")\.[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"
# keys a preset may bring; its shot, its paths and its hold-out (frames of the sample) are never taken
PRESET_KEYS = ("set", "metric", "budget", "strategy", "samples", "seed", "early_stop", "top_k", "top_k_budget",
               "space", "trials")
RESULT_NAMES = ("summary.json", "best.yaml", "trials.csv", "metric_vs_params.png", "sweep.yaml")
_SCALAR = {"type": ["number", "string", "boolean"]}
T = TypeVar("T")


def sweep_fields() -> dict[str, dict[str, Any]]:
    """The ``sweep.*`` settings a sweep job takes, with their JSON schemas (the searched keys are a pattern)."""
    return {
        "sweep.preset": {"enum": sorted(builtin_sweeps()), "description": "a built-in sweep file, by name "
                                                                          "(as `shotfit sweep NAME` runs it)"},
        "sweep.metric": {"enum": list(METRICS), "description": "what ranks the trials (test/* needs truth "
                                                               "frames for every frame but the keyframes)"},
        "sweep.strategy": {"enum": list(STRATEGIES)},
        "sweep.samples": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "trials drawn"},
        "sweep.seed": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "sweep.steps": {"type": "integer", "minimum": 1, "maximum": 10**6, "description": "each trial's budget"},
        "sweep.minutes": {"type": "number", "minimum": 0.01, "maximum": 10**5},
        "sweep.early_stop": {"enum": ["asha", "none"]},
        "sweep.top_k": {"type": "integer", "minimum": 0, "maximum": 100},
        "sweep.top_k_steps": {"type": "integer", "minimum": 1, "maximum": 10**6},
        "sweep.validation_frames": {"type": "array", "items": {"type": "integer"}, "minItems": 1,
                                    "description": "keyframes held out to score the trials (default: one "
                                                   "near the middle)"},
        "sweep.trials_at_once": {"type": "integer", "minimum": 1, "maximum": 1000},
        "sweep.cpus_per_trial": {"type": "integer", "minimum": 1, "maximum": 1024},
        "sweep.gpus_per_trial": {"type": "number", "minimum": 0, "maximum": 64,
                                 "description": "GPUs each trial asks Ray for (fractions share one; default 0)"},
    }


def dimension_schema() -> dict[str, Any]:
    return {"type": "array", "items": _SCALAR, "minItems": 1,
            "description": "sweep.values.KEY: values to try; sweep.DISTRIBUTION.KEY: [low, high] or choices"}


def sweep_file(settings: Mapping[str, Any], overrides: tuple[str, ...], source: Path, keyframes: Path,
               truth: Path | None) -> dict[str, Any]:
    """The sweep file the job runs, as the mapping a sweep file holds: the preset's, the settings' over it,
    the job's shot. ``overrides``: the job's config settings (``section.key=value``), after the preset's."""
    data: dict[str, Any] = {}
    preset = settings.get("sweep.preset")
    if preset is not None:
        data = _read_preset(str(preset))
    data["name"] = "sweep"
    data["source"], data["keyframes"] = str(source), str(keyframes)
    if truth is not None:
        data["truth"] = str(truth)
    data["set"] = [*data.get("set", []), *overrides]
    space = {key.split(".", 2)[2]: _dimension(key.split(".")[1], value)
             for key, value in sorted(settings.items()) if key.count(".") == 3 and key.startswith("sweep.")}
    if space:
        data.pop("trials", None)
        data["space"] = {**data.get("space", {}), **space}
    for key, field in (("sweep.metric", "metric"), ("sweep.strategy", "strategy"), ("sweep.samples", "samples"),
                       ("sweep.seed", "seed"), ("sweep.early_stop", "early_stop"), ("sweep.top_k", "top_k"),
                       ("sweep.validation_frames", "validation_frames")):
        if key in settings:
            data[field] = settings[key]
    if "sweep.steps" in settings or "sweep.minutes" in settings:
        data["budget"] = {k: settings[f"sweep.{k}"] for k in ("steps", "minutes") if f"sweep.{k}" in settings}
    if "sweep.top_k_steps" in settings:
        data["top_k_budget"] = {"steps": settings["sweep.top_k_steps"]}
    return data


def _read_preset(name: str) -> dict[str, Any]:
    try:
        path = builtin_sweep(name)
    except ConfigError as err:
        raise ConfigError(f"setting 'sweep.preset': {err}", parameter="settings") from None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {key: value for key, value in data.items() if key in PRESET_KEYS}


def _dimension(kind: str, values: Any) -> Any:
    return list(values) if kind == "values" else {kind: list(values)}


def needs_truth(settings: Mapping[str, Any]) -> bool:
    """Whether the sweep ranks its trials by a test/* metric (the frames nobody painted, against the truth)."""
    metric = settings.get("sweep.metric")
    if metric is None and settings.get("sweep.preset") in builtin_sweeps():
        metric = _read_preset(str(settings["sweep.preset"])).get("metric")
    return str(metric or "").startswith("test/")


def check_sweep(settings: Mapping[str, Any], overrides: tuple[str, ...],
                check_value: Callable[[str, Any], None]) -> None:
    """Refuse a sweep the job cannot run, in one line: no preset and nothing to search, a sweep file the
    parser refuses (placeholder paths stand for the shot), a searched key or value a job may not set
    (``check_value(key, value)``)."""
    if "sweep.preset" not in settings and not any(k.count(".") == 3 for k in settings if k.startswith("sweep.")):
        raise ConfigError("a sweep job needs setting 'sweep.preset' (a built-in sweep) or what to search "
                          "('sweep.values.SECTION.KEY': [...])", parameter="settings")
    placeholder = Path("/shot")
    data = sweep_file(settings, overrides, placeholder / "source", placeholder / "keyframes", placeholder / "truth")
    where = Path("/the job's settings.yaml")
    try:
        spec = parse_sweep(data, where)
    except ConfigError as err:
        raise ConfigError(str(err).replace(f"sweep {quoted(where)}: ", "sweep settings: "),
                          parameter="settings") from None
    for key, dimension in spec.space.items():
        for value in dimension.values:
            check_value(key, value)
    for trial in spec.trials:
        for key, value in trial.values.items():
            check_value(key, value)


def run(work: Path, data: Mapping[str, Any], settings: Mapping[str, Any], tracking: api.TrackingOptions,
        on_trial: Callable[[Any], None], should_stop: Callable[[], bool]) -> api.SweepResult:
    """Run the sweep file ``data`` in ``work/sweep``, resuming the one an earlier attempt began; then
    ``summary.json`` (the best trial and every trial's settings and numbers) in ``work``."""
    path, out = work / "sweep.yaml", work / "sweep"
    write_text_atomic(path, yaml.safe_dump(dict(data), sort_keys=False))
    resume = (out / "sweep.json").is_file()
    if not resume and out.exists():  # an attempt that died before its sweep began: ours to clear
        shutil.rmtree(out)
    request = api.SweepRequest(api.load_sweep(path), out=out, resume=resume, tracking=tracking, joined=True,
                               cpus_per_trial=settings.get("sweep.cpus_per_trial"),
                               max_concurrent=settings.get("sweep.trials_at_once"),
                               gpus_per_trial=float(settings.get("sweep.gpus_per_trial", 0.0)),
                               device=settings.get("train.device"))
    result = api.sweep(request, on_trial=on_trial, should_stop=should_stop)
    write_text_atomic(work / "summary.json", json.dumps(summary(result), indent=1, default=str))
    return result


def summary(result: api.SweepResult) -> dict[str, Any]:
    """The sweep's answer as JSON: its metric, the best trial (and its config, best.yaml) and every trial."""
    def row(trial: Any) -> dict[str, Any]:
        return {"name": trial.name, "phase": trial.phase, "status": trial.status, "params": dict(trial.params),
                "metrics": {k: v for k, v in trial.metrics.items() if v == v}, "step": trial.step,
                "error": trial.error}

    return {"metric": result.metric, "mode": result.mode,
            "best": None if result.best is None else row(result.best),
            "trials": [row(trial) for trial in result.rows]}


def truth_for(source: Path, keyframes: Path, truth: Path) -> Path | None:
    """The truth when it covers every frame but the keyframes (what a sweep scores test/* on), else None."""
    if not (truth.is_dir() and any(truth.iterdir())):
        return None
    with open_shot(source) as shot, open_shot(keyframes) as keys, open_shot(truth) as known:
        painted, covered = set(keys.frames), set(known.frames)
        return truth if all(f in covered for f in shot.frames if f not in painted) else None


def parent_run(work: Path) -> str | None:
    """The sweep's MLflow run (its trials' parent), once the sweep has written its state."""
    try:
        return json.loads((work / "sweep" / "sweep.json").read_text(encoding="utf-8")).get("parent_run_id")
    except (OSError, ValueError, AttributeError):
        return None


def results(files: Mapping[str, T]) -> dict[str, T]:
    """The sweep job's downloadable files by name, picked from the job folder's ``files`` (by relative path)."""
    found = {}
    for name in RESULT_NAMES:
        relative = name if name in ("summary.json", "sweep.yaml") else f"sweep/{name}"
        if relative in files:
            found[name] = files[relative]
    return found
