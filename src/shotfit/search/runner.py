"""Running a sweep on Ray Tune: the search, then (top_k) the best configurations trained longer.

``OUT/`` holds everything: ``sweep.json`` (what started it, the MLflow parent run), ``base.yaml``
(the config every trial starts from), ``trials/<name>/`` (each trial's record ``trial.json``, run folder
and render), the results written by :mod:`shotfit.search.results`, and ``tune/<phase>/`` (Ray Tune's
own experiment state: pickles, written by Tune and never read back).

``--resume`` is shotfit's own: the phase's trials are known from the sweep file (:mod:`shotfit.search.roster`),
the records say which ended (kept, not run again) and which were begun (they go on from their run
folders' checkpoints), and a fresh Tuner runs the rest. Nothing pickled in the sweep folder is loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shotfit.config import save_config
from shotfit.engine.tracking_options import TrackingOptions
from shotfit.engine.tracking_sweep import child_runs, end_run, finish_parent_run, start_parent_run, sweep_tracking_uri
from shotfit.errors import RunError, ShotfitError, quoted
from shotfit.files import guard_output, write_text_atomic
from shotfit.runs.folder import RunFolder
from shotfit.search import results
from shotfit.search import roster as roster_of
from shotfit.search.cluster import (
    Capacity,
    concurrency,
    joined_ray,
    quiet_ray_environment,
    ray_session,
    release_idle_groups,
)
from shotfit.search.plan import SweepPlan, describe_dimension, plan_sweep
from shotfit.search.spec import Budget, NamedTrial, SweepSpec
from shotfit.search.trial import TrialSetup, read_record, run_trial, score_of, searched_params, trial_name

quiet_ray_environment()  # some of it is read as Ray is imported
from ray import tune  # noqa: E402
from ray.tune.logger import JsonLoggerCallback  # noqa: E402

log = logging.getLogger(__name__)

STATE = "sweep.json"


@dataclass(frozen=True)
class SweepOptions:
    """How and where to run a sweep (the command line's options)."""

    out: Path
    address: str | None = None  # a Ray cluster; None starts Ray locally
    resume: bool = False
    tracking: TrackingOptions = TrackingOptions()
    cpus: int | None = None  # local Ray only: cores to use (default all)
    cpus_per_trial: int | None = None  # default: the cores shared out among the trials
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    device: str | None = None
    joined: bool = False  # run in the Ray this process is a task of (a service job): never start or stop it
    should_stop: Callable[[], bool] | None = None  # asked by Tune's loop: True stops every trial (a cancel)


@dataclass(frozen=True)
class TrialUpdate:
    """What a live display shows of one trial."""

    phase: str
    name: str
    status: str  # pending, running, finished, stopped, error
    step: int
    budget: Budget
    metrics: Mapping[str, float] = field(default_factory=dict)


Watch = Callable[[TrialUpdate], None]


def run_sweep(spec: SweepSpec, options: SweepOptions, watch: Watch | None = None) -> results.SweepResult:
    """Run (or, with ``options.resume``, continue) the sweep of ``spec`` into ``options.out``.

    Args:
        spec: The parsed sweep file.
        options: Where to write, which cluster, tracking, resources.
        watch: Called in this process with every trial's progress (a live table).

    Returns:
        The trials ranked by the sweep's metric, and where the results were written.
    """
    for module, why in (("optuna", spec.strategy == "optuna"), ("matplotlib", True)):
        if why and importlib.util.find_spec(module) is None:
            raise ShotfitError(f"this sweep needs {module}: pip install {module}")
    inputs = [(what, path) for what, path in (("source", spec.source), ("keyframes", spec.keyframes),
                                              ("masks", spec.masks), ("truth", spec.truth)) if path is not None]
    out = guard_output(options.out, "sweep", protected=inputs, parameter="out").resolve()
    state = _check_state(spec, out, options.resume)
    plan = plan_sweep(spec, out)
    save_config(plan.base, out / "base.yaml")
    tracking = _sweep_tracking(options.tracking, out)

    parent = start_parent_run(tracking, spec.name, _sweep_params(spec, plan), {"shotfit.sweep": spec.name},
                              resume_id=state.get("parent_run_id"))
    # base_keys: what the sweep set (the rest of base.yaml is defaults), for a cloud launch of its trials
    state.update(parent_run_id=parent, tracking_uri=tracking.uri if tracking.enabled else None,
                 base_keys=list(plan.given))
    write_text_atomic(out / STATE, json.dumps(state, indent=1))
    trial_tracking = dataclasses.replace(tracking, parent_run_id=parent)
    if options.joined and options.resume:  # in a Ray that outlived the earlier start (a service's)
        release_idle_groups(_recorded_groups(out))
    try:
        with (joined_ray() if options.joined else ray_session(out, options.address, options.cpus)) as capacity:
            _run_phase("search", plan, options, trial_tracking, capacity, watch)
            if spec.top_k:
                _run_phase("top-k", plan, options, trial_tracking, capacity, watch)
    except BaseException as err:
        status = "KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED"
        with contextlib.suppress(Exception):  # the error the user sees is the one above
            _conclude(plan, tracking, parent, status)
        raise
    return _conclude(plan, tracking, parent, "FINISHED")


def _conclude(plan: SweepPlan, tracking: TrackingOptions, parent: str | None, status: str) -> results.SweepResult:
    """Settle the trials' MLflow runs, write the results and end the parent run with ``status``."""

    _settle_child_runs(tracking, parent, plan.out, "FAILED" if status == "FINISHED" else status)
    summary = results.write_results(plan.out, plan.spec, plan.budget, plan.base)
    finish_parent_run(tracking, parent, summary.best_params(), summary.best_metrics(), summary.files(), status)
    return summary


# --- phases -------------------------------------------------------------------------------------

def _run_phase(phase: str, plan: SweepPlan, options: SweepOptions, tracking: TrackingOptions,
               capacity: Capacity, watch: Watch | None) -> None:
    """Run the phase's trials that have not ended: those begun go on from their checkpoints (their run
    folders), the rest start. What ended is read from shotfit's own trial records; Tune starts afresh."""
    spec, out = plan.spec, plan.out
    budget = plan.budget if phase == "search" else spec.top_k_budget
    assert budget is not None
    roster = _roster(phase, plan)
    if roster == ():
        log.warning("no finished trial to train further")
        return
    known = roster_of.progress(out, phase, roster)
    for row in known.done.values():  # a live display counts what an earlier start finished
        if watch is not None:
            watch(TrialUpdate(phase, row.name, row.status, row.step, budget,
                              {k: v for k, v in row.metrics.items() if "/" in k}))
    if roster is not None:
        pending = [t.name for t in roster if t.name not in known.done]
        count = len(pending)
    else:  # Optuna: the rest of the count, the searcher told what the ended trials scored
        pending, count = [], spec.samples - len(known.done)
    if count <= 0:
        log.info("%s: every trial has already run", phase)
        return
    at_once, cpus = concurrency(capacity, count, plan.memory_per_trial, options.cpus_per_trial,
                                options.gpus_per_trial, options.max_concurrent)
    if cpus > capacity.cpus:
        raise ShotfitError(f"cpus_per_trial {cpus} is more than the {capacity.cpus} CPUs Ray has",
                           parameter="cpus_per_trial")
    setup = TrialSetup(plan.shot.source, plan.shot.keyframes, plan.shot.masks, plan.shot.truth,
                       plan.shot.held_out, plan.base, out / "trials", phase, budget,
                       plan.base.train.validate_every, spec.metric, cpus, tracking,
                       {t.name: t for t in roster or ()}, options.device)
    resources = {"cpu": cpus, "memory": plan.memory_per_trial}
    if options.gpus_per_trial:
        resources["gpu"] = options.gpus_per_trial
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), resources)
    param_space = {"trial": tune.grid_search(pending)} if roster is not None else {}
    names = _TrialNames(known, out / "trials", count)
    _WATCHERS[phase] = (watch, budget)
    _STOPS[phase] = options.should_stop
    tune_log = logging.getLogger("ray.tune.tune")  # its "resume with Tuner.restore(...)" is not for CLI users
    level = tune_log.level
    tune_log.setLevel(logging.ERROR)
    try:
        # Tune writes its experiment state (pickles) under tune/<phase>; nothing here ever reads it back
        tuner = tune.Tuner(trainable, param_space=param_space,
                           tune_config=_tune_config(phase, plan, budget, at_once, count, known, names),
                           run_config=tune.RunConfig(name=phase, storage_path=str(out / "tune"), verbose=0,
                                                     callbacks=[_Watcher(phase), JsonLoggerCallback()],
                                                     stop=_Stop(phase) if options.should_stop else None,
                                                     failure_config=tune.FailureConfig(max_failures=0)))
        log.info("%s: %d trials to run (%d ended before, %d to continue), %d at a time, %d CPU(s) each", phase,
                 count, len(known.done), len(known.begun), at_once, cpus)
        grid = tuner.fit()
    finally:
        _WATCHERS.pop(phase, None)
        _STOPS.pop(phase, None)
        tune_log.setLevel(level)
    stopped = options.should_stop is not None and options.should_stop()
    if stopped or len(grid) < count or grid.num_terminated + grid.num_errors < len(grid):
        raise KeyboardInterrupt  # Tune caught Ctrl-C and returned early; the trial records say how far each got
    for result in grid:
        _settle_record(out / "trials" / Path(result.path).name, phase, result.error)


