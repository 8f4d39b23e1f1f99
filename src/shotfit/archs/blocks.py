"""Pieces shared by architectures: option checks, conv layers, attention gates, padding, the tanh output.

Everything here is local (no global pooling, no attention over the whole frame), so a network built
from these blocks gives the same result on a tile as on the whole frame away from the tile's borders:
that is what lets :func:`shotfit.infer.tiling.tiled_forward` render 8K frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from shotfit.errors import ConfigError

UPSAMPLE_MODES = ("bilinear", "nearest")
DOWNSAMPLE_MODES = ("max", "avg")
# Inputs are held this far inside ±1 before atanh. 16-bit white comes back as 1 - 0.5e-5 on [0, 1],
# a third of a code value, so it still rounds to 65535; a larger eps would let white drift.
RESIDUAL_EPS = 1e-5
#: The most feature channels any network's width option (``width``, ``embed_dim``) takes: far above a useful
#: few-shot network, far below one whose weights alone exhaust memory, so ``model.width=100000`` is one
#: line rather than an allocator error. Wide options that multiply (width and depth) are bounded by
#: :data:`shotfit.archs.registry.MAX_PARAMETERS` as well.
MAX_WIDTH = 1024


def check_int(arch: str, name: str, value: object, low: int = 1, high: int | None = None) -> int:
    """``value`` if it is an integer in ``[low, high]``; otherwise a one-line ConfigError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ConfigError(f"architecture {arch!r}: {name} must be an integer {bound}, got {value!r}")
    return value


