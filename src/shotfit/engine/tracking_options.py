"""What every tracking backend shares: the options that say where a run is tracked, the final
statuses, and the one warning a failing backend gets."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

STATUSES = ("FINISHED", "FAILED", "KILLED")


def disable_mlflow_telemetry(environ: MutableMapping[str, str] = os.environ) -> None:
    """MLflow's usage telemetry off, unless the user chose otherwise: for entry points (the CLI, a
    sweep's trial worker), before MLflow is imported.

    MLflow reads this only from the environment, which is the process's: a library call never sets
    it, and a program that hosts shotfit decides for itself.
    """
    environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass(frozen=True)
class TrackingOptions:
    """Where and whether a run is tracked.

    Args:
        enabled: False (``--no-track``) turns every backend off.
        uri: MLflow tracking URI. None: ``$MLFLOW_TRACKING_URI``, else
            ``sqlite:///<parent of the run folder>/mlflow.db``. A bare ``*.db`` path means sqlite.
        artifact_root: Where a new experiment keeps its artifacts. None: ``mlartifacts/`` beside a
            sqlite store's file; a server chooses its own. Only used when we create the experiment.
        experiment: MLflow experiment name.
        tensorboard: TensorBoard log folder. None: ``<run folder>/tensorboard``.
        parent_run_id: Sweeps: the MLflow run this run is a trial of (shown nested under it).
        run_name: Default: the run folder's name.
        tags: The user's own tags; shotfit's tags (data hash, version...) win over them.
    """

    enabled: bool = True
    uri: str | None = None
    artifact_root: str | None = None
    experiment: str = "shotfit"
    tensorboard: Path | None = None
    parent_run_id: str | None = None
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


def warn_failed(backend: str, err: BaseException) -> None:
    """The one warning a failing backend gets."""
    if isinstance(err, ImportError):
        log.warning("%s tracking is off: %s is not installed (pip install %s, or train with --no-track)",
                    backend, err.name or backend.lower(), err.name or backend.lower())
        return
    text = str(err).strip().splitlines()[0] if str(err).strip() else "no message"
    if len(text) > 200:
        text = text[:197] + "..."
    log.warning("%s tracking failed (%s: %s); training goes on without it", backend, type(err).__name__, text)
