"""The sweep file: which shot, which settings to search, how to score and how much to spend.

Parsed into frozen dataclasses; every mistake is one :class:`~shotfit.errors.ConfigError` line naming
the file and the key (``sweep 'loss.yaml': space.train.lr: ...``). Paths are relative to the file.
Nothing here reads the shot or builds a config: :mod:`shotfit.search.plan` does that.

Example (``loss.yaml``)::

    name: loss-ablation
    shot: sample
    metric: val/lpips
    budget: {steps: 300}
    strategy: random
    samples: 8
    early_stop: asha
    space:
      loss.lpips: [0, 0.1, 0.3]
      train.lr: {loguniform: [1e-4, 1e-2]}
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from shotfit.errors import ConfigError, quoted
from shotfit.search.builtin import builtin_sweeps
from shotfit.search.values import read_settings

# Metric -> the direction that is better. test/* needs a truth shot (every trial is then rendered).
METRICS = {"val/psnr": "max", "val/ssim": "max", "val/lpips": "min",
           "test/psnr": "max", "test/ssim": "max", "test/lpips": "min", "test/warping_error": "min", "test/hf_error": "min"}
STRATEGIES = ("grid", "random", "optuna")
DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint", "lograndint")
# Set by the sweep itself (budget, CPUs per trial, the hold-out): never searched.
RESERVED_KEYS = ("train.steps", "train.threads", "train.device", "data.validation_frames")
_KEYS = ("name", "shot", "source", "keyframes", "masks", "truth", "config", "set", "validation_frames",
         "metric", "mode", "budget", "strategy", "samples", "seed", "early_stop", "top_k", "top_k_budget",
         "space", "trials")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Budget:
    """What one trial may spend: steps, minutes, or both (whichever ends first)."""

    steps: int | None = None
    minutes: float | None = None


@dataclass(frozen=True)
class Dimension:
    """One searched config key: a list of values, or a distribution (``kind`` in DISTRIBUTIONS).

    ``values`` holds the list (kind ``"list"``), the choices, or the (low, high) bounds.
    """

    key: str
    kind: str
    values: tuple[Any, ...]

    @property
    def is_log(self) -> bool:
        return self.kind in ("loguniform", "lograndint")


@dataclass(frozen=True)
class NamedTrial:
    """One configuration of an ablation: a name, its overrides as written (``loss.l1=1``) and as values."""

    name: str
    overrides: tuple[str, ...] = ()
    values: Mapping[str, Any] = field(default_factory=dict)  # {"loss.l1": 1}, read once from overrides


@dataclass(frozen=True)
class EarlyStop:
    """``asha`` stops trials whose validation lags at each rung; ``none`` lets every trial finish.

    grace_period is in steps (None: a tenth of the budget, at least one validation); trials are
    cut to 1/reduction_factor at each rung.
    """

    kind: str = "none"
    grace_period: int | None = None
    reduction_factor: int = 3


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file; paths are absolute."""

    path: Path
    name: str
    shot: str | None = None
    source: Path | None = None
    keyframes: Path | None = None
    masks: Path | None = None
    truth: Path | None = None
    config: Path | None = None
    overrides: tuple[str, ...] = ()
    validation_frames: tuple[int, ...] | None = None
    metric: str = "val/lpips"
    mode: str = "min"
    budget: Budget = Budget()
    strategy: str = "grid"
    samples: int = 1
    seed: int = 0
    early_stop: EarlyStop = EarlyStop()
    top_k: int = 0
    top_k_budget: Budget | None = None
    space: Mapping[str, Dimension] = field(default_factory=dict)
    trials: tuple[NamedTrial, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "space", MappingProxyType(dict(self.space)))

    @property
    def has_truth(self) -> bool:
        return self.truth is not None or self.shot == "sample"


