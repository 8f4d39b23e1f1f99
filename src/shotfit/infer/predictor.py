"""Applying a trained network to whole frames: colour conversion, tiling, alpha pass-through."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from shotfit.archs import build_network
from shotfit.data.keyframes import model_channels
from shotfit.engine.run_folder import RunFolder, load_state
from shotfit.errors import RunError, quoted
from shotfit.infer.tiling import default_overlap, tiled_forward
from shotfit.io import ColourPipeline

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
        tile, tile_overlap, blend: Tiling of frames larger than ``tile`` (see ``tiled_forward``);
            an unset overlap is the network's reach, so tiles match the whole frame.
    """

    network: nn.Module
    colour: ColourPipeline
    device: torch.device
    tile: int = 1024
    tile_overlap: int | None = None
    blend: str = "hann"

    def __post_init__(self) -> None:
        self.network = self.network.to(self.device).eval()
        reach = default_overlap(self.network)
        if self.tile_overlap is not None and self.tile_overlap < reach:
            log.warning("tile overlap %d is below this network's reach (%d px): tile seams may show; "
                        "leave the overlap unset to use %d", self.tile_overlap, reach, reach)

    @torch.no_grad()
    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """Shape: (H, W, C) float32 -> (H, W, C) float32; an alpha channel is passed through untouched."""
        _, y = self._forward(pixels)
        out = self.colour.from_network(y[0].permute(1, 2, 0).float().cpu().numpy())
        channels = y.shape[1]
        if pixels.shape[2] > channels:
            out = np.concatenate([out, pixels[..., channels:]], axis=2)
        return np.ascontiguousarray(out, dtype=np.float32)

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
        x = torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1)))[None].to(self.device)
        return x, tiled_forward(self.network, x, self.tile, self.tile_overlap, self.blend)


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
    network = build_network(state["arch"], **state["arch_args"])
    try:
        network.load_state_dict(state["network"])
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise RunError(f"{quoted(path)} does not fit a '{state['arch']}' network ({first[:160]})") from None
    return network, state