def check_float(arch: str, name: str, value: object, low: float, high: float) -> float:
    """``value`` as a float if it is a number in ``[low, high]``; otherwise a one-line ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"architecture {arch!r}: {name} must be a number from {low} to {high}, got {value!r}")
    return float(value)


def check_choice(arch: str, name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; otherwise a one-line ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"architecture {arch!r}: {name} {value!r} is not one of {', '.join(choices)}")
    return value  # type: ignore[return-value]


def check_residual(arch: str, residual: object, in_channels: int, out_channels: int) -> bool:
    """Validate the ``residual`` option shared by every architecture (it needs as many outputs as inputs)."""
    if not isinstance(residual, bool):
        raise ConfigError(f"architecture {arch!r}: residual must be true or false, got {residual!r}")
    if residual and in_channels != out_channels:
        raise ConfigError(
            f"architecture {arch!r}: residual=True needs in_channels == out_channels "
            f"(got {in_channels} and {out_channels}); set residual=False"
        )
    return residual


def tanh_output(x: Tensor, delta: Tensor, residual: bool, eps: float = RESIDUAL_EPS) -> Tensor:
    """Every architecture's last step: ``tanh(delta)``, or with ``residual`` ``tanh(atanh(x) + delta)``.

    In residual mode a network whose last layer starts at zero returns its input exactly, so training
    starts from "no edit". The input is held ``eps`` inside ±1 so atanh stays finite, and the
    sum is taken in float32 whatever the dtype (in float16, 1 - 1e-5 rounds to 1 and atanh(1) is inf).
    Because of the tanh, a clipped pixel (exactly ±1) moves slowly in training: its gradient is scaled
    by ``1 - out**2``, about 2e-5 at the clip point.

    Shape: x and delta (B, C, H, W) -> (B, C, H, W) in x's dtype (delta's when not residual).
    """
    if residual:
        held = x.float().clamp(-1.0 + eps, 1.0 - eps)
        # atanh written out: ONNX's TorchScript-based exporter has no atanh, and log1p keeps its precision
        base = 0.5 * (torch.log1p(held) - torch.log1p(-held))
        return torch.tanh(base + delta.float()).to(x.dtype)
    return torch.tanh(delta)


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv (no bias: BatchNorm has one), BatchNorm, ReLU. Keeps H and W."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers, the U-Net's unit of work at one resolution.

    Shape: (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


def downsample(mode: str) -> nn.Module:
    """Halve H and W: ``"max"`` (the classic U-Net) or ``"avg"`` (less aliasing, so steadier under sub-pixel motion)."""
    if mode == "max":
        return nn.MaxPool2d(2)
    if mode == "avg":
        return nn.AvgPool2d(2)
    raise ValueError(f"downsample mode {mode!r} is not one of {DOWNSAMPLE_MODES}")


class UpsampleConv(nn.Sequential):
    """Double H and W by interpolation, then a 3x3 conv-BN-ReLU.

    Resize-then-convolve rather than a transposed convolution: a transposed conv applies a different
    kernel to each output phase, which prints a checkerboard into smooth gradients (Odena et al.,
    Distill 2016), and in a graded sky that pattern is the first thing a colourist sees.

    Shape: (B, in_channels, H, W) -> (B, out_channels, 2H, 2W).
    """

    def __init__(self, in_channels: int, out_channels: int, mode: str = "bilinear") -> None:
        if mode not in UPSAMPLE_MODES:
            raise ValueError(f"upsample mode {mode!r} is not one of {UPSAMPLE_MODES}")
        align_corners = False if mode == "bilinear" else None
        super().__init__(
            nn.Upsample(scale_factor=2.0, mode=mode, align_corners=align_corners),
            conv_bn_relu(in_channels, out_channels),
        )


class AttentionGate(nn.Module):
    """Additive attention gate on a U-Net skip connection (Oktay et al. 2018, "Attention U-Net").

    The coarser decoder features (the gating signal ``g``) decide, per pixel, how much of the skip
    features ``x`` pass: ``alpha = sigmoid(psi(relu(W_x(x) + W_g(g))))``, upsampled to ``x``'s
    resolution, and the gate returns ``x * alpha``. ``W_x`` is a 2x2 convolution with stride 2, as in
    the authors' code, so it reaches ``g``'s resolution without discarding three pixels in four.

    Shape:
        x: (B, skip_channels, 2h, 2w); g: (B, gate_channels, h, w) -> (B, skip_channels, 2h, 2w).
    """

    def __init__(self, skip_channels: int, gate_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.theta_x = nn.Conv2d(skip_channels, inter_channels, kernel_size=2, stride=2, bias=False)
        self.phi_g = nn.Conv2d(gate_channels, inter_channels, kernel_size=1)
        self.psi = nn.Conv2d(inter_channels, 1, kernel_size=1)

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        alpha = torch.sigmoid(self.psi(F.relu(self.theta_x(x) + self.phi_g(g))))
        alpha = F.interpolate(alpha, size=(x.shape[-2], x.shape[-1]), mode="bilinear", align_corners=False)
        return x * alpha


class PassSkip(nn.Module):
    """A skip connection without a gate: returns the skip features ``x`` unchanged (the plain U-Net)."""

    def forward(self, x: Tensor, g: Tensor) -> Tensor:
        return x


def _pad_dim(x: Tensor, dim: int, multiple: int) -> Tensor:
    """Pad dimension ``dim`` (-2 for H, -1 for W) at its far end up to a multiple of ``multiple``.

    Reflect padding (mirrored about the last pixel) when the dimension is at least ``multiple`` long,
    else the edge pixel repeated. Written as a gather whose indices are computed from the size, so
    that choice stays in the graph of a traced or ONNX-exported network instead of being frozen at
    the example's size (a frozen reflect gave wrong pixels on frames smaller than ``multiple``);
    the values are the same as ``F.pad(x, ..., mode="reflect"/"replicate")``, bit for bit.
    """
    size = x.shape[dim]
    # padded even when the amount is 0: an exported graph (torch.export) then works for every size,
    # not only for sizes on the same side of that branch as the example
    amount = (multiple - size % multiple) % multiple
    positions = torch.arange(size + amount, device=x.device)
    # sizes enter as tensors (positions * 0 + n) so that tracing records them rather than constants
    last = positions * 0 + (size - 1)
    period = (2 * last).clamp(min=1)  # reflection repeats every 2 * (size - 1) pixels
    phase = positions % period
    reflected = torch.minimum(phase, period - phase)
    repeated = torch.minimum(positions, last)
    index = torch.where(last + 1 >= multiple, reflected, repeated)
    return x.index_select(dim % x.dim(), index)


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """The top-left ``height`` x ``width`` of ``x`` (B, C, H, W), undoing :func:`pad_to_multiple`.

    Gathered with index_select rather than sliced: a slice view makes torch.export specialise the
    graph to the example's size, and an exported network must take any frame size.
    """
    rows = torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device)
    return x.index_select(2, rows).index_select(3, cols)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad H and W at the bottom and right up to the next multiple of ``multiple``.

    Only the far edges are padded, so the downsampling grid stays anchored to the top-left pixel:
    a tile that starts on a multiple of ``multiple`` pools exactly the pixels the whole frame does.

    Shape: (B, C, H, W) -> (B, C, ceil(H/m)*m, ceil(W/m)*m).
    """
    return _pad_dim(_pad_dim(x, -2, multiple), -1, multiple)
