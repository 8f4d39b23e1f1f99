"""Which trials a sweep phase runs, decided by shotfit from the sweep file alone, and how far they got.

A phase's trials are known before Ray starts: the named trials (one per seed), every combination of a
grid, the settings a random search draws from the sweep's ``seed``, or (top-k) the best finished
search trials. So a resumed sweep runs exactly the trials the first start would have run, named the
same, and reads what each got to from shotfit's own records (``OUT/trials/<name>/trial.json``), never
from Ray Tune's pickled experiment. Optuna's trials depend on the scores before them, so only their
count is known ahead (:func:`has_roster` is False there): the searcher is given the finished ones.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.errors import RunError, quoted
from shotfit.search import results
from shotfit.search.spec import Dimension, NamedTrial, SweepSpec
from shotfit.search.values import plain, settings_text

DONE = ("finished", "stopped")  # a trial that ended (stopped: early, by the scheduler) is not run again


@dataclass(frozen=True)
class PhaseProgress:
    """A phase's trials by what became of them: ended (kept), begun (continued from their checkpoints)."""

    done: Mapping[str, results.TrialRow]
    begun: Mapping[str, results.TrialRow]  # running when the sweep stopped, or failed: run again

    @property
    def names(self) -> set[str]:
        return {*self.done, *self.begun}


def has_roster(spec: SweepSpec, phase: str) -> bool:
    """Whether the phase's trials are known before it runs (all but an Optuna search)."""
    return phase == "top-k" or spec.strategy != "optuna" or bool(spec.trials)


def search_roster(spec: SweepSpec, base_seed: int) -> tuple[NamedTrial, ...]:
    """The search phase's trials, each with its name and settings; the same for every start of the sweep.

    Named trials keep their names (``NAME-seedS`` with ``samples`` above 1: seeds ``base_seed``, +1,
    ...); grid and random trials are ``trial-000``, ``trial-001``, ... The grid varies its first key
    fastest.
    """
    if spec.trials:
        if spec.samples == 1 or spec.strategy != "grid":
            return spec.trials
        return tuple(_seeded(t, base_seed + i) for t in spec.trials for i in range(spec.samples))
    if spec.strategy == "grid":
        keys = list(spec.space)
        seeds = [base_seed + i for i in range(spec.samples)] if spec.samples > 1 else [None]
        combos = [dict(zip(keys, reversed(values))) for values in
                  itertools.product(*(spec.space[k].values for k in reversed(keys)))]
        rows = [{**combo, **({} if seed is None else {"train.seed": seed})} for seed in seeds for combo in combos]
    elif spec.strategy == "random":
        rows = draw(spec.space, spec.samples, spec.seed)
    else:
        raise ValueError("an Optuna search has no roster: its trials follow the scores before them")
    return tuple(NamedTrial(f"trial-{i:03d}", settings_text(row), row) for i, row in enumerate(rows))


def top_k_roster(out: Path, spec: SweepSpec) -> tuple[NamedTrial, ...]:
    """The best finished search trials, to be trained to ``top_k_budget`` as ``NAME-top``."""
    rows = results.rank(results.collect(out, "search"), spec.metric, spec.mode)
    best = [r for r in rows if r.status == "finished" and r.value(spec.metric) is not None][:spec.top_k]
    return tuple(NamedTrial(f"{r.name}-top", r.overrides, dict(r.params)) for r in best)


def draw(space: Mapping[str, Dimension], samples: int, seed: int) -> list[dict[str, Any]]:
    """``samples`` random settings of ``space``, the same for the same seed on every Python.

    Only ``random.Random.random()`` is used, whose sequence Python keeps for a given integer seed
    (its other methods may change between versions): a resumed sweep draws the trials the first
    start drew.
    """
    rng = random.Random(seed)
    return [{key: _sample(dim, rng.random()) for key, dim in space.items()} for _ in range(samples)]


def _sample(dim: Dimension, u: float) -> Any:
    """The value at ``u`` in [0, 1) of one dimension (the bounds of randint and lograndint included)."""
    if dim.kind in ("list", "choice"):
        return dim.values[min(int(u * len(dim.values)), len(dim.values) - 1)]
    low, high = dim.values
    if dim.kind == "uniform":
        return low + (high - low) * u
    if dim.kind == "loguniform":
        return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
    if dim.kind == "randint":
        return min(int(low) + int(u * (high - low + 1)), int(high))
    if dim.kind == "lograndint":
        return min(max(int(math.exp(math.log(low) + (math.log(high + 1) - math.log(low)) * u)), int(low)), int(high))
    raise ValueError(f"unknown dimension kind {dim.kind!r}")


def progress(out: Path, phase: str, roster: Sequence[NamedTrial] | None = None) -> PhaseProgress:
    """What the records say of the phase's trials. With a roster, a record of the same name must hold the
    same settings: a folder a differently drawn sweep (another shotfit) began is refused, not mixed in."""
    rows = {row.name: row for row in results.collect(out, phase)}
    if roster is not None:
        planned = {t.name: t for t in roster}
        for name, row in rows.items():
            if name in planned and not same_settings(row.params, planned[name].values):
                raise RunError(f"trial {name!r} in {quoted(out)} was run with other settings than this sweep "
                               "gives it (begun by another version of shotfit?); start the sweep in another folder")
    done = {name: row for name, row in rows.items() if row.status in DONE}
    begun = {name: row for name, row in rows.items() if row.status not in DONE}
    return PhaseProgress(done, begun)


def same_settings(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Equal settings, floats to a few ulps (a record's JSON and a redraw on another machine's libm)."""
    if set(a) != set(b):
        return False
    for key in a:
        x, y = plain(a[key]), plain(b[key])
        if isinstance(x, float) or isinstance(y, float):
            if not (isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isclose(x, y, rel_tol=1e-12)):
                return False
        elif x != y:
            return False
    return True


def _seeded(trial: NamedTrial, seed: int) -> NamedTrial:
    return NamedTrial(f"{trial.name}-seed{seed}", (*trial.overrides, *settings_text({"train.seed": seed})),
                      {**trial.values, "train.seed": seed})
