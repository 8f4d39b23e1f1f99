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

import cv2
import numpy as np

# The flow itself lives below training and evaluation alike (the temporal loss term learns along it).
from shotfit.data.flow import (
    FLOW_PRESETS,
    OCCLUSION_MODES,
    FlowPair,
    flow_between,
    target_coordinates,
    visibility_mask,
)

__all__ = ["FLOW_PRESETS", "OCCLUSION_MODES", "FlowPair", "compute_flows", "flow_between", "iter_flows",
           "pair_warping_error", "visibility_mask", "warp_back", "warping_error"]

logger = logging.getLogger(__name__)


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
    map_x, map_y = target_coordinates(forward.astype(np.float32, copy=False))
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
