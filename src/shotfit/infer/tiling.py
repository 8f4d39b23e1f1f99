"""Run a network over a large frame in overlapping tiles that blend without seams.

Where the tiles go and how they blend is :mod:`shotfit.infer.tile_plan` (shared with the numpy
renderer that runs exported ONNX models); this module runs a PyTorch network over that plan.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from shotfit.archs.base import DeclaresTiling
from shotfit.infer.tile_plan import (
    BLEND_MODES,
    FALLBACK_OVERLAP,
    plan_tiles,
    resolve_tiling,
)

log = logging.getLogger(__name__)

__all__ = ["BLEND_MODES", "declared_tiling", "default_overlap", "tiled_forward"]


def declared_tiling(net: nn.Module) -> tuple[int, int, int | None]:
    """``(size_multiple, tile_overlap, max_tile)`` as ``net`` declares them (every shotfit network does,
    see :class:`~shotfit.archs.base.DeclaresTiling`, and so does an ``InferenceNetwork`` around one).

    A module that declares none of it (a plain convolution, a test double) gets ``(1, 64, None)``.
    """
    if isinstance(net, DeclaresTiling):
        return net.size_multiple, net.tile_overlap, net.max_tile
    return 1, FALLBACK_OVERLAP, None


def default_overlap(net: nn.Module) -> int:
    """The overlap a render uses when none is set: the network's declared ``tile_overlap`` (its reach),
    under which tiled output matched whole-frame output to within 1e-6 (on [0, 1]) in our measurements."""
    return declared_tiling(net)[1]


def tiled_forward(
    net: nn.Module, x: Tensor, tile: int = 512, overlap: int | None = None, blend: str = "hann"
) -> Tensor:
    """Apply ``net`` to ``x`` one tile at a time and blend the tiles into one frame.

    Runs under ``torch.no_grad()``; call ``net.eval()`` first (in training mode BatchNorm would
    normalise each tile by its own statistics). Only one tile's activations exist at a time; the
    output frame is the one full-size buffer.

    Args:
        net: maps (B, C, h, w) -> (B, C_out, h, w) for any h, w. Its declared tiling (see
            :func:`declared_tiling`) decides the grid tiles start on (``size_multiple``), the
            default overlap, and a cap on ``tile`` (``max_tile``, for a network whose memory grows
            faster than its pixels).
        x: frames on ``net``'s device, values in the range ``net`` expects ([-1, 1] for shotfit's
            architectures).
        tile: largest tile height and width in pixels. A frame no larger than this in both
            dimensions is passed to ``net`` whole.
        overlap: least overlap between neighbouring tiles in pixels, at most half of ``tile``;
            7/16 of it on either side is discarded and the middle eighth feathered. ``None`` picks
            :func:`default_overlap`, under which tiled and whole-frame output stayed within 1e-6 on
            [0, 1] in our measurements (the promise is 1e-3). Smaller overlaps are faster and leave
            visible seams: 64 pixels on a depth-4 U-Net gave differences up to 0.7.
        blend: feather shape, ``"hann"`` (raised cosine, smooth at both ends) or ``"linear"``.

    Returns:
        (B, C_out, H, W) in ``net``'s output dtype: the network's output as if run on the whole frame.

    Raises:
        ConfigError: ``tile``, ``overlap`` or ``blend`` out of range.
        ValueError: ``x`` is not (B, C, H, W).

    Example:
        >>> net = nn.Conv2d(3, 3, 3, padding=1).eval()
        >>> tiled_forward(net, torch.rand(1, 3, 300, 200), tile=128).shape
        torch.Size([1, 3, 300, 200])
    """
    if x.dim() != 4:
        raise ValueError(f"tiled_forward expects frames of shape (B, C, H, W), got {list(x.shape)}")
    multiple, declared_overlap, max_tile = declared_tiling(net)
    height, width = x.shape[-2], x.shape[-1]
    tile, overlap = resolve_tiling(tile, overlap, blend, multiple, max_tile, declared_overlap, (height, width))
    if net.training:
        log.warning("tiled_forward: network is in training mode; BatchNorm statistics will differ per tile")
    with torch.no_grad():
        if height <= tile and width <= tile:
            return net(x)
        plan = plan_tiles(height, width, tile, overlap, multiple, blend)
        log.debug("tiled_forward: %dx%d frame in %dx%d tiles, overlap %d", width, height, len(plan.cols),
                  len(plan.rows), overlap)
        out: Tensor | None = None
        for (top, bottom), (left, right), weight in plan.tiles():
            result = net(x[:, :, top:bottom, left:right])
            if out is None:
                # at least float32, so half-precision tiles do not lose bits while summing; in the
                # tiles' memory layout (channels-last from an InferenceNetwork)
                dtype = torch.promote_types(result.dtype, torch.float32)
                layout = torch.channels_last if result.is_contiguous(memory_format=torch.channels_last) \
                    and not result.is_contiguous() else torch.contiguous_format
                out = torch.empty((result.shape[0], result.shape[1], height, width), dtype=dtype,
                                  device=result.device, memory_format=layout).zero_()
                out_dtype = result.dtype
            out[:, :, top:bottom, left:right] += result * torch.from_numpy(weight).to(out.device, out.dtype)
        assert out is not None  # at least one tile always runs
        # the weights are separable, so their sum over tiles is the outer product of the 1-D sums;
        # divided in place: a 4K frame holds no second full-size copy
        return out.div_(torch.from_numpy(plan.total()).to(out.device, out.dtype)).to(out_dtype)
