"""The U-Net body shared by ``unet_attn`` and ``unet``; the two differ only in what sits on the skips."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from shotfit.archs.base import Network
from shotfit.archs.blocks import (
    DOWNSAMPLE_MODES,
    MAX_WIDTH,
    UPSAMPLE_MODES,
    AttentionGate,
    DoubleConv,
    PassSkip,
    UpsampleConv,
    check_choice,
    check_int,
)
from shotfit.archs.blocks import (
    downsample as downsample_layer,
)

# Tile overlap per unit of size_multiple: 256 pixels (112 trusted each side) for a depth-4 U-Net,
# whose reach (124 pixels) doubles with every level of depth.
OVERLAP_PER_MULTIPLE = 16
# a depth-0 net (a plain conv stack) reaches 2 pixels; 64 is the overlap it always had
DEPTH_ZERO_OVERLAP = 64


class UNetBase(Network):
    """Encoder-decoder with skip connections, optionally gated by the coarser decoder level.

    Subclasses set ``arch_name`` (the registered name) and ``gated`` (attention gates on the skips,
    Oktay et al. 2018, or plain skips as in Ronneberger et al. 2015).

    BatchNorm after every 3x3 convolution, no dropout (dropout is random per frame and would flicker
    in a rendered shot), tanh output. Every layer is local, so tiles rendered with overlap match the
    whole frame (see :func:`shotfit.infer.tiling.tiled_forward`).

    Args:
        in_channels: channels of the input frame.
        out_channels: channels of the output frame.
        width: channels at full resolution; each downsampling doubles them, up to ``max_width``.
        depth: number of 2x downsamplings (0 is a plain conv stack).
        max_width: cap on channels at the coarse levels (never below ``width``). Without it the
            bottom of a depth-4 net holds a third of its parameters (8.9M rather than 5.9M at
            width 32), which a handful of keyframes cannot constrain.
        residual: predict the change to the input rather than the output itself:
            ``out = tanh(atanh(clamp(x, ±(1 - 1e-5))) + f(x))`` with ``f``'s last conv zero-initialised,
            so the untrained network returns its input. Needs ``in_channels == out_channels``.
            Because of the tanh, a clipped pixel (exactly ±1) moves slowly in training: its gradient
            is scaled by ``1 - out**2``, about 2e-5 at the clip point.
        upsample: ``"bilinear"`` or ``"nearest"`` interpolation before a 3x3 conv in the decoder
            (never a transposed conv: its checkerboard shows in smooth gradients).
        downsample: ``"max"`` pooling (classic U-Net) or ``"avg"`` pooling (aliases less, so fine
            detail crawls less between frames under slow camera moves).

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1; values in [-1, 1] in
        and out. Inputs are padded internally (bottom and right) to a multiple of ``2**depth``,
        exposed as ``size_multiple``, and the output is cropped back. ``tile_overlap`` is
        ``16 * 2**depth`` pixels (64 at depth 0).

    Example:
        >>> from shotfit.archs import build_network
        >>> net = build_network("unet_attn", width=8, depth=2)
        >>> net(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = "unet_base"
    gated = True
    tiny_options: ClassVar[dict[str, Any]] = {"width": 4, "depth": 3}

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 32,
        depth: int = 4,
        max_width: int = 256,
        residual: bool = True,
        upsample: str = "bilinear",
        downsample: str = "max",
    ) -> None:
        arch = self.arch_name
        # Upper bounds far above any useful network, far below one whose weights alone exhaust memory.
        check_int(arch, "width", width, high=MAX_WIDTH)
        check_int(arch, "max_width", max_width, high=4096)
        check_int(arch, "depth", depth, low=0, high=8)
        check_choice(arch, "upsample", upsample, UPSAMPLE_MODES)
        check_choice(arch, "downsample", downsample, DOWNSAMPLE_MODES)
        size_multiple = 2**depth
        tile_overlap = OVERLAP_PER_MULTIPLE * size_multiple if depth > 0 else DEPTH_ZERO_OVERLAP
        super().__init__(in_channels=in_channels, out_channels=out_channels, residual=residual,
                         size_multiple=size_multiple, tile_overlap=tile_overlap)
        widths = [min(width * 2**level, max(max_width, width)) for level in range(depth + 1)]

        self.stem = DoubleConv(in_channels, widths[0])
        self.encoder = nn.ModuleList(
            nn.Sequential(downsample_layer(downsample), DoubleConv(widths[level], widths[level + 1]))
            for level in range(depth)
        )
        # decoder modules run from the coarsest level back to full resolution
        levels = list(reversed(range(depth)))
        self.gates = nn.ModuleList(
            AttentionGate(widths[level], widths[level + 1], max(widths[level] // 2, 1)) if self.gated else PassSkip()
            for level in levels
        )
        self.ups = nn.ModuleList(UpsampleConv(widths[level + 1], widths[level], upsample) for level in levels)
        self.fuses = nn.ModuleList(DoubleConv(2 * widths[level], widths[level]) for level in levels)
        self.head = self.residual_head(nn.Conv2d(widths[0], out_channels, kernel_size=1))

    def body(self, x: Tensor) -> Tensor:
        features = self.stem(x)
        skips: list[Tensor] = []
        for down in self.encoder:
            skips.append(features)
            features = down(features)
        for gate, up, fuse in zip(self.gates, self.ups, self.fuses):
            # no name holds the skip or the branches: at inference each full-resolution tensor is freed
            # as soon as it is used (a 1080p frame's peak memory went from 1.88 to 1.66 GB)
            features = fuse(torch.cat([gate(skips.pop(), features), up(features)], dim=1))
        return self.head(features)
