"""Applying a trained network to whole frames: colour conversion, tiling, precision, alpha pass-through."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from shotfit.archs import build_network
from shotfit.data.keyframes import model_channels
from shotfit.device import seeded_build
from shotfit.errors import RunError, quoted
from shotfit.infer.optimize import InferenceNetwork, code_difference, resolve_precision
from shotfit.infer.tile_plan import default_tile
from shotfit.infer.tiling import default_overlap, tiled_forward
from shotfit.io import ColourPipeline, PixelFormat
from shotfit.runs.folder import RunFolder, load_state

log = logging.getLogger(__name__)


@dataclass
class Predictor:
    """Turns a frame as read (float32 H, W, C) into the edited frame in the same value space.

    The network always runs in eval mode (BatchNorm uses its running statistics), so a frame's result
    never depends on what else is being rendered, and the same input gives bit-identical output.

    Args:
        network: The trained image-to-image network, (B, C, H, W) in [-1, 1].
        colour: How frames map to network values and back (OCIO, on numpy, before and after the
            network; see :class:`shotfit.io.ColourPipeline`).
        device: Where the network runs.
        tile, tile_overlap, blend: Tiling of frames larger than ``tile`` (see ``tiled_forward``; 0 picks
            the device's, see :func:`~shotfit.infer.tile_plan.default_tile`); an unset overlap is
            the network's reach, so tiles match the whole frame.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"`` (see
            :func:`shotfit.infer.optimize.resolve_precision`; ``out_format`` is what it decides by).
            With reduced precision the first frame is also rendered in fp32 and the two compared in
            code values of ``out_format``: beyond one code value, ``auto`` goes back to fp32 for the
            whole render and an explicit choice is kept with a warning.
        out_format: The format the renders are written in.
        compile: ``torch.compile`` the network (CUDA; on the CPU it rendered slower).
    """

    network: nn.Module
    colour: ColourPipeline
    device: torch.device
    tile: int = 0
    tile_overlap: int | None = None
    blend: str = "hann"
    precision: str = "fp32"
    out_format: PixelFormat | None = None
    compile: bool = False

    def __post_init__(self) -> None:
        self.network = self.network.to(self.device).eval()
        reach = default_overlap(self.network)
        if self.tile_overlap is not None and self.tile_overlap < reach:
            log.warning("tile overlap %d is below this network's reach (%d px): tile seams may show; "
                        "leave the overlap unset to use %d", self.tile_overlap, reach, reach)
        self.asked_precision = self.precision
        self.precision = resolve_precision(self.precision, self.device, self.out_format)
        self.runner = InferenceNetwork(self.network, self.precision, compile=self.compile)
        # compared against fp32 on the first frame, when there is a format to count code values in
        self.unchecked = self.precision != "fp32" and self.out_format is not None
        self.code_difference: float | None = None

    @torch.no_grad()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Shape: (H, W, C) float32 -> (H, W, C) float32; an alpha channel is passed through untouched."""
        out = self._output(pixels)
        if self.unchecked:
            self.unchecked = False
            out = self._check_precision(pixels, out)
        return out

    def _output(self, pixels: np.ndarray) -> np.ndarray:
        _, y = self._forward(pixels)
        out = self.colour.from_network(y[0].permute(1, 2, 0).float().cpu().numpy())
        channels = y.shape[1]
        if pixels.shape[2] > channels:
            out = np.concatenate([out, pixels[..., channels:]], axis=2)
        return np.ascontiguousarray(out, dtype=np.float32)

    def _check_precision(self, pixels: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Render ``pixels`` again in fp32; keep reduced precision only within one code value."""
        assert self.out_format is not None
        fast = self.runner
        self.runner = InferenceNetwork(self.network, "fp32")
        reference = self._output(pixels)
        self.code_difference = code_difference(out, reference, self.out_format)
        within = self.code_difference <= 1.0
        log.info("%s render is within %.1f code values of fp32 (%s) on the first frame", self.precision,
                 self.code_difference, self.out_format.describe())
        if within or self.asked_precision != "auto":
            if not within:
                log.warning("%s output differs from fp32 by up to %.0f code values of %s on the first frame; "
                            "use precision fp32 for exact renders", self.precision, self.code_difference,
                            self.out_format.describe())
            self.runner = fast
            return out
        log.warning("%s output differs from fp32 by up to %.0f code values of %s: rendering in fp32",
                    self.precision, self.code_difference, self.out_format.describe())
        self.precision = "fp32"
        return reference

    @torch.no_grad()
    def network_space(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The frame and its prediction as network values mapped to [0, 1], (H, W, C) each.

        This is what previews and training-time numbers look at: for scene-linear data it is the
        log-encoded view, where a difference means the same thing in shadows and highlights.
        """
        x, y = self._forward(pixels)
        return _as_image(x), _as_image(y)

    def _forward(self, pixels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        channels = model_channels(pixels.shape[2])
        values = self.colour.to_network(pixels[..., :channels])
        # (H, W, C) memory seen as (1, C, H, W) is channels-last already: no copy of the frame
        x = torch.from_numpy(values).permute(2, 0, 1)[None].to(self.device)
        tile = default_tile(self.tile, self.device.type, *values.shape[:2])
        return x, tiled_forward(self.runner, x, tile, self.tile_overlap, self.blend)


def _as_image(t: torch.Tensor) -> np.ndarray:
    return t[0].permute(1, 2, 0).float().cpu().numpy() * 0.5 + 0.5


def load_network(run: RunFolder) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a run's network from its own files: the weights carry their architecture and arguments.

    Raises:
        RunError: no weights yet, a damaged file, weights made for another architecture than the
            run's config names, or weights that do not fit the network they claim to be.
    """
    cfg = run.read_config()
    path = run.weights_path()
    state = load_state(path)
    if state["arch"] != cfg.model.arch:
        raise RunError(f"{quoted(path)} holds a '{state['arch']}' network but {quoted(run.config_path)} "
                       f"names '{cfg.model.arch}'")
    # the initial weights are replaced by the run's; drawn from a seeded generator of its own, they
    # leave the process's default generator where it was
    network = seeded_build(lambda: build_network(state["arch"], **state["arch_args"]), 0)
    try:
        network.load_state_dict(state["network"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise RunError(f"{quoted(path)} does not fit a '{state['arch']}' network ({first[:160]})") from None
    return network, state
