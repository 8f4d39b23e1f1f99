"""How far to trust a trained run on a frame nobody painted, without the truth.

Two signs of a frame the network will get wrong, each cheap:

- **flip disagreement**: the network renders the frame and its mirror image; mirrored back, the two
  should agree, and where they do not the network is guessing (test-time augmentation as a confidence
  measure). Compared with LPIPS, so the map says where a viewer would see the difference.
- **distance to the nearest keyframe** in appearance (:mod:`shotfit.suggest.features`): a frame unlike
  every painted frame is one the network learnt nothing about.

Each is put on a common scale (centred on its median over the shot's unpainted frames, divided by its
interquartile range): a frame scoring 0 is the shot's typical unpainted frame, one scoring 1 is an
interquartile range worse. The score is the flip disagreement's, plus the distance's only where a frame
lies further from every keyframe than :data:`ALIEN_DISTANCE` interquartile ranges above the median (a flash
frame, a glitch: nothing painted looks like it). Measured against the real per-frame error (docs/quality.md,
"Which frames to paint"), an ordinary distance to a keyframe ranked frames no better than chance or
backwards (Spearman -0.72 to 0.32 over five runs on two tasks: on a stylised shot with cuts, the shots
nobody painted had the lowest error), and weighting it in at a third cost up to 0.4 of the flips' 0.56-0.59.
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


#: How far above the shot's median distance to a keyframe, in interquartile ranges, a frame must lie before
#: its distance counts: beyond every ordinary frame's (the unpainted frames of the measured runs lay within
#: 1.4), so only a frame unlike anything painted is raised, by what it lies beyond.
ALIEN_DISTANCE = 2.0


def predicted_error(disagreement: Sequence[float], distance: Sequence[float],
                    alien: float = ALIEN_DISTANCE) -> np.ndarray:
    """Each unpainted frame's predicted error as a score: 0 for the shot's typical unpainted frame, 1 for a
    frame whose flips disagree one interquartile range more; a frame that lies more than
    :data:`ALIEN_DISTANCE` interquartile ranges further from the keyframes than the typical one scores that
    excess on top.

    Each sign is centred on its median over the shot and divided by its interquartile range, so scores mean
    the same on any shot.

    Args:
        disagreement: Flip disagreement per unpainted frame.
        distance: Appearance distance to the nearest painted frame, same order.
        alien: The threshold, in interquartile ranges (``bench/suggest_replay.py`` tries others).
    """
    u, d = np.asarray(disagreement, float), np.asarray(distance, float)
    return _robust_z(u) + np.maximum(0.0, _robust_z(d) - alien)


def relative(value: float, values: Sequence[float]) -> float:
    """``value`` over the median of ``values`` (1.0: typical), or nan when the median is 0."""
    typical = float(np.median(values)) if len(values) else 0.0
    return value / typical if typical > 0 else float("nan")


def _robust_z(values: np.ndarray) -> np.ndarray:
    if not len(values):
        return values
    low, middle, high = np.percentile(values, [25, 50, 75])
    spread = high - low if high > low else float(values.std())
    return (values - middle) / spread if spread > 0 else np.zeros_like(values)
