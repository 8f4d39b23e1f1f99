"""Per-pixel losses (L1, MSE), optionally weighted towards an artist's painted region."""

from __future__ import annotations

import torch
from torch import nn

from shotfit.config import LossConfig
from shotfit.losses._common import check_pair, check_weight, weighted_mean
from shotfit.losses.registry import register_loss_term


def l1_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference, weighted per pixel when a map is given.

    Args:
        pred: (B, C, H, W) network output, any range (shotfit uses [-1, 1]).
        target: (B, C, H, W) same shape and range as ``pred``.
        weight: optional (B or 1, 1, H, W) non-negative map; the mean becomes ``sum(w*|d|) / sum(w)``.

    Returns:
        Scalar >= 0, in ``pred``'s units (at most 2 for [-1, 1] data).

    Example:
        >>> l1_loss(torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5))
        tensor(0.5000)
    """
    check_pair(pred, target, "l1_loss")
    check_weight(weight, pred, "l1_loss")
    return weighted_mean((pred - target).abs(), weight)


def mse_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared difference, weighted per pixel when a map is given.

    Args:
        pred: (B, C, H, W) network output, any range (shotfit uses [-1, 1]).
        target: (B, C, H, W) same shape and range as ``pred``.
        weight: optional (B or 1, 1, H, W) non-negative map; the mean becomes ``sum(w*d^2) / sum(w)``.

    Returns:
        Scalar >= 0, in squared units of ``pred`` (at most 4 for [-1, 1] data).
    """
    check_pair(pred, target, "mse_loss")
    check_weight(weight, pred, "mse_loss")
    return weighted_mean((pred - target).pow(2), weight)


class L1Loss(nn.Module):
    """Module form of :func:`l1_loss`: ``forward(pred, target, weight=None) -> scalar``."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return l1_loss(pred, target, weight)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`: ``forward(pred, target, weight=None) -> scalar``."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return mse_loss(pred, target, weight)


@register_loss_term("l1")
def build_l1_term(cfg: LossConfig) -> L1Loss:
    """The ``l1`` term of the hybrid loss: weighted by the artist's map."""
    return L1Loss()


@register_loss_term("mse")
def build_mse_term(cfg: LossConfig) -> MSELoss:
    """The ``mse`` term of the hybrid loss (the ablation's pix2pix-style baseline): weighted by the artist's map."""
    return MSELoss()
