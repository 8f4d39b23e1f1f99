"""Sweeps: find the loss weights and settings that make a shot look right, and see why.

A sweep file (:mod:`shotfit.search.spec`) names a shot, the settings to search and a metric on
keyframes held out of training; :func:`run_sweep` trains every trial on Ray Tune (locally or on a
cluster), nested under one MLflow run, and writes a ranked table, ``best.yaml`` and a plot
(:mod:`shotfit.search.results`).

Example:
    >>> from shotfit.search import SweepOptions, load_sweep, run_sweep
    >>> result = run_sweep(load_sweep("loss.yaml"), SweepOptions(out="sweeps/loss"))  # doctest: +SKIP
    >>> result.best.name, result.best_config  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from shotfit.search.spec import SweepSpec, load_sweep

__all__ = ["SweepOptions", "SweepSpec", "TrialUpdate", "load_sweep", "run_sweep"]


def __getattr__(name: str) -> Any:
    # the runner imports Ray: only when a sweep runs, not when a sweep file is checked
    if name in ("SweepOptions", "TrialUpdate", "run_sweep"):
        from shotfit.search import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'shotfit.search' has no attribute {name!r}")
