"""NAFNet (Chen et al., ECCV 2022): a U-Net of activation-free blocks, with TLC's local pooling for full frames."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotfit.archs.base import Network
from shotfit.archs.blocks import MAX_WIDTH, check_int
from shotfit.archs.registry import ARCHS
from shotfit.errors import ConfigError

ARCH = "nafnet"
MAX_LEVELS = 8
MAX_BLOCKS = 64


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel, with a per-channel scale and shift (NAFNet's norm, eps 1e-6).

    Normalised along dim 1 in place rather than by permuting to channels-last and back.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        centred = x - x.mean(1, keepdim=True)
        normed = centred * torch.rsqrt(centred.square().mean(1, keepdim=True) + self.eps)
        return normed * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def simple_gate(x: Tensor) -> Tensor:
    """NAFNet's SimpleGate: the first half of the channels times the second half, (B, 2C, H, W) -> (B, C, H, W)."""
    first, second = x.chunk(2, dim=1)
    return first * second


def _window_sums(x: Tensor, dim: int, window: int) -> tuple[Tensor, Tensor]:
    """Sums of ``x`` along ``dim`` (2 or 3) over a ``window``-pixel window per position, and each window's size.

    Windows are centred, but slide inwards at the frame's edges rather than run past them (as in TLC),
    so each sums min(window, length) real pixels; an axis no longer than ``window`` is summed whole.
    """
    size = x.shape[dim]
    # bounds built from arange, not Python ints, so that an exported graph keeps H and W dynamic
    positions = torch.arange(size, device=x.device)
    length = positions[-1:] + 1
    start = torch.minimum((positions - (window - 1) // 2).clamp(min=0), (length - window).clamp(min=0))
    count = torch.minimum(length, torch.full_like(length, window))
    # Sums restart every ``window`` pixels (van Herk's running-max trick): a window starting at s is the
    # rest of its block from s plus the next block up to s + window. No partial sum then exceeds one
    # block, so float32 stays exact to a few ulp on any frame; one prefix sum along a whole HD row lost
    # 1e-5 (relative), enough to tell tiled from whole-frame renders apart. Zero padding to one block
    # more than the axis needs keeps the last window's next block in range, even on an axis shorter
    # than a window; padded to exactly ``blocks * window`` so that no partial block is left over, which
    # torch.export would otherwise guard on (fixing the graph to sizes with as large a remainder).
    blocks = (size + window - 1) // window + 1
    padded = F.pad(x, [0, 0, 0, blocks * window - size] if dim == 2 else [0, blocks * window - size])
    split = _split_blocks(padded, dim, window)
    before = split.cumsum(dim + 1) - split
    after = (split.sum(dim + 1, keepdim=True) - before).flatten(dim, dim + 1)
    before = before.flatten(dim, dim + 1)
    if dim == 2:
        valid = after[:, :, :-window] + before[:, :, window:]
        return valid.index_select(2, start), count
    valid = after[:, :, :, :-window] + before[:, :, :, window:]
    batch, channels, height, _ = valid.shape
    # gather rather than index_select: along the last dim it is 20x faster on the CPU
    return torch.gather(valid, 3, start.expand(batch, channels, height, size)), count


def _split_blocks(x: Tensor, dim: int, window: int) -> Tensor:
    """A view of ``x`` with axis ``dim`` (2 or 3, a multiple of ``window`` long) split into (blocks, window).

    Split by unfold, whose blocks torch.export counts with one division: a reshape made it prove that
    the blocks divide the axis, which took minutes of sympy per export of the default NAFNet (the
    MLflow model every run logs). The TorchScript-based ONNX exporter, which traces, has no Unfold along
    an axis of unknown length, so a traced graph reshapes; both give the same view of the same memory.
    """
    if torch.jit.is_tracing():
        batch, channels, height, width = x.shape  # unpacked, so the trace records them (unflatten's -1 did not)
        if dim == 2:
            return x.reshape(batch, channels, -1, window, width)
        return x.reshape(batch, channels, height, -1, window)
    split = x.unfold(dim, window, window)  # (..., blocks, ..., window)
    return split.transpose(3, 4) if dim == 2 else split


def local_mean(x: Tensor, window: int) -> Tensor:
    """Mean over a ``window`` x ``window`` neighbourhood of every pixel (TLC's local average pool), in O(1) per pixel.

    Summed in at least float32. A frame no larger than ``window`` gets its global mean.

    Shape: (B, C, H, W) -> (B, C, H, W), in ``x``'s dtype.
    """
    values = x if x.dtype == torch.float64 else x.float()
    rows, row_counts = _window_sums(values, 2, window)
    sums, col_counts = _window_sums(rows, 3, window)
    counts = (row_counts[:, None] * col_counts[None, :]).to(values.dtype)
    return (sums / counts).to(x.dtype)


class ChannelPool(nn.Module):
    """The pooling of Simplified Channel Attention: global, or in eval mode TLC's local window.

    ``window`` 0 pools globally (the paper). A positive ``window`` pools globally in training (patches
    are no larger than the window, where both agree) and over ``window`` x ``window`` pixels around each
    pixel in eval mode, so a full frame sees statistics of the extent the training patches had.

    Shape: (B, C, H, W) -> (B, C, 1, 1) global, or (B, C, H, W) local.
    """

    def __init__(self, window: int = 0) -> None:
        super().__init__()
        self.window = window

    def forward(self, x: Tensor) -> Tensor:
        if self.training or self.window == 0:
            return x.mean((2, 3), keepdim=True)
        return local_mean(x, self.window)


class NAFBlock(nn.Module):
    """NAFNet's block: norm, 1x1 expand, 3x3 depthwise, SimpleGate, channel attention, 1x1; then a gated FFN.

    Both halves add to the input through per-channel scales (``beta``, ``gamma``) that start at
    zero, so a new block starts as the identity. Module names follow the authors' code.

    Shape: (B, channels, H, W) -> (B, channels, H, W).
    """

    def __init__(self, channels: int, pool_window: int = 0) -> None:
        super().__init__()
        hidden = 2 * channels  # the paper's DW_Expand = FFN_Expand = 2; SimpleGate halves it again
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.sca = nn.Sequential(ChannelPool(pool_window), nn.Conv2d(channels, channels, kernel_size=1))
        self.conv3 = nn.Conv2d(channels, channels, kernel_size=1)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.conv5 = nn.Conv2d(channels, channels, kernel_size=1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        mixed = simple_gate(self.conv2(self.conv1(self.norm1(x))))
        y = x + self.conv3(mixed * self.sca(mixed)) * self.beta
        return y + self.conv5(simple_gate(self.conv4(self.norm2(y)))) * self.gamma


def _check_block_counts(name: str, value: object) -> tuple[int, ...]:
    """``value`` as a tuple if it is a list or tuple of block counts (a JSON round trip turns tuples into lists)."""
    if not isinstance(value, (list, tuple)) or len(value) > MAX_LEVELS:
        raise ConfigError(
            f"architecture {ARCH!r}: {name} must be a list of at most {MAX_LEVELS} block counts, one per level, "
            f"got {value!r}"
        )
    return tuple(check_int(ARCH, f"{name}[{i}]", count, low=0, high=MAX_BLOCKS) for i, count in enumerate(value))


def _tile_overlap(
    pool_window: int, encoder_counts: tuple[int, ...], middle_blocks: int, decoder_counts: tuple[int, ...]
) -> int:
    """The tile overlap whose trusted part (tiled_forward keeps 7/16 of it inside each tile) spans the reach.

    The reach counted is one pooling window plus the convolutions': a pixel for each full-resolution
    3x3 conv, 2**level for each 3x3 depthwise conv or 2x2 downsampling at ``level``. Stacked windows
    reach further, but every block dilutes what comes from there: at the default options' 496 pixels,
    tiled and whole-frame output differed by 2e-6 for a briefly trained net and by 1.4e-5 for one with
    every weight perturbed by N(0, 0.1), the same as at 592 pixels (float32 rounding, amplified by the
    perturbed net, then carried as far as the windows reach); at 368 pixels, by 2.3e-5 and 2.1e-5.
    """
    levels = len(encoder_counts)
    reach = pool_window + 2 + middle_blocks * 2**levels
    for level, count in enumerate(encoder_counts):
        reach += (count + decoder_counts[levels - 1 - level] + 1) * 2**level
    multiple = 2**levels
    return -(-reach * 16 // (7 * multiple)) * multiple


@ARCHS.register(ARCH)
class NAFNet(Network):
    """NAFNet (Chen, Chu, Zhang and Sun, "Simple Baselines for Image Restoration", ECCV 2022), few-shot sized.

    A U-Net of NAFBlocks: LayerNorm, convolutions, SimpleGate (one half of the channels times the
    other, in place of an activation) and Simplified Channel Attention (channel weights from pooled
    features). Downsampling is a 2x2 stride-2 conv that doubles the channels, upsampling a 1x1 conv and
    PixelShuffle(2) that halves them, and skips are added, not concatenated. No dropout. Module names
    follow the authors' code (``basicsr/models/archs/NAFNet_arch.py``), so state-dict keys match theirs.

    The paper's channel attention pools over the whole input, so a network trained on patches would
    see different statistics on a full frame. As in TLC (Chu et al., "Improving Image Restoration by
    Revisiting Global Information Aggregation", ECCV 2022), ``pool_window`` replaces that pool in eval
    mode by a local mean over about the extent of a training patch, which also bounds the network's
    reach, so that tiles rendered with ``tile_overlap`` (496 pixels at the defaults, within the default
    1024-pixel tile) match the whole frame to about 1e-5. ``pool_window=0`` keeps global pooling
    everywhere, as in the paper: then no overlap makes tiles exact (each tile pools its own statistics;
    0.45 apart on a perturbed net), and frames are best rendered whole.

    Args:
        in_channels: channels of the input frame.
        out_channels: channels of the output frame.
        width: channels at full resolution (paper: 32), doubled at every level; 1 to 1024.
        enc_blocks: NAFBlocks at each encoder level, finest first, each followed by a downsampling
            (at most 8 levels, 0 to 64 blocks each); a list or tuple.
        middle_blocks: NAFBlocks at the coarsest resolution, 0 to 64.
        dec_blocks: NAFBlocks at each decoder level in the order they run, coarsest first (the paper's
            ``dec_blk_nums``); as many entries as ``enc_blocks``.
        pool_window: 0 pools the channel attention globally (the paper); N > 0 pools, in eval mode,
            over N x N full-resolution pixels around each pixel (N / 2**level at level ``level``).
            The default 128 is the default training patch (and 4/3 of a 96-pixel one, near TLC's
            1.5x): a frame no larger than a training patch then gets exactly the global pooling it
            was trained with, and a larger one the statistics of patch-sized neighbourhoods. Keep it
            no smaller than the training patch, which is always pooled whole.
        residual: predict the change to the input: ``out = tanh(atanh(clamp(x, ±(1 - 1e-5))) + f(x))``
            with the last conv zero-initialised, so the untrained network returns its input. Needs
            ``in_channels == out_channels``.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1; values in [-1, 1] in
        and out. Inputs are padded internally (bottom and right) to a multiple of ``2**len(enc_blocks)``,
        exposed as ``size_multiple``, and the output is cropped back. ``tile_overlap`` grows with
        ``pool_window`` and the number of blocks.

    Example:
        >>> net = NAFNet(width=4, enc_blocks=[1, 1], middle_blocks=1, dec_blocks=[1, 1])
        >>> net(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = ARCH
    tiny_options: ClassVar[dict[str, Any]] = {
        "width": 4, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1], "pool_window": 16,
    }

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        width: int = 16,
        enc_blocks: list[int] | tuple[int, ...] = (1, 1, 1, 2),
        middle_blocks: int = 2,
        dec_blocks: list[int] | tuple[int, ...] = (1, 1, 1, 1),
        pool_window: int = 128,
        residual: bool = True,
    ) -> None:
        check_int(ARCH, "width", width, high=MAX_WIDTH)
        encoder_counts = _check_block_counts("enc_blocks", enc_blocks)
        check_int(ARCH, "middle_blocks", middle_blocks, low=0, high=MAX_BLOCKS)
        decoder_counts = _check_block_counts("dec_blocks", dec_blocks)
        if len(encoder_counts) != len(decoder_counts):
            raise ConfigError(
                f"architecture {ARCH!r}: enc_blocks and dec_blocks need one entry per level each, "
                f"got {len(encoder_counts)} and {len(decoder_counts)}"
            )
        check_int(ARCH, "pool_window", pool_window, low=0)
        levels = len(encoder_counts)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            residual=residual,
            size_multiple=2**levels,
            tile_overlap=_tile_overlap(pool_window, encoder_counts, middle_blocks, decoder_counts),
        )

        def window(level: int) -> int:
            return max(pool_window // 2**level, 1) if pool_window > 0 else 0

        self.intro = nn.Conv2d(in_channels, width, kernel_size=3, padding=1)
        self.encoders = nn.ModuleList()
        self.downs = nn.ModuleList()
        channels = width
        for level, count in enumerate(encoder_counts):
            self.encoders.append(nn.Sequential(*[NAFBlock(channels, window(level)) for _ in range(count)]))
            self.downs.append(nn.Conv2d(channels, 2 * channels, kernel_size=2, stride=2))
            channels *= 2
        self.middle_blks = nn.Sequential(*[NAFBlock(channels, window(levels)) for _ in range(middle_blocks)])
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level, count in zip(reversed(range(levels)), decoder_counts):
            # the 1x1 conv makes 2x the channels, and PixelShuffle turns each 4 into one at 2x the resolution
            up = nn.Sequential(nn.Conv2d(channels, 2 * channels, kernel_size=1, bias=False), nn.PixelShuffle(2))
            self.ups.append(up)
            channels //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(channels, window(level)) for _ in range(count)]))
        self.ending = self.residual_head(nn.Conv2d(width, out_channels, kernel_size=3, padding=1))

    def body(self, x: Tensor) -> Tensor:
        features = self.intro(x)
        skips: list[Tensor] = []
        for encoder, down in zip(self.encoders, self.downs):
            features = encoder(features)
            skips.append(features)
            features = down(features)
        features = self.middle_blks(features)
        for up, decoder in zip(self.ups, self.decoders):
            features = decoder(up(features) + skips.pop())
        return self.ending(features)
