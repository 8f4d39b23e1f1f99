"""How far to trust a trained run on a frame nobody painted, without the truth.

Two signs of a frame the network will get wrong, each cheap:

- **flip disagreement**: the network renders the frame and its mirror image; mirrored back, the two
  should agree, and where they do not the network is guessing (test-time augmentation as a confidence
  measure). Compared with LPIPS, so the map says where a viewer would see the difference.
- **distance to the nearest keyframe** in appearance (:mod:`shotfit.suggest.features`): a frame unlike
  every painted frame is one the network learnt nothing about.

Each is divided by its median over the shot's unpainted frames and the two averaged: a frame scoring 2 is
predicted twice as wrong as the shot's typical unpainted frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from shotfit.infer.predictor import Predictor
from shotfit.losses.lpips import LPIPS


@dataclass(frozen=True)
class FlipCheck:
    """A frame's render and its flip disagreement: images (H, W, C) in [0, 1] as the network sees them
    (previews' values), the map (H, W) of LPIPS distance, ``score`` its mean."""

    source: np.ndarray
    render: np.ndarray
    disagreement: np.ndarray
    score: float


@torch.no_grad()
def flip_check(predictor: Predictor, pixels: np.ndarray, lpips: LPIPS) -> FlipCheck:
    """Render ``pixels`` and its left-right mirror and compare the mirrored-back render with the first.

    Args:
        predictor: The run's predictor (tiling, precision and colour as a render has them).
        pixels: The frame as read, float32 (H, W, C).
        lpips: A spatial-capable :class:`LPIPS` with ``input_range`` (0, 1), on the predictor's device.
    """
    source, render = predictor.network_space(pixels)
    _, mirrored = predictor.network_space(np.ascontiguousarray(pixels[:, ::-1]))
    mirrored = mirrored[:, ::-1]
    device = lpips.scaling_layer.shift.device
    a, b = (torch.from_numpy(np.ascontiguousarray(np.clip(x, 0.0, 1.0))).permute(2, 0, 1)[None].to(device)
            for x in (render, mirrored))
    heat = lpips.distance_map(a, b)[0, 0].clamp_min(0.0).cpu().numpy()
    return FlipCheck(np.clip(source, 0.0, 1.0), np.clip(render, 0.0, 1.0), heat, float(heat.mean()))


def predicted_error(disagreement: Sequence[float], distance: Sequence[float]) -> np.ndarray:
    """Each frame's predicted error relative to the shot's typical unpainted frame (1.0).

    Args:
        disagreement: Flip disagreement per unpainted frame.
        distance: Appearance distance to the nearest painted frame, same order.
    """
    return (_relative(np.asarray(disagreement, float)) + _relative(np.asarray(distance, float))) / 2.0


def _relative(values: np.ndarray) -> np.ndarray:
    typical = float(np.median(values)) if len(values) else 0.0
    if typical <= 0.0:
        typical = float(values.mean()) if len(values) and values.mean() > 0 else 1.0
    return values / typical