class _Reader:
    """Reads keys of one sweep file; every complaint names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"sweep {quoted(self.path)}: {key}: {problem}")

    def path_of(self, key: str, value: Any) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(key, f"{value!r} must be a path")
        return (self.path.parent / Path(value).expanduser()).resolve()

    def integer(self, key: str, value: Any, low: int) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise self.error(key, f"{value!r} must be an integer >= {low}")
        return value

    def number(self, key: str, value: Any) -> float:
        value = _number(value)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            raise self.error(key, f"{value!r} must be a number")
        return value

    def overrides(self, key: str, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise self.error(key, "must be a list of section.key=value overrides")
        for item in items:
            if "=" not in item or len(item.partition("=")[0].strip().split(".")) != 2:
                raise self.error(key, f"{item!r} must look like section.key=value (e.g. loss.l1=1)")
        return tuple(items)

    def budget(self, key: str, value: Any) -> Budget:
        if not isinstance(value, Mapping) or not value or set(value) - {"steps", "minutes"}:
            raise self.error(key, f"{value!r} must be a mapping of steps and/or minutes, e.g. {{steps: 300}}")
        steps = None if value.get("steps") is None else self.integer(f"{key}.steps", value["steps"], 1)
        minutes = None
        if value.get("minutes") is not None:
            minutes = float(self.number(f"{key}.minutes", value["minutes"]))
            if minutes <= 0:
                raise self.error(f"{key}.minutes", f"{minutes} must be above 0")
        if steps is None and minutes is None:
            raise self.error(key, "give steps and/or minutes")
        return Budget(steps, minutes)

    def dimension(self, key: str, value: Any) -> Dimension:
        where = f"space.{key}"
        if len(key.split(".")) != 2 or not all(key.split(".")):
            raise self.error(where, "keys are dotted config keys, section.key (e.g. loss.lpips)")
        if key in RESERVED_KEYS:
            raise self.error(where, "is set by the sweep itself (budget, CPUs per trial, hold-out) and "
                                    "cannot be searched")
        if isinstance(value, list):
            if not value:
                raise self.error(where, "the list of values is empty")
            return Dimension(key, "list", tuple(_number(v) for v in value))
        if not isinstance(value, Mapping) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
            raise self.error(where, f"{value!r} must be a list of values or one of "
                                    f"{{{'|'.join(DISTRIBUTIONS)}: [...]}} (a fixed value goes in set:)")
        kind, args = next(iter(value.items()))
        if not isinstance(args, list) or not args:
            raise self.error(where, f"{kind} needs a list, e.g. {{{kind}: [1, 10]}}")
        if kind == "choice":
            return Dimension(key, kind, tuple(_number(v) for v in args))
        if len(args) != 2:
            raise self.error(where, f"{kind} needs [low, high], got {args!r}")
        low, high = (self.number(where, v) for v in args)
        if kind in ("randint", "lograndint"):
            low, high = (self.integer(where, v, -(2**62)) for v in (low, high))
        if not low < high:
            raise self.error(where, f"{kind} needs low < high, got {args!r}")
        if kind.startswith("log") and low <= 0:
            raise self.error(where, f"{kind} needs low > 0, got {args!r}")
        return Dimension(key, kind, (low, high))

    def named_trials(self, value: Any) -> tuple[NamedTrial, ...]:
        if not isinstance(value, list) or not value:
            raise self.error("trials", "must be a non-empty list of {name: ..., set: [...]}")
        trials = []
        for i, item in enumerate(value):
            where = f"trials[{i}]"
            if not isinstance(item, Mapping) or set(item) - {"name", "set"} or "name" not in item:
                raise self.error(where, f"{item!r} must be {{name: ..., set: [...]}}")
            overrides = self.overrides(f"{where}.set", item.get("set"))
            try:
                values = read_settings(overrides)
            except ConfigError as err:
                raise self.error(f"{where}.set", str(err)) from None
            trials.append(NamedTrial(self.name(f"{where}.name", item["name"]), overrides, values))
        names = [t.name for t in trials]
        if len(set(names)) != len(names):
            raise self.error("trials", f"names repeat: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
        return tuple(trials)

    def name(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not _NAME.match(value) or len(value) > 64:
            raise self.error(key, f"{value!r} must be a short name of letters, digits, '.', '_' or '-'")
        return value


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and check a sweep file, or a built-in one by its name (``temporal``: no folder, no suffix, and
    no such file here); a missing, malformed or inconsistent one is a one-line ConfigError."""
    builtin = builtin_sweeps()
    if not Path(path).exists() and str(path) in builtin:  # a name is a file's stem: never a path
        path = builtin[str(path)]
    path = Path(path).resolve()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"sweep file {quoted(path)} does not exist (built-in sweeps, by name: "
                          f"{', '.join(builtin) or 'none'})") from None
    except OSError as err:
        raise ConfigError(f"sweep file {quoted(path)} cannot be read ({err.strerror})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"sweep file {quoted(path)} is not valid YAML{where}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"sweep file {quoted(path)} must hold a mapping (name:, shot:, space: ...)")
    return parse_sweep(data, path)


