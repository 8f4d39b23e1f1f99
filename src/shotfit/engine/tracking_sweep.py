"""MLflow for sweeps: the parent run every trial nests under, and the state of its children.

Through ``MlflowClient`` only, like :mod:`shotfit.engine.tracking_mlflow`. Tracking never costs a
sweep: a store that fails is warned about once and the sweep goes on untracked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.engine.tracking_options import STATUSES, TrackingOptions, warn_failed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChildRun:
    """One trial's MLflow run as the store has it."""

    run_id: str
    name: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED
    params: Mapping[str, str]
    metrics: Mapping[str, float]


def sweep_tracking_uri(options: TrackingOptions, out: Path) -> str:
    """The store every trial of the sweep in ``out`` shares (default ``sqlite:///OUT/mlflow.db``)."""
    from shotfit.engine.tracking_mlflow import tracking_uri  # mlflow: only when a sweep is tracked

    return tracking_uri(options, Path(out) / "trials")  # its parent, OUT, holds the default store


def start_parent_run(options: TrackingOptions, name: str, params: Mapping[str, Any],
                     tags: Mapping[str, str], resume_id: str | None = None) -> str | None:
    """Create (or reopen) the sweep's run in ``options.uri``; None if tracking is off or fails."""
    if not options.enabled:
        return None
    try:
        import mlflow  # noqa: F401  # before quiet_mlflow: importing mlflow sets its own log levels

        # mlflow: only when a sweep is tracked
        from shotfit.engine.tracking_mlflow import START_HTTP, find_experiment_id, http_limits, quiet_mlflow

        with http_limits(START_HTTP, options.uri or ""), quiet_mlflow():
            client = _client(options)  # a new sqlite store is created here
            if resume_id and _exists(client, resume_id):
                client.update_run(resume_id, status="RUNNING")
                return resume_id
            experiment_id = find_experiment_id(client, options, options.uri or "")
            run = client.create_run(experiment_id, run_name=name, tags={
                "mlflow.source.name": "shotfit sweep", "mlflow.source.type": "LOCAL",
                **{str(k): str(v) for k, v in {**options.tags, **tags}.items()}})
            _log_params(client, run.info.run_id, params)
            return run.info.run_id
    except Exception as err:
        warn_failed("MLflow", err)
        return None


def finish_parent_run(options: TrackingOptions, run_id: str | None, params: Mapping[str, Any],
                      metrics: Mapping[str, float], artifacts: Sequence[Path], status: str = "FINISHED") -> None:
    """Log the best trial's params and numbers and the sweep's files, and end the run with ``status``."""
    if run_id is None or not options.enabled:
        return
    if status not in STATUSES:
        raise ValueError(f"tracking status {status!r} is not one of {', '.join(STATUSES)}")
    try:
        from shotfit.engine.tracking_mlflow import RUN_HTTP, http_limits  # mlflow: only when tracked

        client = _client(options)
        with http_limits(RUN_HTTP, options.uri or ""):
            _log_params(client, run_id, params)
            for key, value in metrics.items():
                client.log_metric(run_id, key, float(value))
            for path in artifacts:
                if Path(path).is_file():
                    client.log_artifact(run_id, str(path))
            client.set_terminated(run_id, status)
    except Exception as err:
        warn_failed("MLflow", err)


def child_runs(options: TrackingOptions, parent_id: str | None) -> list[ChildRun]:
    """Every run nested under ``parent_id`` (the sweep's trials), oldest first."""
    if parent_id is None or not options.enabled:
        return []
    try:
        client = _client(options)
        parent = client.get_run(parent_id)
        runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'",
                                  order_by=["attributes.start_time ASC"], max_results=10_000)
    except Exception as err:
        warn_failed("MLflow", err)
        return []
    return [ChildRun(r.info.run_id, r.info.run_name or "", r.info.status, dict(r.data.params),
                     dict(r.data.metrics)) for r in runs]


def end_run(options: TrackingOptions, run_id: str, status: str) -> None:
    """Mark a trial's run ended (KILLED for one stopped early, whose process Ray ended)."""
    if not options.enabled:
        return
    try:
        _client(options).set_terminated(run_id, status)
    except Exception as err:
        warn_failed("MLflow", err)


def log_run_metrics(options: TrackingOptions, run_id: str, metrics: Mapping[str, float], step: int) -> None:
    """Add numbers to a run after training (a trial's scores on the frames nobody fixed)."""
    if not options.enabled or not metrics:
        return
    try:
        client = _client(options)
        for key, value in metrics.items():
            client.log_metric(run_id, key, float(value), step=step)
    except Exception as err:
        warn_failed("MLflow", err)


# --- helpers ------------------------------------------------------------------------------------

def _client(options: TrackingOptions) -> Any:
    from mlflow.tracking import MlflowClient

    if not options.uri:
        raise ValueError("a sweep's tracking options carry the store's URI (sweep_tracking_uri)")
    return MlflowClient(tracking_uri=options.uri)


def _exists(client: Any, run_id: str) -> bool:
    from shotfit.engine.tracking_mlflow import find_run  # mlflow: only when tracked

    return find_run(client, run_id) is not None


def _log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

    have = client.get_run(run_id).data.params
    new = [Param(str(k), str(v)[:MAX_PARAM_VAL_LENGTH]) for k, v in params.items() if str(k) not in have]
    for start in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=new[start:start + MAX_PARAMS_TAGS_PER_BATCH], synchronous=True)
