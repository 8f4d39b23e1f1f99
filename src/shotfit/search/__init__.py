"""Sweeps: find the loss weights and settings that make a shot look right, and see why.

A sweep file (:mod:`shotfit.search.spec`) names a shot, the settings to search and a metric on
keyframes held out of training; :func:`~shotfit.search.runner.run_sweep` (which imports Ray) trains
every trial on Ray Tune (locally or on a cluster), nested under one MLflow run, and writes a ranked
table, ``best.yaml`` and a plot (:mod:`shotfit.search.results`).

Example:
    >>> from shotfit.search import load_sweep
    >>> from shotfit.search.runner import SweepOptions, run_sweep
    >>> result = run_sweep(load_sweep("loss.yaml"), SweepOptions(out="sweeps/loss"))  # doctest: +SKIP
    >>> result.best.name, result.best_config  # doctest: +SKIP
"""

from __future__ import annotations

from shotfit.search.spec import SweepSpec, load_sweep

__all__ = ["SweepSpec", "load_sweep"]
