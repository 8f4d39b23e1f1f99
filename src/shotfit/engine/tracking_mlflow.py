"""The MLflow backend of :mod:`shotfit.engine.tracking`, through ``MlflowClient`` only.

No fluent call (``mlflow.start_run``, ``mlflow.log_metric``) is used: they keep a global active run
that would leak into the next run of the same process (a sweep's trials, a test that trains twice).
"""

from __future__ import annotations

import contextlib
import copy
import getpass
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shotfit import __version__
from shotfit.engine.tracking_options import TrackingOptions

log = logging.getLogger(__name__)

# MLflow retries a failed HTTP request 7 times with backoff (minutes) and waits 120 s for an answer.
# Starting against a server that is down gives up within a few seconds; once started, a call gives up
# within about half a minute, and the backend is then dropped. A user's own settings win.
START_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
RUN_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
MODEL_NAME = "model"
IMAGE_KEY = re.compile(r"[^a-zA-Z0-9_\-./ ]")


class MlflowBackend:
    """One MLflow run, logged through a client bound to one tracking URI."""

    name = "MLflow"

    def __init__(self, client: Any, uri: str, run_id: str, experiment_id: str,
                 params: Mapping[str, str]) -> None:
        self.client = client
        self.uri = uri
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.params = dict(params)  # what the run already holds: MLflow refuses to change a param
        self.last: dict[str, tuple[int, float]] = {}  # key -> (step, value) last logged
        self.last_step = 0

    @classmethod
    def start(cls, options: TrackingOptions, run_dir: Path, params: Mapping[str, Any],
              tags: Mapping[str, str], resume_id: str | None = None) -> MlflowBackend:
        """Open (or, with ``resume_id``, reopen) the run and log its params and tags."""
        from mlflow.tracking import MlflowClient

        uri = tracking_uri(options, run_dir)
        with http_limits(START_HTTP, uri), quiet_mlflow():
            client = MlflowClient(tracking_uri=uri)
            run = None
            if resume_id:
                run = find_run(client, resume_id)
                if run is None:
                    log.warning("MLflow run %s is not in %s; this run is logged as a new one", resume_id, uri)
            if run is not None:
                client.update_run(run.info.run_id, status="RUNNING")
                client.set_tag(run.info.run_id, "shotfit.resumed", "true")
            else:
                run = _create_run(client, options, run_dir, uri, tags)
        backend = cls(client, uri, run.info.run_id, run.info.experiment_id, run.data.params)
        with http_limits(RUN_HTTP, uri):
            backend._log_tags(tags)
            backend._log_params(params)
        log.info("MLflow run %s in %s", backend.run_id, uri)
        return backend

    def ids(self) -> dict[str, str]:
        return {"mlflow_run_id": self.run_id, "mlflow_experiment_id": self.experiment_id,
                "mlflow_tracking_uri": self.uri}

    # --- Backend -------------------------------------------------------------------------------

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.validation import MAX_METRICS_PER_BATCH

        now = int(time.time() * 1000)
        batch = [Metric(key, value, now, step) for key, value in metrics.items()]
        with http_limits(RUN_HTTP, self.uri):
            for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
                self.client.log_batch(self.run_id, metrics=batch[start:start + MAX_METRICS_PER_BATCH],
                                      synchronous=True)
        for key, value in metrics.items():
            self.last[key] = (step, value)
        self.last_step = max(self.last_step, step)

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        # keyed images get the UI's step slider; MLflow allows only a few characters in the key
        with http_limits(RUN_HTTP, self.uri):
            self.client.log_image(self.run_id, image, key=IMAGE_KEY.sub("_", key), step=step,
                                  synchronous=True)

    def log_artifact(self, path: Path, folder: str | None) -> None:
        with http_limits(RUN_HTTP, self.uri):
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), folder)
            else:
                self.client.log_artifact(self.run_id, str(path), folder)

    def log_model(self, network: nn.Module, example: torch.Tensor) -> None:
        """Log ``network`` as an MLflow 3 logged model named "model", linked to this run.

        Saved in MLflow's "pt2" format (``torch.export``; MLflow 3 refuses to load pickled models
        unless ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is set): ``mlflow.pytorch.load_model`` then
        needs neither shotfit nor pickle, and gives a graph module. Batch, height and width are
        exported as dynamic as far as the network's code lets ``torch.export`` keep them symbolic;
        a shape branch in ``forward`` (padding only when a size is not a multiple) fixes the loaded
        graph to sizes that take the same branch as ``example``. An export that fails is warned
        about, and only the model is missing from the run.
        """
        from mlflow.entities import LoggedModelOutput

        with http_limits(RUN_HTTP, self.uri):
            # the run's params go with the model, as mlflow.pytorch.log_model does: the UI compares by them
            model = self.client.create_logged_model(self.experiment_id, name=MODEL_NAME,
                                                    source_run_id=self.run_id, params=self.params,
                                                    tags={"shotfit.version": __version__})
            with tempfile.TemporaryDirectory(prefix="shotfit-mlflow-") as tmp:
                folder = Path(tmp) / MODEL_NAME
                try:
                    _save_pt2(network, example, folder, model)
                except Exception as err:
                    self.client.finalize_logged_model(model.model_id, "FAILED")
                    reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else "no message"
                    log.warning("MLflow: the network could not be exported for MLflow (%s: %s); the run "
                                "keeps its metrics and files", type(err).__name__, reason)
                    return
                self.client.log_model_artifacts(model.model_id, str(folder))
            self.client.log_outputs(self.run_id, [LoggedModelOutput(model.model_id, self.last_step)])
            self.client.finalize_logged_model(model.model_id, "READY")

    def finish(self, params: Mapping[str, Any], final_metrics: Mapping[str, float], status: str) -> None:
        with http_limits(RUN_HTTP, self.uri):
            self._log_params(params)
            # the final numbers at the run's last step, unless that very point is already there
            final = {key: value for key, value in final_metrics.items()
                     if self.last.get(key) != (self.last_step, value)}
            if final:
                self.log_metrics(final, self.last_step)
            self.client.set_terminated(self.run_id, status)

    def abandon(self) -> None:
        pass  # nothing local to release; telling a failing server would only wait on it again

    # --- helpers -------------------------------------------------------------------------------

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_PARAMS_TAGS_PER_BATCH

        values = {key: str(value)[:MAX_PARAM_VAL_LENGTH] for key, value in params.items()}
        changed = sorted(key for key, value in values.items() if self.params.get(key, value) != value)
        if changed:
            log.info("MLflow keeps the first value of params changed since the run started: %s",
                     ", ".join(changed))
        new = [Param(key, value) for key, value in values.items() if key not in self.params]
        for start in range(0, len(new), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, params=new[start:start + MAX_PARAMS_TAGS_PER_BATCH],
                                  synchronous=True)
        self.params.update({p.key: p.value for p in new})

    def _log_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag
        from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

        batch = [RunTag(key, value) for key, value in tags.items()]
        for start in range(0, len(batch), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(self.run_id, tags=batch[start:start + MAX_PARAMS_TAGS_PER_BATCH],
                                  synchronous=True)


def tracking_uri(options: TrackingOptions, run_dir: Path) -> str:
    """The option's URI, else ``$MLFLOW_TRACKING_URI``, else a sqlite store beside the run folder."""
    uri = options.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return "sqlite:///" + (Path(run_dir).absolute().parent / "mlflow.db").as_posix()
    if "://" not in uri and not uri.startswith("databricks") and Path(uri).suffix in (".db", ".sqlite"):
        return "sqlite:///" + Path(uri).absolute().as_posix()
    return uri


def artifact_location(options: TrackingOptions, uri: str) -> str | None:
    """Where a new experiment keeps artifacts: the option, else ``mlartifacts/`` beside a sqlite file."""
    root = options.artifact_root
    if root is None and uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        root = str(Path(uri[len("sqlite:///"):]).parent / "mlartifacts")
    if root is None or "://" in root:
        return root
    return Path(root).absolute().as_uri()


def find_run(client: Any, run_id: str) -> Any | None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        return client.get_run(run_id)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise


def _create_run(client: Any, options: TrackingOptions, run_dir: Path, uri: str,
                tags: Mapping[str, str]) -> Any:
    run_tags = {"mlflow.source.name": "shotfit", "mlflow.source.type": "LOCAL"}
    with contextlib.suppress(Exception):  # no user name in some containers
        run_tags["mlflow.user"] = getpass.getuser()
    if commit := tags.get("shotfit.git_commit"):
        run_tags["mlflow.source.git.commit"] = commit
    if options.parent_run_id:
        # what mlflow.start_run(nested=True) writes; the child joins its parent's experiment, or
        # the UI could not show it under the parent
        run_tags["mlflow.parentRunId"] = options.parent_run_id
        experiment_id = client.get_run(options.parent_run_id).info.experiment_id
    else:
        experiment_id = find_experiment_id(client, options, uri)
    return client.create_run(experiment_id, tags=run_tags, run_name=options.run_name or Path(run_dir).name)


def find_experiment_id(client: Any, options: TrackingOptions, uri: str) -> str:
    experiment = client.get_experiment_by_name(options.experiment)
    if experiment is None:
        return client.create_experiment(options.experiment, artifact_location=artifact_location(options, uri))
    if experiment.lifecycle_stage == "deleted":
        raise RuntimeError(f"experiment {options.experiment!r} is deleted in {uri}; restore it "
                           "(mlflow experiments restore) or choose another experiment name")
    return experiment.experiment_id


def _save_pt2(network: nn.Module, example: torch.Tensor, folder: Path, model: Any) -> None:
    """Save ``network`` as an MLflow model in ``folder`` (pt2: torch.export), for the logged ``model``."""
    import mlflow.pytorch
    from mlflow.models import Model, ModelSignature
    from mlflow.types import Schema, TensorSpec

    # a CPU copy in eval mode: the trainer's network stays where and as it is
    network = copy.deepcopy(getattr(network, "_orig_mod", network)).cpu().eval()
    example = example.detach().cpu().float()
    if example.shape[0] == 1:
        example = example.repeat(2, *([1] * (example.dim() - 1)))  # a batch of 1 would be exported as fixed
    with torch.no_grad():
        output = network(example)
    signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), _dynamic(example.shape))]),
                               outputs=Schema([TensorSpec(np.dtype(np.float32), _dynamic(output.shape))]))
    mlflow_model = Model(artifact_path=model.artifact_location, run_id=model.source_run_id,
                         model_id=model.model_id, model_uuid=model.model_id)
    # explicit requirements: inferring them would load the model again in a subprocess
    mlflow.pytorch.save_model(network, str(folder), mlflow_model=mlflow_model, signature=signature,
                              input_example=example, serialization_format="pt2",
                              pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])


def _dynamic(shape: torch.Size) -> tuple[int, ...]:
    """Every dimension but the channels (dim 1) free: (-1, C, -1, -1) for (B, C, H, W)."""
    return tuple(size if i == 1 else -1 for i, size in enumerate(shape))


@contextlib.contextmanager
def http_limits(limits: Mapping[str, str], uri: str) -> Iterator[None]:
    """MLflow reads these at every request to a tracking server; set them for the call, unless the
    user set them.

    MLflow (3.17) takes retries and timeouts from the environment only, with no per-client setting,
    so against a server this still writes the process's environment for the call's duration. A local
    store (sqlite, a folder: the default) makes no HTTP request, and the environment is left alone.
    """
    if uri.startswith(("sqlite:", "file:")) or ("://" not in uri and not uri.startswith("databricks")):
        yield
        return
    added = [name for name in limits if name not in os.environ]
    for name in added:
        os.environ[name] = limits[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Hold back MLflow's and alembic's INFO lines about creating a store: the CLI decides what shows."""
    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