def _roster(phase: str, plan: SweepPlan) -> tuple[NamedTrial, ...] | None:
    """The phase's trials by name (None: an Optuna search, whose trials follow the scores)."""
    if phase == "top-k":
        return roster_of.top_k_roster(plan.out, plan.spec)
    if not roster_of.has_roster(plan.spec, phase):
        return None
    return roster_of.search_roster(plan.spec, plan.base.train.seed)


def _tune_config(phase: str, plan: SweepPlan, budget: Budget, at_once: int, count: int,
                 known: roster_of.PhaseProgress, names: _TrialNames) -> Any:
    from ray.tune.schedulers import ASHAScheduler

    spec = plan.spec
    search_alg: Any = None
    samples = 1
    if phase == "search" and not roster_of.has_roster(spec, phase):
        samples = count
        search_alg = _optuna_search(spec, known)
    scheduler = None
    if phase == "search" and spec.early_stop.kind == "asha":
        time_attr, max_t = ("step", budget.steps) if budget.steps else ("seconds", int(budget.minutes * 60))
        grace = spec.early_stop.grace_period or max(plan.base.train.validate_every, max_t // 10)
        scheduler = ASHAScheduler(time_attr=time_attr, max_t=max_t, grace_period=min(grace, max_t),
                                  reduction_factor=spec.early_stop.reduction_factor)
    return tune.TuneConfig(metric="score", mode=spec.mode, search_alg=search_alg, scheduler=scheduler,
                           num_samples=samples, max_concurrent_trials=at_once, reuse_actors=True,
                           trial_name_creator=names, trial_dirname_creator=names)


def _optuna_search(spec: SweepSpec, known: roster_of.PhaseProgress) -> Any:
    """TPE over the sweep's space (seeded), told what the ended trials scored; the begun ones come first,
    with their own settings, to go on from their checkpoints."""
    import optuna
    from optuna.samplers import TPESampler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    begun = [dict(row.params) for row in known.begun.values() if set(row.params) == set(spec.space)]
    search = OptunaSearch(space=OptunaSearch.convert_search_space(_tune_space(spec)), metric="score", mode=spec.mode,
                          sampler=TPESampler(seed=spec.seed), points_to_evaluate=begun or None)
    for row in known.done.values():
        score = score_of(row.metrics, spec.metric)
        if score is not None and math.isfinite(score) and set(row.params) == set(spec.space):
            search.add_evaluated_point(dict(row.params), score)
    return search


def _tune_space(spec: SweepSpec) -> dict[str, Any]:
    """The sweep's space as Tune's distributions (for Optuna; Tune's upper bound of an integer is exclusive)."""
    space: dict[str, Any] = {}
    for key, dim in spec.space.items():
        if dim.kind in ("list", "choice"):
            space[key] = tune.choice(list(dim.values))
        elif dim.kind in ("randint", "lograndint"):
            space[key] = getattr(tune, dim.kind)(dim.values[0], dim.values[1] + 1)
        else:
            space[key] = getattr(tune, dim.kind)(*dim.values)
    return space


class _TrialNames:
    """Tune's trial_name_creator and trial_dirname_creator. A roster trial is named in its config; an Optuna
    trial begun by an earlier start gets its name back (its settings match: they come first, as the
    searcher's enqueued points), a new one the next free ``trial-NNN`` by its creation number. Tune copies
    this object into every trial it creates, so it keeps no state between calls."""

    def __init__(self, known: roster_of.PhaseProgress, trials_dir: Path, count: int) -> None:
        self.begun = {name: dict(row.params) for name, row in known.begun.items()}
        self.taken = {*known.names, *(p.name for p in trials_dir.glob("*") if p.is_dir())}
        self.count = count

    def __call__(self, trial: Any) -> str:
        config = trial.config
        if "trial" in config:
            return trial_name(config, 0)
        searched = searched_params(config)
        for name, params in self.begun.items():
            if roster_of.same_settings(params, searched):
                return name
        created = int(str(trial.experiment_tag).split("_")[0]) - 1  # Tune's searchers count from 1
        # the begun trials are created first; a new one created among them (none should be) goes past the rest
        position = created - len(self.begun) if created >= len(self.begun) else self.count + created
        return self._free(position)

    def _free(self, position: int) -> str:
        """The ``position``-th name ``trial-NNN`` that no trial of the sweep has."""
        number = -1
        for _ in range(position + 1):
            number += 1
            while trial_name({}, number) in self.taken:
                number += 1
        return trial_name({}, number)


# --- live progress ------------------------------------------------------------------------------

_WATCHERS: dict[str, tuple[Watch | None, Budget]] = {}
_STOPS: dict[str, Callable[[], bool] | None] = {}


class _Stop(tune.Stopper):
    """Stops every trial once the caller's ``should_stop`` says so. Pickled with the experiment, so it holds
    only the phase's name and looks the function up when asked (as :class:`_Watcher`)."""

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return self.stop_all()

    def stop_all(self) -> bool:
        asked = _STOPS.get(self.phase)
        return bool(asked is not None and asked())


class _Watcher(tune.Callback):
    """Tells the live display about each trial. Pickled with the experiment, so it holds only the
    phase's name and looks the display up when called (a resumed sweep brings its own)."""

    def __init__(self, phase: str) -> None:
        self.phase = phase

    def _tell(self, trial: Any, status: str, result: Mapping[str, Any] | None = None) -> None:
        watch, budget = _WATCHERS.get(self.phase, (None, Budget()))
        if watch is None:
            return
        result = result if result is not None else (trial.last_result or {})
        metrics = {k: v for k, v in result.items() if "/" in k and isinstance(v, (int, float))}
        watch(TrialUpdate(self.phase, str(trial), status, int(result.get("step", 0)), budget, metrics))

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, "running")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._tell(trial, "finished" if result.get("finished") else "running", result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, "finished" if (trial.last_result or {}).get("finished") else "stopped")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._tell(trial, "error")


