"""Pieces shared by architectures: conv layers, attention gates, padding to a size multiple.

Everything here is local (no global pooling, no attention over the whole frame), so a network built
from these blocks gives the same result on a tile as on the whole frame away from the tile's borders:
that is what lets :func:`shotfit.infer.tiling.tiled_forward` render 8K frames.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

UPSAMPLE_MODES = ("bilinear", "nearest")
DOWNSAMPLE_MODES = ("max", "avg")


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


def _pad_dim(x: Tensor, dim: int, multiple: int) -> Tensor:
    """Pad dimension ``dim`` (-2 for H, -1 for W) at its far end up to a multiple of ``multiple``."""
    size = x.shape[dim]
    # padded even when the amount is 0: an exported graph (torch.export) then works for every size,
    # not only for sizes on the same side of that branch as the example
    amount = (multiple - size % multiple) % multiple
    # reflect needs amount < size; a 5-pixel-tall input padded to 16 falls back to repeating its edge
    mode = "reflect" if size >= multiple else "replicate"
    pad = [0, amount, 0, 0] if dim == -1 else [0, 0, 0, amount]
    return F.pad(x, pad, mode=mode)


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
