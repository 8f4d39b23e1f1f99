"""A U-Net whose every level is a stack of ConvNeXt blocks (Liu et al. 2022), sized for few-shot edits."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotfit.archs.base import Network
from shotfit.archs.blocks import MAX_WIDTH, check_float, check_int
from shotfit.archs.registry import ARCHS
from shotfit.errors import ConfigError

ARCH = "convnext_unet"
# ConvNeXt's LayerNorm epsilon (the paper's code), smaller than PyTorch's default 1e-5
LAYER_NORM_EPS = 1e-6
MAX_LEVELS = 8  # 2**8 = 256-pixel size multiple, the U-Net's own limit


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map, each pixel on its own (ConvNeXt's "channels_first" norm).

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: depthwise kxk conv, LayerNorm, Linear x expansion, GELU, Linear back, layer scale, residual.

    The two Linears act on channels-last pixels, as in the paper's code (the same maps as 1x1 convs).
    There is no stochastic depth: a randomly dropped block would change the output from frame to frame.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, kernel_size: int, expansion: int, layer_scale_init: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=LAYER_NORM_EPS)
        self.expand = nn.Linear(channels, expansion * channels)
        self.act = nn.GELU()
        self.project = nn.Linear(expansion * channels, channels)
        # a small layer scale starts every block close to the identity, so a deep stack trains steadily
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale_init))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.project(self.act(self.expand(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


def _stage(channels: int, count: int, kernel_size: int, expansion: int, layer_scale_init: float) -> nn.Sequential:
    """``count`` ConvNeXt blocks in a row (none is the identity)."""
    return nn.Sequential(*[ConvNeXtBlock(channels, kernel_size, expansion, layer_scale_init) for _ in range(count)])


def _check_depths(depths: object) -> list[int]:
    """``depths`` as a list of block counts; lists and tuples are both accepted (JSON brings tuples back as lists)."""
    if isinstance(depths, (str, bytes)) or not isinstance(depths, Sequence) or not 1 <= len(depths) <= MAX_LEVELS + 1:
        raise ConfigError(
            f"architecture {ARCH!r}: depths must be a list of 1 to {MAX_LEVELS + 1} block counts "
            f"(one per level, the last for the bottleneck), got {depths!r}"
        )
    return [check_int(ARCH, f"depths[{i}]", count, low=0, high=64) for i, count in enumerate(depths)]


def receptive_radius(depths: Sequence[int], kernel_size: int) -> int:
    """How far (pixels, full resolution) an input pixel can move an output pixel: the network's reach.

    A kxk conv at level l reaches ``(k // 2) * 2**l`` pixels and the 3x3 stem one; a level's 2x2
    stride-2 downsampling and bilinear upsampling together reach ``2**(l + 1)``. The deepest path runs
    down every level, through the bottleneck and back up. Reaches add, so this bounds the receptive
    field, and gradients measured at every phase of the downsampling grid reach exactly this far.
    """
    levels = len(depths) - 1
    half = kernel_size // 2
    radius = 1 + depths[-1] * half * 2**levels
    for level in range(levels):
        radius += 2 * depths[level] * half * 2**level + 2 ** (level + 1)
    return radius


@ARCHS.register(ARCH)
class ConvNeXtUNet(Network):
    """U-Net built from ConvNeXt blocks (Liu et al., "A ConvNet for the 2020s", CVPR 2022).

    A 3x3 stem conv and LayerNorm lift the frame to ``width`` channels at full resolution (the paper's
    4x4 patchify stem would throw away the detail an image-to-image edit must keep). Each encoder level
    is ``depths[l]`` ConvNeXt blocks, then the paper's downsampling: LayerNorm and a 2x2 stride-2 conv
    doubling the channels. ``depths[-1]`` blocks form the bottleneck. Each decoder level upsamples with
    LayerNorm, a 1x1 conv halving the channels and bilinear interpolation (the conv runs before the
    interpolation because the two commute exactly and it is 4x cheaper there; never a transposed conv
    or pixel shuffle, whose per-phase kernels print a checkerboard into smooth gradients), ADDS the
    encoder's features at that level, and runs ``depths[l]`` ConvNeXt blocks. A LayerNorm and a 1x1
    conv make the output. No dropout and no stochastic depth: both are random per frame and flicker.

    The skip is added rather than concatenated: every block is itself residual, so each level's
    features form one running sum from encoder to decoder and the encoder's detail reaches the decoder
    at full weight from the first step. A concatenation would add a 2C->C conv per level, and a wider
    tensor at full resolution, to learn a weighting the next block's LayerNorm and Linears already can.

    Every layer is local, so tiles rendered with ``tile_overlap`` (derived from the reach, see
    :func:`receptive_radius`) match the whole frame to float rounding.

    Args:
        in_channels: channels of the input frame.
        out_channels: channels of the output frame.
        width: channels at full resolution, 1 to 1024; each level down doubles them.
        depths: ConvNeXt blocks per level, a list or tuple of 1 to 9 counts (each 0 to 64): one per
            encoder level (the decoder mirrors it) and the last for the bottleneck. Its length minus
            one is the number of 2x downsamplings; ``[2]`` is a plain full-resolution stack.
        kernel_size: depthwise conv kernel, odd, 1 to 31 (the paper's 7).
        expansion: hidden channels of each block's MLP per channel, 1 to 16 (the paper's 4).
        layer_scale_init: initial layer scale of every block, 0 to 1 (the paper's 1e-6).
        residual: predict the change to the input rather than the output itself:
            ``out = tanh(atanh(clamp(x, ±(1 - 1e-5))) + f(x))`` with ``f``'s last conv zero-initialised,
            so the untrained network returns its input. Needs ``in_channels == out_channels``.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1; values in [-1, 1] in
        and out. Inputs are padded internally (bottom and right) to a multiple of
        ``2**(len(depths) - 1)``, exposed as ``size_multiple``, and the output is cropped back.

    Example:
        >>> from shotfit.archs import build_network
        >>> net = build_network("convnext_unet", width=8, depths=[1, 1, 1])
        >>> net(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = ARCH
    tiny_options: ClassVar[dict[str, Any]] = {"width": 4, "depths": [1, 1, 1]}

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 32,
        depths: Sequence[int] = (2, 2, 2, 2),
        kernel_size: int = 7,
        expansion: int = 4,
        layer_scale_init: float = 1e-6,
        residual: bool = True,
    ) -> None:
        check_int(ARCH, "width", width, high=MAX_WIDTH)
        depths = _check_depths(depths)
        if check_int(ARCH, "kernel_size", kernel_size, high=31) % 2 == 0:
            raise ConfigError(f"architecture {ARCH!r}: kernel_size must be odd (it is centred), got {kernel_size!r}")
        check_int(ARCH, "expansion", expansion, high=16)
        layer_scale_init = check_float(ARCH, "layer_scale_init", layer_scale_init, 0.0, 1.0)
        levels = len(depths) - 1
        widths = [width * 2**level for level in range(levels + 1)]
        # tiled_forward trusts a tile only 7/16 of the overlap inside its edge (and half a pixel less
        # at the feather's start), so that must cover the reach; rounded up to 16 pixels
        reach = receptive_radius(depths, kernel_size)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            residual=residual,
            size_multiple=2**levels,
            tile_overlap=16 * math.ceil((reach + 1.5) * 16 / 7 / 16),
        )

        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), LayerNorm2d(width, eps=LAYER_NORM_EPS))
        block = (kernel_size, expansion, layer_scale_init)
        self.encoder = nn.ModuleList(_stage(widths[level], depths[level], *block) for level in range(levels))
        self.downs = nn.ModuleList(
            nn.Sequential(
                LayerNorm2d(widths[level], eps=LAYER_NORM_EPS),
                nn.Conv2d(widths[level], widths[level + 1], kernel_size=2, stride=2),
            )
            for level in range(levels)
        )
        self.middle = _stage(widths[levels], depths[-1], *block)
        # decoder modules run from the coarsest level back to full resolution
        coarse_to_fine = list(reversed(range(levels)))
        self.ups = nn.ModuleList(
            nn.Sequential(
                LayerNorm2d(widths[level + 1], eps=LAYER_NORM_EPS),
                nn.Conv2d(widths[level + 1], widths[level], kernel_size=1),
                nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False),
            )
            for level in coarse_to_fine
        )
        self.decoder = nn.ModuleList(_stage(widths[level], depths[level], *block) for level in coarse_to_fine)
        self.head = nn.Sequential(
            LayerNorm2d(width, eps=LAYER_NORM_EPS), self.residual_head(nn.Conv2d(width, out_channels, 1))
        )

    def body(self, x: Tensor) -> Tensor:
        # channels-last memory: the permutes around each block's Linears are then free, and depthwise
        # convs run about twice as fast on the CPU
        features = self.stem(x.contiguous(memory_format=torch.channels_last))
        skips: list[Tensor] = []
        for stage, down in zip(self.encoder, self.downs):
            features = stage(features)
            skips.append(features)
            features = down(features)
        features = self.middle(features)
        for up, stage in zip(self.ups, self.decoder):
            features = stage(up(features) + skips.pop())
        return self.head(features)
