"""Input checks and the weighted mean that every loss in this package shares."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_pair(pred: torch.Tensor, target: torch.Tensor, loss: str) -> None:
    """Raise ValueError unless ``pred`` and ``target`` are two (B, C, H, W) tensors of one shape."""
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise TypeError(f"{loss}: pred and target must be tensors, got {type(pred).__name__} "
                        f"and {type(target).__name__}")
    if pred.dim() != 4:
        raise ValueError(f"{loss}: expected (B, C, H, W) tensors, got pred of shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(f"{loss}: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")


def check_weight(weight: torch.Tensor | None, pred: torch.Tensor, loss: str) -> None:
    """Raise ValueError unless ``weight`` is None or a non-negative (B or 1, 1, H, W) map for ``pred``."""
    if weight is None:
        return
    b, _, h, w = pred.shape
    if weight.dim() != 4 or weight.shape[1] != 1 or weight.shape[0] not in (1, b) or weight.shape[2:] != (h, w):
        raise ValueError(f"{loss}: weight map must be ({b}, 1, {h}, {w}) for pred of shape "
                         f"{tuple(pred.shape)}, got {tuple(weight.shape)}")
    if bool((weight < 0).any()):
        raise ValueError(f"{loss}: weight map has negative values (min {weight.min().item():.4g})")


def weighted_mean(err: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``err`` over every element, each pixel counted by its weight.

    Args:
        err: per-element error, shape (B, C, H, W), any real values.
        weight: (B or 1, 1, H, W) non-negative map, or None for a plain mean.

    Returns:
        Scalar ``sum(w * err) / sum(w)`` with the map broadcast over channels (and batch when its
        batch is 1). An all-zero map gives 0 rather than NaN: a patch with nothing painted has
        nothing to learn from.
    """
    if weight is None:
        return err.mean()
    weight = weight.to(err.dtype).expand(err.shape[0], 1, *err.shape[2:])
    total = (err * weight).sum()
    # The map is broadcast over channels, so each weight counts once per channel.
    norm = weight.sum() * err.shape[1]
    return total / norm.clamp_min(torch.finfo(err.dtype).tiny)


def resize_weight(weight: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
    """A weight map brought to ``size`` (H, W) by area averaging, so its total mass is kept in proportion."""
    if weight is None or tuple(weight.shape[2:]) == tuple(size):
        return weight
    return F.interpolate(weight, size=size, mode="area")
