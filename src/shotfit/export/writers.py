"""Writing a network as TorchScript or ONNX with its metadata, and measuring the file against PyTorch."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from shotfit.export.metadata import INPUT_NAME, OUTPUT_NAME, TORCHSCRIPT_METADATA, ModelInfo
from shotfit.export.runtime import OnnxModel

ONNX_OPSET = 17
# Every exported axis but C is free: the host may send any batch and any frame size.
_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


class UnitRange(nn.Module):
    """A shotfit network (which works on [-1, 1]) behind [0, 1] in and out: what an exported file holds.

    Shape: (B, C, H, W) float32 in [0, 1] -> (B, C, H, W) float32 in [0, 1] (the network ends in tanh).
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.eval()  # BatchNorm's running statistics, TLC's local pooling: the network as it renders

    def forward(self, image: Tensor) -> Tensor:
        return (self.network(image * 2.0 - 1.0) + 1.0) * 0.5


@contextlib.contextmanager
def _exporter_notes_hidden() -> Iterator[None]:
    # TorchScript and the TorchScript-based ONNX exporter print deprecation and tracer notes that say
    # nothing about this file; the parity check afterwards is what tells whether the export is right.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def write_torchscript(model: UnitRange, info: ModelInfo, path: Path) -> None:
    """Script ``model`` (control flow kept, so any frame size works) and save it with ``shotfit.json`` inside."""
    with _exporter_notes_hidden():
        scripted = torch.jit.script(model)
        torch.jit.save(scripted, str(path), _extra_files={TORCHSCRIPT_METADATA: info.to_json()})


def write_onnx(model: UnitRange, info: ModelInfo, path: Path) -> None:
    """Trace ``model`` to ONNX (opset 17, batch, height and width dynamic) and add ``shotfit.*`` metadata.

    The TorchScript-based exporter (``dynamo=False``) handles all of shotfit's networks; the example
    frame's size matters only where a network branches in Python, which none does on frame size.
    """
    import onnx

    side = max(64, 2 * info.size_multiple)
    example = torch.rand(1, info.channels, side, side, generator=torch.Generator().manual_seed(0))
    with _exporter_notes_hidden(), torch.no_grad():
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: _DYNAMIC, OUTPUT_NAME: _DYNAMIC},
                          opset_version=ONNX_OPSET)
    proto = onnx.load(str(path))
    for key, value in info.to_strings().items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    proto.doc_string = f"shotfit {info.version}: a '{info.arch}' network, [0, 1] image in and out"
    onnx.save(proto, str(path))


def load_exported(path: Path, fmt: str) -> tuple[object, ModelInfo]:
    """Load a file written here as the host would, with its metadata: a callable on (B, C, H, W) numpy arrays."""
    if fmt == "onnx":
        model = OnnxModel(path, threads=torch.get_num_threads())
        return model, model.info
    extra = {TORCHSCRIPT_METADATA: ""}
    with _exporter_notes_hidden():
        scripted = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return scripted(torch.from_numpy(x)).numpy()

    return run, ModelInfo.from_json(extra[TORCHSCRIPT_METADATA], path)


def max_difference(model: UnitRange, exported: object, frames: Sequence[np.ndarray]) -> tuple[float, tuple[int, int]]:
    """The largest |exported - PyTorch| over ``frames`` ((1, C, H, W) float32 in [0, 1]), and the size where it was."""
    worst, where = 0.0, (0, 0)
    for frame in frames:
        with torch.no_grad():
            reference = model(torch.from_numpy(frame)).numpy()
        got = exported(frame)  # type: ignore[operator]
        if got.shape != reference.shape:
            return float("inf"), (frame.shape[2], frame.shape[3])
        difference = float(np.abs(got.astype(np.float64) - reference).max())
        if np.isnan(difference):
            return difference, (frame.shape[2], frame.shape[3])
        if difference > worst:
            worst, where = difference, (frame.shape[2], frame.shape[3])
    return worst, where
