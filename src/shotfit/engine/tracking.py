"""Experiment tracking: one :class:`Tracker` that fans out to MLflow and TensorBoard.

The trainer talks to a :class:`Tracker` and never to a backend. Tracking must never cost a run: a
backend that fails (server down, unwritable store, a bug) logs one warning and is dropped, and
training goes on with the others. Backends import their packages lazily, so ``import shotfit``
stays light and a user without tracking never pays for mlflow or tensorboard.

Example:
    >>> tracker, ids = start_tracking(TrackingOptions(), Path("shots/A/run1"), params, tags)
    >>> tracker.log_metrics({"loss/total": 0.12, "lr": 2e-3}, step=10)
    >>> tracker.finish(params, {"val/psnr": 31.2})
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from shotfit.engine.tracking_options import STATUSES, TrackingOptions, warn_failed

log = logging.getLogger(__name__)

class Tracker(Protocol):
    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_image(self, key: str, path: Path, step: int) -> None: ...
    def log_artifact(self, path: Path, folder: str | None = None) -> None: ...
    def log_model(self, network: nn.Module, example: torch.Tensor) -> None: ...
    def finish(self, params: Mapping[str, Any], final_metrics: Mapping[str, float],
               status: str = "FINISHED") -> None: ...


class Backend(Protocol):
    """What one tracking backend implements; :class:`FanOutTracker` guards every call."""

    name: str

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None: ...
    def log_image(self, key: str, image: np.ndarray, step: int) -> None: ...  # (H, W, 3) uint8 RGB
    def log_artifact(self, path: Path, folder: str | None) -> None: ...
    def log_model(self, network: nn.Module, example: torch.Tensor) -> None: ...
    def finish(self, params: Mapping[str, Any], final_metrics: Mapping[str, float], status: str) -> None: ...
    def abandon(self) -> None: ...  # release local resources after a failure; no network


class NullTracker:
    """Tracking turned off: every call does nothing."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        pass

    def log_image(self, key: str, path: Path, step: int) -> None:
        pass

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        pass

    def log_model(self, network: nn.Module, example: torch.Tensor) -> None:
        pass

    def finish(self, params: Mapping[str, Any], final_metrics: Mapping[str, float],
               status: str = "FINISHED") -> None:
        pass


class FanOutTracker:
    """Sends every call to each live backend; a backend that raises is warned about once and dropped."""

    def __init__(self, backends: list[Backend]) -> None:
        self.backends = list(backends)
        self.finished = False

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        if (values := _numbers(metrics)) is not None:
            self._each("log_metrics", values, int(step))

    def log_image(self, key: str, path: Path, step: int) -> None:
        if not self.backends:
            return
        image = _read_rgb(Path(path))
        if image is not None:
            self._each("log_image", key, image, int(step))

    def log_artifact(self, path: Path, folder: str | None = None) -> None:
        if not Path(path).exists():
            # the caller's mistake, not the backend's: skip this file, keep tracking
            log.warning("tracking: %s does not exist; not logged", path)
            return
        self._each("log_artifact", Path(path), folder)

    def log_model(self, network: nn.Module, example: torch.Tensor) -> None:
        self._each("log_model", network, example)

    def finish(self, params: Mapping[str, Any], final_metrics: Mapping[str, float],
               status: str = "FINISHED") -> None:
        if status not in STATUSES:
            raise ValueError(f"tracking status {status!r} is not one of {', '.join(STATUSES)}")
        if self.finished:
            return
        self.finished = True
        self._each("finish", params, _numbers(final_metrics) or {}, status)
        self.backends = []

    def _each(self, method: str, *args: Any) -> None:
        for backend in list(self.backends):
            try:
                getattr(backend, method)(*args)
            except Exception as err:  # tracking must never stop training, whatever a backend raises
                warn_failed(backend.name, err)
                self.backends.remove(backend)
                try:
                    backend.abandon()
                except Exception:
                    pass


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: ``{"train": {"lr": 2e-3}}`` -> ``{"train.lr": 2e-3}``.

    Numbers, strings, booleans and None are kept; lists and tuples become JSON strings
    (``"[1, 2]"``), so every value is one a tracker can store as a parameter.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value, default=str)
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def start_tracking(options: TrackingOptions, run_dir: Path, params: Mapping[str, Any],
                   tags: Mapping[str, str], resume_id: str | None = None) -> tuple[Tracker, dict[str, str]]:
    """Start every enabled backend; return one Tracker for all of them and the ids to save.

    Args:
        options: Where and whether to track.
        run_dir: The run folder (its parent holds the default MLflow store).
        params: The resolved config, flattened (:func:`flatten_params`).
        tags: shotfit's own tags (``shotfit.data_hash``, ``shotfit.version``...).
        resume_id: The MLflow run id saved by an earlier start of this run: ``--resume`` logs
            into that run rather than a new one.

    Returns:
        The tracker, and ``{"mlflow_run_id", "mlflow_experiment_id", "mlflow_tracking_uri"}`` when
        MLflow started (empty otherwise), to be saved in the run folder. Never raises for a
        backend that cannot start: it is warned about and left out.
    """
    if not options.enabled:
        return NullTracker(), {}
    run_dir = Path(run_dir).absolute()
    all_tags = {str(k): str(v) for k, v in {**options.tags, **tags}.items()}
    backends: list[Backend] = []
    ids: dict[str, str] = {}
    try:
        # imports mlflow (seconds): only when a run is tracked
        from shotfit.engine.tracking_mlflow import MlflowBackend

        mlflow_backend = MlflowBackend.start(options, run_dir, params, all_tags, resume_id)
        backends.append(mlflow_backend)
        ids.update(mlflow_backend.ids())
    except Exception as err:
        warn_failed("MLflow", err)
    try:
        from shotfit.engine.tracking_tensorboard import TensorBoardBackend  # imports tensorboard: likewise

        backends.append(TensorBoardBackend.start(options.tensorboard or run_dir / "tensorboard"))
    except Exception as err:
        warn_failed("TensorBoard", err)
    return FanOutTracker(backends), ids


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float] | None:
    """The metrics as floats (tensors and numpy scalars too); None, with a warning, if one is not a number."""
    try:
        return {str(key): float(value) for key, value in metrics.items()}
    except (TypeError, ValueError) as err:
        log.warning("tracking: metrics %s are not all numbers (%s); not logged", sorted(metrics), err)
        return None


def _read_rgb(path: Path) -> np.ndarray | None:
    """A PNG (or any 8-bit image OpenCV reads) as (H, W, 3) uint8 RGB; None, with a warning, if unreadable."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        log.warning("tracking: image %s cannot be read; not logged", path)
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
