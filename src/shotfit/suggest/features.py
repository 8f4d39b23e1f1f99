"""What a frame looks like, as one vector: the LPIPS AlexNet trunk's features pooled over a coarse grid,
beside the frame's colour statistics.

Frames whose vectors lie close need the same edit, so distances between these vectors say which frames
an artist's keyframe would teach the network about. The trunk is the pretrained shift-tolerant AlexNet of
:mod:`shotfit.losses.lpips` (its weights come from the installed ``stlpips-pytorch`` wheel; nothing is
downloaded); each of its five stacks is unit-normalised per pixel, as LPIPS compares them, so a stack's
pooled vector says which patterns a frame holds, not how bright it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from shotfit.io import ColourPipeline, Shot
from shotfit.losses.lpips import LPIPS, MIN_SIZE

#: Frames are scaled down to this longest side first: a frame's appearance shows at this size, and the
#: trunk's stride-1 first layer costs in proportion to the pixels.
FEATURE_SIZE = 224
#: Each stack's features are averaged over this grid (rows = columns), so where things are counts too.
GRID = 2
#: Weight of the colour statistics against the five trunk stacks (each of unit length).
COLOUR_WEIGHT = 2.0


@torch.no_grad()
def frame_features(values: torch.Tensor, trunk: LPIPS) -> torch.Tensor:
    """The appearance vector of frames in network values.

    Args:
        values: (B, C, H, W) in [-1, 1] (clamped), C = 1 or 3, any size of at least 21 x 21 pixels.
        trunk: A :class:`~shotfit.losses.lpips.LPIPS` whose ``input_range`` is (-1, 1).

    Returns:
        (B, D) float32: the five stacks' grid-pooled unit features, each of length 1/sqrt(5), then
        the per-cell mean and standard deviation of each channel in [0, 1], times :data:`COLOUR_WEIGHT`.
    """
    values = _scaled(values.clamp(-1.0, 1.0))
    stacks = trunk.features(values)
    parts = []
    for stack in stacks:
        unit = stack / (stack.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
        pooled = F.adaptive_avg_pool2d(unit.float(), GRID).flatten(1)
        parts.append(F.normalize(pooled, dim=1) / len(stacks) ** 0.5)
    image = values.float() * 0.5 + 0.5
    mean = F.adaptive_avg_pool2d(image, GRID)
    std = (F.adaptive_avg_pool2d(image.pow(2), GRID) - mean.pow(2)).clamp_min(0).sqrt()
    parts.append(COLOUR_WEIGHT * torch.cat([mean.flatten(1), std.flatten(1)], dim=1))
    return torch.cat(parts, dim=1)


def _scaled(values: torch.Tensor) -> torch.Tensor:
    height, width = values.shape[2:]
    scale = min(1.0, FEATURE_SIZE / max(height, width))
    if scale == 1.0:
        return values
    size = (max(MIN_SIZE, round(height * scale)), max(MIN_SIZE, round(width * scale)))
    return F.interpolate(values, size=size, mode="bilinear", antialias=True, align_corners=False)


def network_values(pixels: np.ndarray, colour: ColourPipeline, device: torch.device) -> torch.Tensor:
    """A frame as read (H, W, C) -> (1, C', H, W) network values on ``device`` (RGB of RGBA, else grey)."""
    channels = 3 if pixels.shape[2] >= 3 else 1
    values = colour.to_network(pixels[..., :channels])
    return torch.from_numpy(np.ascontiguousarray(values)).permute(2, 0, 1)[None].to(device)


def shot_features(shot: Shot, frames: Sequence[int], colour: ColourPipeline, trunk: LPIPS,
                  device: torch.device, on_frame: Callable[[int], None] | None = None) -> np.ndarray:
    """Appearance vectors of ``frames`` of ``shot``, (N, D) float64 in the order given.

    Args:
        on_frame: Called with the count of frames done after each frame (progress display).
    """
    rows = []
    for done, (_, pixels) in enumerate(shot.iter_frames(frames), start=1):
        rows.append(frame_features(network_values(pixels, colour, device), trunk)[0].cpu().double().numpy())
        if on_frame is not None:
            on_frame(done)
    return np.stack(rows)


def pairwise_distances(features: np.ndarray) -> np.ndarray:
    """(N, N) Euclidean distances between rows of ``features``, symmetric with a zero diagonal."""
    squared = (features ** 2).sum(axis=1)
    gram = features @ features.T
    distances = np.sqrt(np.clip(squared[:, None] + squared[None, :] - 2.0 * gram, 0.0, None))
    np.fill_diagonal(distances, 0.0)
    return (distances + distances.T) / 2.0