# --- state, records, tracking ---------------------------------------------------------------------

def _check_state(spec: SweepSpec, out: Path, resume: bool) -> dict[str, Any]:
    """The sweep folder's state; a fresh sweep refuses a folder that holds one, a resumed one needs it."""
    path = out / STATE
    sweep_file = yaml.safe_load(spec.path.read_text(encoding="utf-8"))
    if not resume:
        if path.exists() or (out / "tune").exists():
            raise RunError(f"{quoted(out)} already holds a sweep: resume it to continue, or choose another "
                           "folder for the sweep", parameter="resume")
        return {"name": spec.name, "sweep_file": sweep_file}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise RunError(f"{quoted(out)} holds no sweep to resume (no readable {STATE})") from None
    if state.get("sweep_file") != sweep_file:
        raise RunError(f"sweep file {quoted(spec.path)} has changed since the sweep in {quoted(out)} started; "
                       "start the changed sweep in another folder")
    return state


def _recorded_groups(out: Path) -> list[str]:
    """The placement groups the sweep's trials recorded running in (see :func:`release_idle_groups`)."""
    groups: list[str] = []
    for folder in sorted(Path(out, "trials").glob("*")):
        record = read_record(folder) or {}
        found = record.get("placement_groups", [])
        groups += [g for g in found if isinstance(g, str)] if isinstance(found, list) else []
    return groups