def parse_sweep(data: Mapping[str, Any], path: Path) -> SweepSpec:
    """The checks of :func:`load_sweep` on already-read YAML; ``path`` anchors relative paths."""
    read = _Reader(path)
    for key in data:
        if key not in _KEYS:
            raise read.error(str(key), f"unknown key (known: {', '.join(_KEYS)})")
    kw: dict[str, Any] = {"path": path, "name": read.name("name", data.get("name", path.stem))}

    shot = data.get("shot")
    if shot is not None and shot != "sample":
        raise read.error("shot", f"{shot!r}: the only built-in shot is 'sample' (else give source: and keyframes:)")
    kw["shot"] = shot
    for key in ("source", "keyframes", "masks", "truth", "config"):
        kw[key] = read.path_of(key, data.get(key))
    if shot == "sample":
        given = [k for k in ("source", "keyframes", "masks", "truth") if kw[k] is not None]
        if given:
            raise read.error(given[0], "the sample shot brings its own source, keyframes and truth")
    else:
        for key in ("source", "keyframes"):
            if kw[key] is None:
                raise read.error(key, "missing: give source: and keyframes: folders, or shot: sample")
    kw["overrides"] = read.overrides("set", data.get("set"))

    frames = data.get("validation_frames")
    if frames is not None:
        frames = [frames] if isinstance(frames, int) else frames
        if not isinstance(frames, list) or not frames:
            raise read.error("validation_frames", f"{data['validation_frames']!r} must be a list of keyframe numbers")
        kw["validation_frames"] = tuple(read.integer("validation_frames", f, 0) for f in frames)

    metric = data.get("metric", "val/lpips")
    if metric not in METRICS:
        raise read.error("metric", f"{metric!r} is not one of {', '.join(METRICS)}")
    if metric.startswith("test/") and not (kw["truth"] is not None or shot == "sample"):
        raise read.error("metric", f"{metric} scores the frames nobody fixed against the truth: give truth:")
    mode = data.get("mode", METRICS[metric])
    if mode != METRICS[metric]:
        better = "lower" if METRICS[metric] == "min" else "higher"
        raise read.error("mode", f"{mode!r}: {metric} is better when {better}, so mode is {METRICS[metric]}")
    kw.update(metric=metric, mode=mode)

    if "budget" in data:
        kw["budget"] = read.budget("budget", data["budget"])
    strategy = data.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise read.error("strategy", f"{strategy!r} is not one of {', '.join(STRATEGIES)}")
    kw["strategy"] = strategy
    kw["samples"] = read.integer("samples", data.get("samples", 1 if strategy == "grid" else 8), 1)
    kw["seed"] = read.integer("seed", data.get("seed", 0), 0)
    kw["early_stop"] = _early_stop(read, data.get("early_stop", "none"))
    kw["top_k"] = read.integer("top_k", data.get("top_k", 0), 0)
    if data.get("top_k_budget") is not None:
        kw["top_k_budget"] = read.budget("top_k_budget", data["top_k_budget"])
    elif kw["top_k"]:
        raise read.error("top_k_budget", f"missing: top_k: {kw['top_k']} trains the best configs again to "
                                         "this budget, e.g. {steps: 1000}")

    space, trials = data.get("space"), data.get("trials")
    if space is not None and trials is not None:
        raise read.error("trials", "give either space: (settings to search) or trials: (named "
                                   "configurations), not both")
    if space is None and trials is None:
        raise read.error("space", "missing: give space: (settings to search) or trials: (named configurations)")
    if space is not None:
        if not isinstance(space, Mapping) or not space:
            raise read.error("space", "must map config keys to values, e.g. {loss.lpips: [0, 0.1]}")
        kw["space"] = {str(k): read.dimension(str(k), v) for k, v in space.items()}
        if strategy == "grid":
            for key, dim in kw["space"].items():
                if dim.kind != "list":
                    raise read.error(f"space.{key}", f"grid needs a list of values, not a {dim.kind} "
                                                     "distribution (or use strategy: random or optuna)")
    else:
        if strategy != "grid":
            raise read.error("strategy", f"{strategy}: named trials are run as they are; use strategy: grid")
        kw["trials"] = read.named_trials(trials)
    return SweepSpec(**kw)


def _early_stop(read: _Reader, value: Any) -> EarlyStop:
    if value in ("asha", "none"):
        return EarlyStop(value)
    if isinstance(value, Mapping) and value.get("type") in ("asha", "none") and not set(value) - {
            "type", "grace_period", "reduction_factor"}:
        grace = value.get("grace_period")
        return EarlyStop(value["type"],
                         None if grace is None else read.integer("early_stop.grace_period", grace, 1),
                         read.integer("early_stop.reduction_factor", value.get("reduction_factor", 3), 2))
    raise read.error("early_stop", f"{value!r} must be asha, none, or {{type: asha, grace_period: STEPS, "
                                   "reduction_factor: N}}")


def _number(value: Any) -> Any:
    """PyYAML reads '1e-4' (no dot) as a string; numbers in a sweep file are numbers."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
