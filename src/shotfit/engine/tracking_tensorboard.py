"""The TensorBoard backend of :mod:`shotfit.engine.tracking`: scalars, contact sheets, and the HParams view.

``tensorboard --logdir <sweep folder>`` compares every trial in the HParams tab: each run writes its
flattened config as hyperparameters and its final numbers as the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# TensorBoard's session status for MLflow's run status; it has no "stopped on purpose" (a user's
# Ctrl-C, a pruned sweep trial), and "failure" would say something untrue
SESSION_STATUS = {"FINISHED": "STATUS_SUCCESS", "FAILED": "STATUS_FAILURE", "KILLED": "STATUS_UNKNOWN"}


class TensorBoardBackend:
    """A ``SummaryWriter`` on one log folder; a resumed run adds an event file beside the first."""

    name = "TensorBoard"

    def __init__(self, writer: Any, folder: Path) -> None:
        self.writer = writer
        self.folder = folder
        self.last: dict[str, tuple[int, float]] = {}
        self.last_step = 0

    @classmethod
    def start(cls, folder: Path) -> TensorBoardBackend:
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(folder)
        return cls(SummaryWriter(log_dir=str(folder)), folder)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
            self.last[key] = (step, value)
        self.last_step = max(self.last_step, step)
        # on disk at once: a sweep's scheduler may end this process at any report
        self.writer.flush()

    def log_image(self, key: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(key, image, step, dataformats="HWC")

    def log_artifact(self, path: Path, folder: str | None) -> None:
        pass  # files stay in the run folder, which TensorBoard does not show

    def log_model(self, network: nn.Module, example: torch.Tensor) -> None:
        pass

    def finish(self, params: Mapping[str, Any], final_metrics: Mapping[str, float], status: str) -> None:
        from torch.utils.tensorboard.summary import hparams

        # The HParams tab reads a metric's value from the run's scalar of that name: write each final
        # number at the last step, unless that very point is already there.
        for key, value in final_metrics.items():
            if self.last.get(key) != (self.last_step, value):
                self.writer.add_scalar(key, value, self.last_step)
        experiment, session_start, _ = hparams({key: hparam_value(value) for key, value in params.items()},
                                               dict(final_metrics))
        file_writer = self.writer._get_file_writer()
        for summary in (experiment, session_start, _session_end(status)):
            file_writer.add_summary(summary)
        self.writer.flush()
        self.writer.close()

    def abandon(self) -> None:
        self.writer.close()


def hparam_value(value: Any) -> float | int | str:
    """A value the HParams view takes: numbers stay numbers; booleans and None become words."""
    if isinstance(value, bool) or value is None:
        return str(value).lower()  # torch would store a bool as 1.0 and drop a None
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _session_end(status: str) -> Any:
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams.api_pb2 import Status
    from tensorboard.plugins.hparams.metadata import PLUGIN_DATA_VERSION, PLUGIN_NAME, SESSION_END_INFO_TAG
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData, SessionEndInfo

    content = HParamsPluginData(session_end_info=SessionEndInfo(status=Status.Value(SESSION_STATUS[status])),
                                version=PLUGIN_DATA_VERSION)
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=PLUGIN_NAME,
                                                                      content=content.SerializeToString()))
    return Summary(value=[Summary.Value(tag=SESSION_END_INFO_TAG, metadata=metadata)])
