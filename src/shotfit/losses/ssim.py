"""SSIM loss (1 - SSIM) with an 11-tap Gaussian window, via kornia's SSIM map.

SSIM's luminance term ``(2 mu_a mu_b + c1) / (mu_a^2 + mu_b^2 + c1)`` assumes non-negative intensities.
Computed directly on [-1, 1] data it collapses around mid grey (means near 0) and turns negative where
the two means have opposite signs: a 1% brightness change on flat mid grey scores SSIM 0.33. So this
loss owns its input range and shifts the data to [0, 1] before measuring; the constants are then the
standard ``c1 = (0.01 L)^2``, ``c2 = (0.03 L)^2`` for the data's true range L (2 for [-1, 1]).
"""

from __future__ import annotations

import torch
from kornia.metrics import ssim as kornia_ssim
from torch import nn

from shotfit.config import LossConfig
from shotfit.losses._common import check_pair, check_weight, weighted_mean
from shotfit.losses.registry import register_loss_term

WINDOW_SIZE = 11


def ssim_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    window_size: int = WINDOW_SIZE,
    input_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """One minus the (weighted) mean SSIM, with a Gaussian window (sigma 1.5) and reflect padding.

    Args:
        pred: (B, C, H, W) values in ``input_range``; H and W larger than ``window_size // 2``.
        target: (B, C, H, W) same shape and range as ``pred``.
        weight: optional (B or 1, 1, H, W) non-negative map weighting the per-pixel SSIM map.
        window_size: odd number of Gaussian taps.
        input_range: (low, high) value range of the data, (-1, 1) for shotfit network tensors.

    Returns:
        Scalar in [0, 2]: 0 for identical images, about 1 for unrelated ones.

    Example:
        >>> a = torch.rand(1, 3, 32, 32) * 2 - 1
        >>> ssim_loss(a, a)
        tensor(0.)
    """
    check_pair(pred, target, "ssim_loss")
    check_weight(weight, pred, "ssim_loss")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"ssim_loss: window_size must be a positive odd number, got {window_size}")
    if min(pred.shape[2:]) <= window_size // 2:
        raise ValueError(f"ssim_loss: images must be larger than {window_size // 2} pixels a side for a "
                         f"{window_size}-tap window, got {tuple(pred.shape)}")
    low, high = (float(v) for v in input_range)
    if not high > low:
        raise ValueError(f"ssim_loss: input_range must be (low, high) with low < high, got {input_range!r}")
    scale = 1.0 / (high - low)
    # eps=0: c1 and c2 already keep the denominator positive, and kornia's default eps would score two
    # identical black patches 0.99999 rather than 1.
    ssim_map = kornia_ssim((pred - low) * scale, (target - low) * scale, window_size, max_val=1.0, eps=0.0)
    return weighted_mean(1.0 - ssim_map, weight)


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`: ``forward(pred, target, weight=None) -> scalar``.

    Args:
        window_size: odd number of Gaussian taps (11).
        input_range: (low, high) value range of the data, (-1, 1) for shotfit network tensors.
    """

    def __init__(self, window_size: int = WINDOW_SIZE, input_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__()
        self.window_size = window_size
        self.input_range = (float(input_range[0]), float(input_range[1]))

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, input_range={self.input_range}"

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return ssim_loss(pred, target, weight, self.window_size, self.input_range)


@register_loss_term("ssim")
def build_ssim_term(cfg: LossConfig) -> SSIMLoss:
    """The ``ssim`` term of the hybrid loss: 1 - SSIM on [-1, 1] network tensors, weighted by the artist's map."""
    return SSIMLoss(input_range=(-1.0, 1.0))
