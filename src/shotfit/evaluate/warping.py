"""Temporal warping error (Lai et al., "Learning Blind Video Temporal Consistency", ECCV 2018).

The motion of a shot is measured once, on its *source* frames (the plate before the edit), and then
used to judge any number of outputs (the prediction, the ground truth): an output that is temporally
consistent should look like its next frame pulled back along that motion, wherever the motion is
reliable.

For each consecutive pair of frames (t, t+1):

1. Forward flow ``F_fw`` (t -> t+1) and backward flow ``F_bw`` (t+1 -> t) are estimated on the source
   with OpenCV's DIS optical flow (preset ``medium``) on greyscale uint8 images.
2. A pixel ``x`` of frame t is *visible* in frame t+1 when all of these hold:

   - it stays in view: ``x + F_fw(x)`` lies inside the frame;
   - forward and backward flow agree (Ruder et al., GCPR 2016), with ``b = F_bw(x + F_fw(x))``:
     ``|F_fw(x) + b|^2 <= 0.01 (|F_fw(x)|^2 + |b|^2) + 0.5``;
   - with ``occlusion="lai"`` (the default) it is also not on a motion boundary (Ruder et al.,
     as in Lai et al.'s released ``detect_occlusion``): ``|grad u|^2 + |grad v|^2 <= 0.01 |F_fw|^2 + 0.002``,
     with forward differences.

3. Output frame t+1 is warped back to t, ``W(x) = O_{t+1}(x + F_fw(x))`` (``cv2.remap``, bilinear), and
   the pair's error is the mean squared difference per *channel value* over the visible pixels::

       E_t = sum_{x, c} M(x) (O_t(x, c) - W(x, c))^2 / (C * sum_x M(x))

   This is what the paper's released ``evaluate_WarpError.py`` computes: its mask is read as a
   3-channel image, so its normaliser ``np.sum(noc_mask)`` is ``C * sum M``.

The sequence's error is the mean of ``E_t`` over pairs. Frames are in [0, 1], so E is in [0, 1];
0 means perfectly consistent along the motion. Unlike the released code, a pair with no visible pixel
is left out of the mean (the code counted it as 0) and pixels that leave the frame are excluded (the
code compared them with the clamped border).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)

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


def compute_flows(
    source_frames: Iterable[np.ndarray], *, preset: str = "medium", occlusion: str = "lai"
) -> list[FlowPair]:
    """Flow and visibility for every consecutive pair of source frames.

    Args:
        source_frames: N frames, each (H, W) or (H, W, C) with C in {1, 3, 4}, any numeric dtype and
            value scale (each pair is rescaled by its own percentiles; only structure matters).
        preset: DIS preset, ``"medium"`` | ``"fast"`` | ``"ultrafast"``.
        occlusion: ``"lai"`` (consistency check and motion boundaries) | ``"consistency"`` (check only).

    Returns:
        N - 1 :class:`FlowPair`, the i-th from frame i to frame i+1. Memory: 9 bytes per pixel per pair;
        use :func:`iter_flows` to stream long shots.
    """
    return list(iter_flows(source_frames, preset=preset, occlusion=occlusion))


def iter_flows(
    source_frames: Iterable[np.ndarray], *, preset: str = "medium", occlusion: str = "lai"
) -> Iterator[FlowPair]:
    """Like :func:`compute_flows`, one pair at a time, holding only two frames."""
    previous = None
    for index, frame in enumerate(source_frames):
        if previous is not None:
            if frame.shape[:2] != previous.shape[:2]:
                raise ValueError(
                    f"source frame {index} has shape {frame.shape}, frame {index - 1} has {previous.shape}"
                )
            yield flow_between(previous, frame, preset=preset, occlusion=occlusion)
        previous = frame


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
    map_x, map_y = _target_coordinates(forward)
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


def warp_back(next_frame: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pull frame t+1 back onto frame t along the forward flow: ``W(x) = next_frame(x + forward(x))``.

    Args:
        next_frame: (H, W) or (H, W, C) float frame t+1 (C up to 4).
        forward: (H, W, 2) float flow t -> t+1 in pixels.

    Returns:
        float32 array shaped like ``next_frame``; bilinear, border pixels repeated outside the frame.
    """
    if next_frame.shape[:2] != forward.shape[:2]:
        raise ValueError(f"frame {next_frame.shape} and flow {forward.shape} differ in size")
    map_x, map_y = _target_coordinates(forward.astype(np.float32, copy=False))
    warped = cv2.remap(
        np.ascontiguousarray(next_frame, dtype=np.float32),
        map_x,
        map_y,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return warped.reshape(next_frame.shape)


def pair_warping_error(frame: np.ndarray, next_frame: np.ndarray, flow: FlowPair) -> float:
    """Warping error of one pair of output frames (t, t+1) along the source's flow.

    Args:
        frame, next_frame: (H, W) or (H, W, C) output frames in [0, 1].
        flow: the source's :class:`FlowPair` from t to t+1, of the same (H, W).

    Returns:
        Mean squared difference per channel value over the visible pixels, in [0, 1];
        NaN when no pixel is visible.
    """
    if frame.shape != next_frame.shape or frame.shape[:2] != flow.shape:
        raise ValueError(
            f"output frames {frame.shape} and {next_frame.shape} do not match the flow's (H, W) {flow.shape}"
        )
    visible_pixels = int(flow.visible.sum())
    if visible_pixels == 0:
        return float("nan")
    difference = frame.astype(np.float64) - warp_back(next_frame, flow.forward)
    squared = difference.reshape(*flow.shape, -1) ** 2
    channels = squared.shape[2]
    return float(squared[flow.visible].sum() / (channels * visible_pixels))


def warping_error(frames: Sequence[np.ndarray], flows: Sequence[FlowPair]) -> float:
    """Temporal warping error E of an output sequence (Lai et al. 2018).

    Args:
        frames: N output frames, each (H, W) or (H, W, C), float in [0, 1], matching the source.
        flows: the N - 1 :class:`FlowPair` of the source, from :func:`compute_flows`.

    Returns:
        Mean over pairs of :func:`pair_warping_error`, in [0, 1]; pairs with no visible pixel are
        skipped (logged); NaN if no pair is usable.
    """
    if len(frames) != len(flows) + 1:
        raise ValueError(f"{len(frames)} frames need {len(frames) - 1} flows, got {len(flows)}")
    errors = []
    for index, flow in enumerate(flows):
        if frames[index].shape[:2] != flow.shape:
            raise ValueError(f"frame {index} has shape {frames[index].shape}, its flow has (H, W) {flow.shape}")
        error = pair_warping_error(frames[index], frames[index + 1], flow)
        if np.isnan(error):
            logger.warning("pair %d -> %d has no visible pixel; left out of the warping error", index, index + 1)
        else:
            errors.append(error)
    return float(np.mean(errors)) if errors else float("nan")


def _target_coordinates(forward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
