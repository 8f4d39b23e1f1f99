"""SwinIR (Liang et al. 2021) without an upsampler: residual Swin Transformer groups at full resolution."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotfit.archs.base import Network
from shotfit.archs.blocks import MAX_WIDTH, check_float, check_int
from shotfit.archs.registry import ARCHS
from shotfit.errors import ConfigError

ARCH = "swinir"


def _side_masks(window_size: int, shift: int) -> tuple[Tensor, Tensor]:
    """Additive masks (N, N), N = window_size**2, for the windows that the cyclic shift wraps round.

    Rolling the frame up (left) by ``shift`` brings its top rows (left columns) round beside its
    bottom rows (right columns) in the last row (column) of windows; there, a pixel may attend only
    to pixels from its own side of the wrap. Returns (rows mask, columns mask), 0 or -inf.
    """
    wrapped = torch.arange(window_size) >= window_size - shift
    row_side = wrapped[:, None].expand(window_size, window_size).reshape(-1)
    col_side = wrapped[None, :].expand(window_size, window_size).reshape(-1)
    masks = [
        torch.zeros(window_size**2, window_size**2).masked_fill(side[:, None] != side[None, :], float("-inf"))
        for side in (row_side, col_side)
    ]
    return masks[0], masks[1]


def _window_order(height: int, width: int, window_size: int, shift: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """Indices that gather a frame's pixels (flattened row-major) into windows and back.

    The windows are taken on the frame rolled up and left by ``shift`` (wrapping round), row of
    windows by row of windows, each window's pixels row by row. Returns (frame position of each
    window pixel, window position of each frame pixel), both (height * width,).
    """
    cols, tokens = width // window_size, window_size * window_size
    within = torch.arange(window_size, device=device)
    # frame row of each (window row, row inside the window), and column likewise
    frame_rows = (torch.arange(0, height, window_size, device=device)[:, None] + within + shift) % height
    frame_cols = (torch.arange(0, width, window_size, device=device)[:, None] + within + shift) % width
    to_windows = frame_rows[:, None, :, None] * width + frame_cols[None, :, None, :]
    # adding height (width) keeps % away from negative numbers, which exporters treat differently
    rolled_rows = (torch.arange(height, device=device) + height - shift) % height
    rolled_cols = (torch.arange(width, device=device) + width - shift) % width
    row_part = rolled_rows // window_size * cols * tokens + rolled_rows % window_size * window_size
    col_part = rolled_cols // window_size * tokens + rolled_cols % window_size
    return to_windows.reshape(-1), (row_part[:, None] + col_part[None, :]).reshape(-1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned bias per relative offset (Swin, Liu et al. 2021).

    With ``shift`` > 0 the windows are taken on the frame rolled up and left by ``shift`` and the
    result is rolled back, so every second layer's windows straddle the previous layer's borders.
    The windows are anchored to the top-left pixel, so a tile that starts on a multiple of
    ``window_size`` sees the same windows as the whole frame.

    Shape: (B, H, W, C), H and W multiples of ``window_size`` -> (B, H, W, C).
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, shift: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.shift = shift
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        offsets = coords.flatten(1)[:, :, None] - coords.flatten(1)[:, None, :] + window_size - 1
        # buffers follow from window_size and shift alone, so they are not saved with the weights
        index = offsets[0] * (2 * window_size - 1) + offsets[1]
        self.register_buffer("relative_position_index", index.reshape(-1), persistent=False)
        row_mask, col_mask = _side_masks(window_size, shift)
        self.register_buffer("row_mask", row_mask, persistent=False)
        self.register_buffer("col_mask", col_mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        batch, height, width, channels = x.shape
        size, heads = self.window_size, self.num_heads
        rows, cols, tokens = height // size, width // size, size * size
        # one gather takes the (rolled) frame to windows, row by row: (B, rows * cols * N, C)
        to_windows, to_frame = _window_order(height, width, size, self.shift, x.device)
        windows = x.reshape(batch, height * width, channels).index_select(1, to_windows)
        qkv = self.qkv(windows.reshape(batch, rows, cols, tokens, channels))
        # views, not copies: (B, window row, window column, head, token, channel)
        qkv = qkv.reshape(batch, rows, cols, tokens, 3, heads, channels // heads).permute(4, 0, 1, 2, 5, 3, 6)
        query, key, value = qkv.unbind(0)
        bias = self.relative_position_bias_table[self.relative_position_index]
        bias = bias.reshape(tokens, tokens, heads).permute(2, 0, 1)  # (heads, N, N)
        if torch.is_grad_enabled():
            out = self._attend(query, key, value, bias)
        else:
            out = self._attend_fused(query, key, value, bias)
        out = self.proj(out.transpose(3, 4).reshape(batch, rows, cols, tokens, channels))
        return out.reshape(batch, height * width, channels).index_select(1, to_frame).reshape(batch, height, width, channels)

    def _attend(self, query: Tensor, key: Tensor, value: Tensor, bias: Tensor) -> Tensor:
        """Attention written out, for training: a mask that needs a gradient (the learned bias) sends
        F.scaled_dot_product_attention to an unfused path, slower on the CPU than this."""
        rows, cols = query.shape[1], query.shape[2]
        if self.shift > 0:
            last_row = (torch.arange(rows, device=query.device) == rows - 1).reshape(rows, 1, 1, 1, 1)
            last_col = (torch.arange(cols, device=query.device) == cols - 1).reshape(1, cols, 1, 1, 1)
            bias = bias + torch.where(last_row, self.row_mask, torch.zeros_like(self.row_mask))
            bias = bias + torch.where(last_col, self.col_mask, torch.zeros_like(self.col_mask))
        scores = torch.matmul(query * self.scale, key.transpose(-2, -1)) + bias.to(query.dtype)
        return torch.matmul(torch.softmax(scores, dim=-1), value)

    def _attend_fused(self, query: Tensor, key: Tensor, value: Tensor, bias: Tensor) -> Tensor:
        """The same attention through the fused kernel, for inference; (B, rows, cols, heads, N, d) in and out.

        The kernel wants 4-D inputs and a mask that broadcasts over the first dimension, so the
        windows the roll wraps round (the last row and column) are redone with their own masks rather
        than given a mask per window, which at 800x448 cost as much as the attention itself.
        """
        batch, rows, cols, heads, tokens, head_dim = query.shape
        out = _fused_attention(query, key, value, bias[None], [batch * rows * cols, heads, tokens, head_dim])
        out = out.reshape(batch, rows, cols, heads, tokens, head_dim)
        if self.shift > 0:
            last_col = (torch.arange(cols, device=query.device) == cols - 1).reshape(cols, 1, 1, 1)
            mask = bias + self.row_mask + torch.where(last_col, self.col_mask, torch.zeros_like(self.col_mask))
            mask = mask.reshape(1, cols * heads, tokens, tokens)
            edge = _fused_attention(query[:, -1], key[:, -1], value[:, -1], mask, [batch, cols * heads, tokens, head_dim])
            out[:, -1] = edge.reshape(batch, cols, heads, tokens, head_dim)
            mask = (bias + self.col_mask)[None]
            shape = [batch * (rows - 1), heads, tokens, head_dim]
            edge = _fused_attention(query[:, :-1, -1], key[:, :-1, -1], value[:, :-1, -1], mask, shape)
            out[:, :-1, -1] = edge.reshape(batch, rows - 1, heads, tokens, head_dim)
        return out


def _fused_attention(query: Tensor, key: Tensor, value: Tensor, mask: Tensor, shape: list[int]) -> Tensor:
    """F.scaled_dot_product_attention on query, key and value reshaped to ``shape`` (4-D, as the fused kernels want)."""
    # under autocast the bias and masks stay float32 while the query is not; the kernel wants one dtype
    mask = mask.to(query.dtype)
    return F.scaled_dot_product_attention(query.reshape(shape), key.reshape(shape), value.reshape(shape), attn_mask=mask)


class SwinLayer(nn.Module):
    """Pre-norm Swin Transformer layer: (shifted) window attention, then an MLP, each with a residual add.

    Shape: (B, H, W, C), H and W multiples of ``window_size`` -> (B, H, W, C).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, shift)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(int(dim * mlp_ratio), 1)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ResidualSwinGroup(nn.Module):
    """SwinIR's residual Swin Transformer block (RSTB): Swin layers, alternately shifted, a 3x3 conv, plus the input.

    Shape: (B, H, W, C), H and W multiples of ``window_size`` -> (B, H, W, C).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *(SwinLayer(dim, num_heads, window_size, (i % 2) * (window_size // 2), mlp_ratio) for i in range(depth))
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.layers(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def _check_depths(depths: object) -> list[int]:
    if isinstance(depths, (str, bytes)) or not isinstance(depths, (list, tuple)) or not 1 <= len(depths) <= 16:
        raise ConfigError(f"architecture {ARCH!r}: depths must be a list of 1 to 16 integers, got {depths!r}")
    return [check_int(ARCH, f"depths[{i}]", depth, high=64) for i, depth in enumerate(depths)]


def _check_heads(num_heads: object, groups: int, embed_dim: int) -> list[int]:
    if isinstance(num_heads, (list, tuple)):
        if len(num_heads) != groups:
            raise ConfigError(
                f"architecture {ARCH!r}: num_heads must be an integer or a list as long as depths ({groups}), "
                f"got {num_heads!r}"
            )
        heads = [check_int(ARCH, f"num_heads[{i}]", count, high=embed_dim) for i, count in enumerate(num_heads)]
    else:
        heads = [check_int(ARCH, "num_heads", num_heads, high=embed_dim)] * groups
    for count in heads:
        if embed_dim % count:
            raise ConfigError(f"architecture {ARCH!r}: embed_dim {embed_dim} must be divisible by num_heads {count}")
    return heads


@ARCHS.register(ARCH)
class SwinIR(Network):
    """SwinIR for same-size restoration (Liang et al., "SwinIR: Image Restoration Using Swin Transformer", ICCVW 2021).

    The denoising / JPEG-artefact variant, with no upsampler: a 3x3 conv lifts the frame to
    ``embed_dim`` channels (shallow features); residual Swin Transformer groups (RSTB: ``depths[i]``
    Swin layers, then a 3x3 conv, plus the group's input) refine them at full resolution; a LayerNorm
    and a 3x3 conv close the body, the shallow features are added back, and a last 3x3 conv gives the
    edit. Each Swin layer is pre-norm window attention with a relative position bias and an MLP;
    every second layer takes its windows on the frame rolled by half a window, masked so that the
    windows wrapping round the frame's far edges never mix top with bottom or left with right.
    LayerNorm as in the paper; no dropout, no stochastic depth (random per frame, they would flicker).

    Attention never leaves its window, so the network is local: :func:`reach` gives how far a pixel
    can see (39 pixels at the defaults), and ``tile_overlap`` is the overlap at which
    :func:`shotfit.infer.tiling.tiled_forward` keeps only pixels that cannot see past their tile, so
    tiles match the whole frame to float rounding whatever the weights.

    Training uses attention written out (its learned bias needs a gradient); under ``torch.no_grad``
    the same attention runs through the fused ``scaled_dot_product_attention`` kernel, which differs
    only by float rounding and is what a rendered shot uses.

    Args:
        in_channels: channels of the input frame.
        out_channels: channels of the output frame.
        embed_dim: feature channels throughout, 1 to 1024; divisible by every ``num_heads``.
        depths: Swin layers in each residual group, one integer (1 to 64) per group, 1 to 16 groups.
            Layers alternate plain and shifted windows within each group.
        num_heads: attention heads, one integer for every group or a list as long as ``depths``.
        window_size: attention window side in pixels, 2 to 64; H and W are padded to a multiple of it.
        mlp_ratio: hidden width of each layer's MLP as a multiple of ``embed_dim``, 0.25 to 8.
        residual: predict the change to the input, ``out = tanh(atanh(clamp(x, ±(1 - 1e-5))) + f(x))``,
            with the last conv zero-initialised so the untrained network returns its input. Needs
            ``in_channels == out_channels``.

    The defaults (48 channels, four groups of two layers, 2 heads of 24 channels, 8x8 windows, 0.26M
    parameters) are the paper's lightweight model cut to train at about 3x the time of the default
    ``unet_attn`` on a CPU: every parameter here works at full resolution, so time grows with
    ``embed_dim**2 * sum(depths)``.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H, W) for any H, W >= 1; values in [-1, 1] in
        and out. Inputs are padded internally (bottom and right) to a multiple of ``window_size``,
        exposed as ``size_multiple``, and the output is cropped back.

    Example:
        >>> net = SwinIR(embed_dim=8, depths=[2], num_heads=2, window_size=4)
        >>> net(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = ARCH
    tiny_options: ClassVar[dict[str, Any]] = {
        "embed_dim": 6, "depths": [2, 2], "num_heads": [2, 3], "window_size": 4,
    }

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        embed_dim: int = 48,
        # a list, not a tuple: the resolved options go to YAML and JSON and must compare equal on resume
        depths: list[int] = [2, 2, 2, 2],  # noqa: B006 (never mutated)
        num_heads: int | list[int] = 2,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        residual: bool = True,
    ) -> None:
        check_int(ARCH, "embed_dim", embed_dim, high=MAX_WIDTH)
        depths = _check_depths(depths)
        heads = _check_heads(num_heads, len(depths), embed_dim)
        check_int(ARCH, "window_size", window_size, low=2, high=64)
        mlp_ratio = check_float(ARCH, "mlp_ratio", mlp_ratio, 0.25, 8.0)
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            residual=residual,
            size_multiple=window_size,
            # tiled_forward trusts a tile only 7/16 of the overlap inside its edge; that must cover the reach
            tile_overlap=math.ceil((reach(window_size, depths) + 1) * 16 / 7),
        )
        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.embed_norm = nn.LayerNorm(embed_dim)  # SwinIR's patch_norm
        self.groups = nn.ModuleList(
            ResidualSwinGroup(embed_dim, depth, count, window_size, mlp_ratio) for depth, count in zip(depths, heads)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
        self.conv_last = self.residual_head(nn.Conv2d(embed_dim, out_channels, 3, padding=1))
        self.apply(_init_linear)  # Linears only, so the zeroed head stays zero

    def body(self, x: Tensor) -> Tensor:
        shallow = self.conv_first(x)
        features = self.embed_norm(shallow.permute(0, 2, 3, 1))  # (B, H, W, C) from here to the last norm
        for group in self.groups:
            features = group(features)
        deep = self.conv_after_body(self.norm(features).permute(0, 3, 1, 2)) + shallow
        return self.conv_last(deep)


def reach(window_size: int, depths: list[int]) -> int:
    """How far (pixels) an output pixel's value can depend on the input, at worst over its place in the window grid.

    Walked from the output back to the input: a 3x3 conv widens the dependence by a pixel, a Swin
    layer to the whole windows it touches (on the grid shifted by half a window every second layer).
    Windows are anchored to the frame's top-left, so this holds for tiles that start on the grid.
    """
    shift = window_size // 2
    worst = 0
    for start in range(window_size):
        low, high = start - 2, start + 2  # conv_last, conv_after_body
        for depth in reversed(depths):
            low, high = low - 1, high + 1  # the group's conv
            for layer in reversed(range(depth)):
                offset = shift if layer % 2 else 0
                low = (low - offset) // window_size * window_size + offset
                high = (high - offset) // window_size * window_size + offset + window_size - 1
        worst = max(worst, start - (low - 1), (high + 1) - start)  # conv_first
    return worst


def _init_linear(module: nn.Module) -> None:
    # SwinIR's initialisation; convolutions and LayerNorms keep PyTorch's
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
