"""U-Net with additive attention gates on its skip connections (Oktay et al. 2018), sized for few-shot edits."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from shotfit.archs import ARCHS, blocks
from shotfit.archs.blocks import (
    DOWNSAMPLE_MODES,
    UPSAMPLE_MODES,
    AttentionGate,
    DoubleConv,
    UpsampleConv,
    crop_to,
    pad_to_multiple,
)
from shotfit.errors import ConfigError

# Inputs are held this far inside ±1 before atanh. 16-bit white comes back as 1 - 0.5e-5 on [0, 1],
# a third of a code value, so it still rounds to 65535; a larger eps would let white drift.
RESIDUAL_EPS = 1e-5


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"architecture 'unet_attn': {name} must be a positive integer, got {value!r}")
    return value


@ARCHS.register("unet_attn")
class UNetAttn(nn.Module):
    """Attention U-Net: encoder-decoder with skip connections gated by the coarser decoder level.

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
        exposed as ``size_multiple``, and the output is cropped back.

    Example:
        >>> net = UNetAttn(width=8, depth=2)
        >>> net(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

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
        super().__init__()
        _positive_int("in_channels", in_channels)
        _positive_int("out_channels", out_channels)
        _positive_int("width", width)
        _positive_int("max_width", max_width)
        if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 8:
            raise ConfigError(f"architecture 'unet_attn': depth must be an integer from 0 to 8, got {depth!r}")
        if not isinstance(residual, bool):
            raise ConfigError(f"architecture 'unet_attn': residual must be true or false, got {residual!r}")
        if residual and in_channels != out_channels:
            raise ConfigError(
                "architecture 'unet_attn': residual=True needs in_channels == out_channels "
                f"(got {in_channels} and {out_channels}); set residual=False"
            )
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(
                f"architecture 'unet_attn': upsample {upsample!r} is not one of {', '.join(UPSAMPLE_MODES)}"
            )
        if downsample not in DOWNSAMPLE_MODES:
            raise ConfigError(
                f"architecture 'unet_attn': downsample {downsample!r} is not one of {', '.join(DOWNSAMPLE_MODES)}"
            )
        widths = [min(width * 2**level, max(max_width, width)) for level in range(depth + 1)]

        self.in_channels = in_channels
        self.size_multiple = 2**depth
        self.residual = residual
        self.residual_eps = RESIDUAL_EPS
        self.stem = DoubleConv(in_channels, widths[0])
        self.encoder = nn.ModuleList(
            nn.Sequential(blocks.downsample(downsample), DoubleConv(widths[level], widths[level + 1]))
            for level in range(depth)
        )
        # decoder modules run from the coarsest level back to full resolution
        levels = list(reversed(range(depth)))
        self.gates = nn.ModuleList(
            AttentionGate(widths[level], widths[level + 1], max(widths[level] // 2, 1)) for level in levels
        )
        self.ups = nn.ModuleList(UpsampleConv(widths[level + 1], widths[level], upsample) for level in levels)
        self.fuses = nn.ModuleList(DoubleConv(2 * widths[level], widths[level]) for level in levels)
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)
        if residual:
            # the untrained net is then exactly the identity: training starts from "no edit"
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"unet_attn expects input of shape (B, {self.in_channels}, H, W), got {list(x.shape)}"
            )
        height, width = x.shape[-2], x.shape[-1]
        features = self.stem(pad_to_multiple(x, self.size_multiple))
        skips: list[Tensor] = []
        for down in self.encoder:
            skips.append(features)
            features = down(features)
        for gate, up, fuse in zip(self.gates, self.ups, self.fuses):
            skip = skips.pop()
            features = fuse(torch.cat([gate(skip, features), up(features)], dim=1))
        delta = crop_to(self.head(features), height, width)
        if self.residual:
            # float32 whatever the input: in float16, 1 - 1e-5 rounds to 1 and atanh(1) is inf
            base = torch.atanh(x.float().clamp(-1.0 + self.residual_eps, 1.0 - self.residual_eps))
            return torch.tanh(base + delta.float()).to(x.dtype)
        return torch.tanh(delta)
