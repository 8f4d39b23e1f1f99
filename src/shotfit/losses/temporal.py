"""The temporal term: the output of frame t should be the output of frame t+1 pulled back along the
source's motion, wherever that motion can be trusted.

This is the short-term loss of Lai et al., "Learning Blind Video Temporal Consistency" (ECCV 2018),
trained here on the very shot being rendered: the frames nobody painted teach the network to follow
the plate's motion instead of flickering. The motion is the *source's* optical flow (measured once per
shot, :mod:`shotfit.data.flow`), so the term never asks the edit itself to move, and its visibility
mask (forward-backward check, motion boundaries, pixels leaving the patch) leaves occlusions out.

Unlike the keyframe terms it compares two outputs with each other, not an output with a target: it is
registered with ``inputs="frame_pairs"`` and :class:`~shotfit.losses.HybridLoss` calls it with a
:class:`PairOutputs` when the trainer draws frame pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from shotfit.config import LossConfig
from shotfit.losses.registry import FRAME_PAIRS, register_loss_term


@dataclass(frozen=True)
class PairOutputs:
    """The network's outputs on patches of consecutive frames, and the source's motion between them.

    Shape:
        output, next_output: (B, C, h, w) in [-1, 1], the same window of frames t and t+1.
        flow: (B, 2, h, w) float, pixels: ``flow[:, :, y, x] = (dx, dy)`` moves (x, y) of frame t to
            (x + dx, y + dy) in frame t+1, in the patch's own coordinates.
        visible: (B, 1, h, w) in [0, 1]: 1 where pixel (x, y) of frame t is seen again at
            (x + dx, y + dy) inside the patch of frame t+1.
    """

    output: torch.Tensor
    next_output: torch.Tensor
    flow: torch.Tensor
    visible: torch.Tensor


def warp_back(next_output: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Pull frame t+1 back onto frame t: ``W(x) = next_output(x + flow(x))``, bilinear, border repeated.

    The same warp as the warping error's (:func:`shotfit.evaluate.warping.warp_back`, OpenCV's remap),
    in PyTorch so gradients reach ``next_output``.

    Shape:
        next_output: (B, C, h, w); flow: (B, 2, h, w) in pixels. Returns (B, C, h, w).
    """
    _, _, height, width = next_output.shape
    rows = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    cols = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    x = cols + flow[:, 0]
    y = rows + flow[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    grid = torch.stack([2 * x / max(width - 1, 1) - 1, 2 * y / max(height - 1, 1) - 1], dim=-1)
    return F.grid_sample(next_output, grid.to(next_output.dtype), mode="bilinear", padding_mode="border",
                         align_corners=True)


def temporal_loss(output: torch.Tensor, next_output: torch.Tensor, flow: torch.Tensor,
                  visible: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between output t and output t+1 warped back, over the visible pixels.

    Args:
        output, next_output: (B, C, h, w) network outputs for frames t and t+1, in [-1, 1].
        flow: (B, 2, h, w) the source's forward flow t -> t+1 in pixels.
        visible: (B, 1, h, w) in [0, 1], where the flow holds (see :class:`PairOutputs`).

    Returns:
        Scalar >= 0 in the outputs' units (at most 2), ``sum(M |O_t - W(O_t+1)|) / (C sum M)``; 0 when no
        pixel is visible. Gradients reach both outputs.

    Example:
        >>> frames = torch.rand(1, 3, 16, 16)
        >>> still, trusted = torch.zeros(1, 2, 16, 16), torch.ones(1, 1, 16, 16)
        >>> temporal_loss(frames, frames, still, trusted).item() < 1e-6  # zero up to float rounding
        True
        >>> round(temporal_loss(frames, frames + 0.1, still, trusted).item(), 4)  # flicker
        0.1
    """
    _check(output, next_output, flow, visible)
    difference = (output - warp_back(next_output, flow)).abs()
    weight = visible.to(difference.dtype)
    norm = weight.sum() * difference.shape[1]
    return (difference * weight).sum() / norm.clamp_min(1.0)


class TemporalLoss(nn.Module):
    """:func:`temporal_loss` as a module, called with a :class:`PairOutputs`."""

    def forward(self, pairs: PairOutputs) -> torch.Tensor:
        return temporal_loss(pairs.output, pairs.next_output, pairs.flow, pairs.visible)


@register_loss_term("temporal", weight_map=False, inputs=FRAME_PAIRS)
def build_temporal_term(cfg: LossConfig) -> TemporalLoss:
    return TemporalLoss()


def _check(output: torch.Tensor, next_output: torch.Tensor, flow: torch.Tensor, visible: torch.Tensor) -> None:
    if output.dim() != 4 or output.shape != next_output.shape:
        raise ValueError(f"temporal_loss: outputs must be two (B, C, h, w) tensors of one shape, got "
                         f"{tuple(output.shape)} and {tuple(next_output.shape)}")
    b, _, h, w = output.shape
    if tuple(flow.shape) != (b, 2, h, w) or tuple(visible.shape) != (b, 1, h, w):
        raise ValueError(f"temporal_loss: for outputs {tuple(output.shape)} the flow must be {(b, 2, h, w)} and "
                         f"the mask {(b, 1, h, w)}, got {tuple(flow.shape)} and {tuple(visible.shape)}")
