"""Running an exported ONNX file through onnxruntime, with numpy only: no PyTorch on this path.

:class:`OnnxModel` is one session over (B, C, H, W) [0, 1] arrays; :class:`OnnxPredictor` turns a
frame as read into the edited frame (colour step, tiles, alpha) like the PyTorch
:class:`~shotfit.infer.predictor.Predictor`, so :func:`shotfit.infer.render.render_shot` takes either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shotfit.errors import RunError, ShotfitError, quoted
from shotfit.export.metadata import ModelInfo
from shotfit.infer.tile_plan import default_tile, tiled_apply
from shotfit.io import ColourPipeline, colour_of_run

log = logging.getLogger(__name__)

# GPU first when this onnxruntime build has one; TensorRT and the like need per-model set-up, so not them
_PROVIDERS = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")

Codes = Callable[[np.ndarray], np.ndarray]


def model_colour(info: ModelInfo, where: str) -> ColourPipeline:
    """The colour pipeline of the run an exported model came from (the file carries its settings)."""
    return ColourPipeline(colour_of_run(info.colour, where))


def colour_codec(colour: ColourPipeline) -> tuple[Codes, Codes]:
    """The run's colour step around an exported model: frame values -> its [0, 1] input, and its output back.

    The one place where exported models meet colour (export's own check uses it too): the working
    space mapped to [0, 1], which is what the exported model takes.
    """

    def encode(pixels: np.ndarray) -> np.ndarray:
        return (colour.to_network(pixels) + 1.0) * 0.5

    def decode(codes: np.ndarray) -> np.ndarray:
        return colour.from_network(codes * 2.0 - 1.0)

    return encode, decode


class OnnxModel:
    """An ONNX file made by ``shotfit export``, loaded into onnxruntime.

    Call it with (B, C, H, W) float32 in [0, 1]; it returns the same shape. ``info`` is the file's
    :class:`ModelInfo`.

    Raises:
        ShotfitError: onnxruntime is not installed.
        RunError: the file is missing, is not an ONNX model, or was not made by ``shotfit export``.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        try:
            import onnxruntime
        except ImportError:
            raise ShotfitError("rendering through ONNX needs onnxruntime: pip install onnxruntime") from None
        if not self.path.is_file():
            raise RunError(f"ONNX model {quoted(self.path)} does not exist")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        available = onnxruntime.get_available_providers()
        providers = [p for p in _PROVIDERS if p in available] or available
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own kinds for damaged or foreign files
            reason = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            raise RunError(f"{quoted(self.path)} is not a readable ONNX model ({reason})") from None
        self.info = ModelInfo.from_strings(self.session.get_modelmeta().custom_metadata_map, self.path)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise RunError(f"{quoted(self.path)} has {len(inputs)} inputs and {len(outputs)} outputs; "
                           "a shotfit model has one of each")
        self._input, self._output = inputs[0].name, outputs[0].name
        log.info("%s: %s network on %s", self.path, self.info.arch, self.session.get_providers()[0])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Shape: (B, C, H, W) float32 in [0, 1] -> (B, C, H, W) float32 in [0, 1]."""
        if x.ndim != 4 or x.shape[1] != self.info.channels:
            raise ValueError(f"{self.path} takes (B, {self.info.channels}, H, W), got {list(x.shape)}")
        (y,) = self.session.run([self._output], {self._input: np.ascontiguousarray(x, dtype=np.float32)})
        return y


@dataclass
class OnnxPredictor:
    """Turns a frame as read (float32 H, W, C) into the edited frame in the same value space, through ONNX.

    The twin of the PyTorch ``Predictor``: the run's colour step (:func:`colour_codec`), the same tile
    plan and blend (:func:`~shotfit.infer.tile_plan.tiled_apply`), and an alpha channel passed through.

    Args:
        model: the loaded ONNX file.
        tile, tile_overlap, blend: tiling of frames larger than ``tile``; ``None`` takes the file's.
        colour: the colour pipeline; ``None`` takes the file's (the run's settings).
    """

    model: OnnxModel
    tile: int | None = None
    tile_overlap: int | None = None
    blend: str | None = None
    colour: ColourPipeline | None = None
    _codec: tuple[Codes, Codes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        info = self.model.info
        self.tile = self.tile or info.tile  # 0: by frame size, as the CPU renders
        self.blend = self.blend or info.blend
        self.colour = self.colour or model_colour(info, quoted(self.model.path))
        self._codec = colour_codec(self.colour)
        if self.tile_overlap is not None and self.tile_overlap < info.tile_overlap:
            log.warning("tile overlap %d is below this network's reach (%d px): tile seams may show; "
                        "leave the overlap unset to use %d", self.tile_overlap, info.tile_overlap, info.tile_overlap)

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Shape: (H, W, C) float32 -> (H, W, C) float32; an alpha channel is passed through untouched."""
        info = self.model.info
        encode, decode = self._codec
        channels = info.channels
        x = encode(pixels[..., :channels]).transpose(2, 0, 1)[None].astype(np.float32)
        tile = default_tile(self.tile, "cpu", *pixels.shape[:2])
        y = tiled_apply(self.model, x, tile, self.tile_overlap, self.blend, info.size_multiple,
                        info.max_tile, default_overlap=info.tile_overlap)
        out = decode(y[0].transpose(1, 2, 0))
        if pixels.shape[2] > channels:
            out = np.concatenate([out, pixels[..., channels:]], axis=2)
        return np.ascontiguousarray(out, dtype=np.float32)
