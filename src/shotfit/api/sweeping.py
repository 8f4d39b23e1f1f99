"""Sweeps from the API: search loss weights and settings on Ray Tune, ranked on held-out keyframes.

Example:
    >>> from shotfit import api
    >>> spec = api.load_sweep("loss.yaml")  # doctest: +SKIP
    >>> result = api.sweep(api.SweepRequest(spec, out="sweeps/loss"))  # doctest: +SKIP
    >>> result.best.name, result.best_config  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shotfit.engine.tracking_options import TrackingOptions
from shotfit.errors import ShotfitError
from shotfit.search.results import SweepResult
from shotfit.search.spec import SweepSpec

if TYPE_CHECKING:
    from shotfit.search.runner import TrialUpdate


@dataclass(frozen=True)
class SweepRequest:
    """One sweep: the parsed sweep file, where it writes, and how it runs (resources, tracking).

    Args:
        spec: The sweep file, parsed (:func:`shotfit.search.load_sweep`).
        out: The sweep folder (None: ``./NAME``, the sweep's name).
        address: A Ray cluster (``ray://head:10001``); None runs Ray on this machine.
        resume: Continue the sweep in ``out``; finished trials are not run again.
        cpus: Cores for a local sweep (None: all).
        cpus_per_trial: Threads per trial (None: the cores shared out among the trials).
        gpus_per_trial: GPUs per trial (fractions share one).
        max_concurrent: Trials at once (None: as many as cores and memory allow).
        device: auto, cpu, cuda, cuda:N or mps (None: the config's).
        joined: Run in the Ray cluster this process is already a task of (a service's sweep job): Ray is
            neither started nor stopped, and the trials plan with the resources free now.
    """

    spec: SweepSpec
    out: Path | None = None
    address: str | None = None
    resume: bool = False
    tracking: TrackingOptions = field(default_factory=TrackingOptions)
    cpus: int | None = None
    cpus_per_trial: int | None = None
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    device: str | None = None
    joined: bool = False

    @property
    def folder(self) -> Path:
        """Where the sweep writes: ``out``, else a folder named after the sweep."""
        return Path(self.out) if self.out is not None else Path(self.spec.name)


def sweep(request: SweepRequest, on_trial: Callable[[TrialUpdate], None] | None = None,
          should_stop: Callable[[], bool] | None = None) -> SweepResult:
    """Run (or, with ``request.resume``, continue) a sweep; every trial trains on Ray Tune.

    Args:
        request: The sweep and how to run it.
        on_trial: Called in this process with each trial's progress (a live table).
        should_stop: Asked as the sweep runs; True stops every trial, writes the results so far and raises
            KeyboardInterrupt, as Ctrl-C does (``resume`` continues it).

    Returns:
        The trials ranked by the sweep's metric, the best config (``best.yaml``), the table and plot.

    Raises:
        ShotfitError: Ray (or another sweep dependency) is not installed, or the sweep cannot run.
    """
    try:
        # Ray is an optional dependency, and slow to import: only a sweep loads it.
        from shotfit.search.runner import SweepOptions, run_sweep
    except ImportError as err:
        raise ShotfitError(f"sweeps need {err.name or 'ray'}: pip install 'ray[tune]' optuna mlflow "
                           "matplotlib") from None
    options = SweepOptions(request.folder, address=request.address, resume=request.resume,
                           tracking=request.tracking, cpus=request.cpus, cpus_per_trial=request.cpus_per_trial,
                           gpus_per_trial=request.gpus_per_trial, max_concurrent=request.max_concurrent,
                           device=request.device, joined=request.joined, should_stop=should_stop)
    return run_sweep(request.spec, options, on_trial)
