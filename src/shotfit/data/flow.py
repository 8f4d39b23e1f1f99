"""Optical flow of a shot's source frames, and where it can be trusted.

One implementation serves training and evaluation: the temporal loss term (:mod:`shotfit.losses.temporal`)
learns along the same flow and the same visibility mask that the warping error
(:mod:`shotfit.evaluate.warping`) judges an output by. Flow is measured on the *source* (the plate
before the edit) with OpenCV's DIS optical flow (preset ``medium``) on greyscale uint8 images; a pixel
of frame t counts as visible in frame t+1 when it stays in view, forward and backward flow agree
(Ruder et al., GCPR 2016), and, with ``occlusion="lai"``, it is not on a motion boundary (as in Lai et
al.'s released ``detect_occlusion``). :func:`visibility_mask` gives the tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

OCCLUSION_MODES = ("lai", "consistency")
FLOW_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# Percentiles of the source values mapped to 0 and 255 before flow: only structure matters, so
# a plate at any scale (scene-linear, 16-bit, [0, 1]) gives the same grey image; outliers are clipped.
_LOW_PERCENTILE, _HIGH_PERCENTILE = 0.5, 99.5


@dataclass(frozen=True)
class FlowPair:
    """The motion from one source frame to the next, and where it can be trusted.

    Attributes:
        forward: (H, W, 2) float32, pixels: ``forward[y, x] = (dx, dy)`` moves pixel (x, y) of frame t
            to (x + dx, y + dy) in frame t+1.
        visible: (H, W) bool: True where the pixel of frame t is seen again in frame t+1 (in view, not
            occluded, not on a motion boundary); the mask ``M`` of the warping error.
    """

    forward: np.ndarray
    visible: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the frames this flow belongs to."""
        return self.visible.shape

    @property
    def coverage(self) -> float:
        """Fraction of pixels in the mask, in [0, 1]."""
        return float(self.visible.mean())


def flow_between(
    frame: np.ndarray, next_frame: np.ndarray, *, preset: str = "medium", occlusion: str = "lai"
) -> FlowPair:
    """Forward flow from ``frame`` to ``next_frame`` and its visibility mask.

    Args:
        frame, next_frame: (H, W) or (H, W, C) source frames of the same size, any scale.
        preset, occlusion: as in :func:`compute_flows`.

    Returns:
        A :class:`FlowPair` of shape (H, W).
    """
    if preset not in FLOW_PRESETS:
        raise ValueError(f"unknown flow preset {preset!r} (known: {', '.join(FLOW_PRESETS)})")
    if occlusion not in OCCLUSION_MODES:
        raise ValueError(f"unknown occlusion mode {occlusion!r} (known: {', '.join(OCCLUSION_MODES)})")
    if frame.shape[:2] != next_frame.shape[:2]:
        raise ValueError(f"source frames differ in size: {frame.shape} and {next_frame.shape}")
    grey, next_grey = _to_grey_uint8(frame, next_frame)
    dis = cv2.DISOpticalFlow_create(FLOW_PRESETS[preset])
    forward = dis.calc(grey, next_grey, None)
    backward = dis.calc(next_grey, grey, None)
    visible = visibility_mask(forward, backward, motion_boundaries=occlusion == "lai")
    return FlowPair(forward=forward.astype(np.float32, copy=False), visible=visible)


def visibility_mask(forward: np.ndarray, backward: np.ndarray, *, motion_boundaries: bool = True) -> np.ndarray:
    """Pixels of frame t that are reliably seen in frame t+1.

    Args:
        forward: (H, W, 2) float flow t -> t+1 in pixels.
        backward: (H, W, 2) float flow t+1 -> t in pixels.
        motion_boundaries: also drop pixels where the forward flow changes sharply.

    Returns:
        (H, W) bool, True where visible (see the module docstring for the tests).
    """
    if forward.shape != backward.shape or forward.ndim != 3 or forward.shape[2] != 2:
        raise ValueError(f"flows must both be (H, W, 2), got {forward.shape} and {backward.shape}")
    forward = forward.astype(np.float32, copy=False)
    height, width = forward.shape[:2]
    map_x, map_y = target_coordinates(forward)
    in_view = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    backward_there = cv2.remap(
        backward.astype(np.float32, copy=False), map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    round_trip = np.sum((forward + backward_there) ** 2, axis=2)
    magnitudes = np.sum(forward**2, axis=2) + np.sum(backward_there**2, axis=2)
    visible = in_view & (round_trip <= 0.01 * magnitudes + 0.5)
    if motion_boundaries:
        gradient = np.zeros((height, width), np.float32)
        for component in (forward[..., 0], forward[..., 1]):
            gradient[:, :-1] += (component[:, 1:] - component[:, :-1]) ** 2
            gradient[:-1, :] += (component[1:, :] - component[:-1, :]) ** 2
        visible &= gradient <= 0.01 * np.sum(forward**2, axis=2) + 0.002
    return visible


def target_coordinates(forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Absolute sampling coordinates x + F(x) as two (H, W) float32 maps for ``cv2.remap``."""
    height, width = forward.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return grid_x + forward[..., 0], grid_y + forward[..., 1]


def _to_grey_uint8(*frames: np.ndarray) -> list[np.ndarray]:
    """Grey uint8 images for DIS, all scaled by one shared percentile range (so brightness stays comparable)."""
    greys = []
    for frame in frames:
        values = np.asarray(frame, dtype=np.float32)
        if values.ndim == 3 and values.shape[2] >= 3:
            values = values[..., :3] @ np.array([0.2126, 0.7152, 0.0722], np.float32)
        elif values.ndim == 3:
            values = values[..., 0]
        elif values.ndim != 2:
            raise ValueError(f"a source frame must be (H, W) or (H, W, C), got {frame.shape}")
        greys.append(values)
    finite = np.concatenate([grey[np.isfinite(grey)].ravel() for grey in greys])
    if finite.size == 0:
        low, high = 0.0, 1.0
    else:
        low, high = np.percentile(finite, [_LOW_PERCENTILE, _HIGH_PERCENTILE])
    scale = 255.0 / (high - low) if high > low else 1.0
    return [np.clip(np.nan_to_num((grey - low) * scale), 0, 255).round().astype(np.uint8) for grey in greys]