def _settle_record(folder: Path, phase: str, error: BaseException | None) -> None:
    """A trial's record after Ray is done with it: stopped early, or an error its process could not tell."""
    record = read_record(folder)
    if record is None:
        record = {"name": folder.name, "phase": phase, "params": {}, "step": 0, "metrics": {}, "seconds": None,
                  "run": str(folder / "run"), "error": None, "status": "running"}
    if record["status"] != "running":
        return
    if error is not None:
        text = [line for line in str(error).splitlines() if line.strip()]
        record.update(status="error", error=text[-1].strip() if text else type(error).__name__)
    else:
        record["status"] = "stopped"
    write_text_atomic(folder / "trial.json", json.dumps(record, indent=1, default=str))


def _settle_child_runs(tracking: TrackingOptions, parent: str | None, out: Path, leftover: str) -> None:
    """End the MLflow run of every trial Ray stopped early as KILLED (its process was ended inside
    ``tune.report``, so nothing there could); any other child still RUNNING ends as ``leftover``
    (FAILED: it died with its process; KILLED: the sweep was interrupted)."""
    if parent is None:
        return

    stopped = set()
    for row in results.collect(out):
        if row.status == "stopped" and RunFolder(row.run).is_run():
            run_id = RunFolder(row.run).read_info().mlflow_run_id
            if run_id:
                stopped.add(run_id)
                end_run(tracking, run_id, "KILLED")
    for child in child_runs(tracking, parent):
        if child.status == "RUNNING" and child.run_id not in stopped:
            end_run(tracking, child.run_id, leftover)


def _sweep_tracking(options: TrackingOptions, out: Path) -> TrackingOptions:
    """Every trial logs into one store: the given URI, else ``sqlite:///OUT/mlflow.db``."""
    if not options.enabled:
        return options

    return dataclasses.replace(options, uri=sweep_tracking_uri(options, out))


def _sweep_params(spec: SweepSpec, plan: SweepPlan) -> dict[str, Any]:

    params: dict[str, Any] = {"sweep.strategy": spec.strategy, "sweep.metric": spec.metric,
                              "sweep.mode": spec.mode, "sweep.samples": spec.samples,
                              "sweep.early_stop": spec.early_stop.kind, "sweep.top_k": spec.top_k,
                              "sweep.budget_steps": plan.budget.steps, "sweep.budget_minutes": plan.budget.minutes,
                              "sweep.validation_frames": list(plan.validation_frames)}
    params.update({f"space.{k}": describe_dimension(d) for k, d in spec.space.items()})
    params.update({f"trials.{t.name}": " ".join(t.overrides) for t in spec.trials})
    return params

