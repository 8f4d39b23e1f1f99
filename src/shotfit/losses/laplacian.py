"""Laplacian-pyramid loss: L1 between the band-pass bands of prediction and target.

Splitting the error by octave keeps a low-frequency (colour, grade) error and a high-frequency
(detail, grain) error from hiding behind each other, which a single pixel L1 lets happen.

Bands follow Burt & Adelson with kornia's 5x5 binomial ``pyrdown``/``pyrup``: band ``k`` (k < levels-1)
is Gaussian level k minus the upsampled Gaussian level k+1, and the last band is the coarsest
Gaussian level itself (the low-pass residual). The bands sum back to the image exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from kornia.geometry.transform import pyrdown, pyrup
from torch import nn

from shotfit.config import LossConfig
from shotfit.losses._common import check_pair, check_weight, resize_weight, weighted_mean
from shotfit.losses.registry import register_loss_term

BAND_WEIGHT_MODES = ("equal", "halving")


def laplacian_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian bands of an image whose sides are multiples of ``2 ** (levels - 1)``.

    Args:
        image: (B, C, H, W), any range; H and W multiples of ``2 ** (levels - 1)`` and at least ``2 ** levels``
            when levels > 1.
        levels: number of bands returned, >= 1.

    Returns:
        ``levels`` tensors, band k of shape (B, C, H / 2^k, W / 2^k); the last is the low-pass residual.
    """
    gaussian = [image]
    for _ in range(levels - 1):
        gaussian.append(pyrdown(gaussian[-1]))
    bands = [fine - pyrup(coarse) for fine, coarse in zip(gaussian[:-1], gaussian[1:])]
    bands.append(gaussian[-1])
    return bands


def band_weights_for(band_weights: str | Sequence[float], levels: int) -> list[float]:
    """Resolve a band-weight mode or explicit list to ``levels`` non-negative floats (finest band first)."""
    if isinstance(band_weights, str):
        if band_weights == "equal":
            return [1.0] * levels
        if band_weights == "halving":
            return [2.0**-level for level in range(levels)]
        raise ValueError(f"band_weights {band_weights!r} is not one of {BAND_WEIGHT_MODES} or a list of floats")
    weights = [float(w) for w in band_weights]
    if len(weights) != levels or any(not w >= 0 for w in weights):
        raise ValueError(f"band_weights must be {levels} non-negative numbers (one per level), got {weights}")
    return weights


def laplacian_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    levels: int = 5,
    band_weights: str | Sequence[float] = "equal",
) -> torch.Tensor:
    """Sum over pyramid bands of the (weighted) mean absolute band difference.

    Band weights default to ``"equal"``: every octave counts as much as a pixel L1 would, so a pure colour
    offset ``d`` scores exactly ``d`` (it lives only in the residual band), and fine detail is not drowned
    by the larger low-pass values. ``"halving"`` (``2^-k`` for band k) favours fine detail; a list gives
    one weight per band, finest first.

    Any H and W work: the images are edge-padded to a multiple of ``2 ** (levels - 1)`` (and to at least
    ``2 ** levels``), and the padding carries zero weight, so only real pixels count.

    Args:
        pred: (B, C, H, W) network output, shotfit's [-1, 1] (the loss itself accepts any range).
        target: (B, C, H, W) same shape and range as ``pred``.
        weight: optional (B or 1, 1, H, W) non-negative map, area-averaged down to each band's size.
        levels: number of bands, >= 1 (1 is a plain L1).
        band_weights: ``"equal"``, ``"halving"`` or ``levels`` non-negative floats.

    Returns:
        Scalar >= 0.

    Example:
        >>> pred = torch.zeros(1, 3, 32, 32)
        >>> laplacian_loss(pred, pred + 0.25, levels=3)
        tensor(0.2500)
    """
    check_pair(pred, target, "laplacian_loss")
    check_weight(weight, pred, "laplacian_loss")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ValueError(f"laplacian_loss: levels must be an integer >= 1, got {levels!r}")
    weights = band_weights_for(band_weights, levels)

    height, width = pred.shape[2:]
    stride = 2 ** (levels - 1)
    # At least two pixels at the coarsest level that pyrdown is applied to keeps its reflect padding valid.
    pad_h = max(-(-height // stride) * stride, 2 * stride if levels > 1 else 1) - height
    pad_w = max(-(-width // stride) * stride, 2 * stride if levels > 1 else 1) - width
    if pad_h or pad_w:
        if weight is None:
            weight = pred.new_ones(1, 1, height, width)
        # Replicate padding works for any size; the padded pixels get weight 0 so they never count.
        pred = F.pad(pred, (0, pad_w, 0, pad_h), mode="replicate")
        target = F.pad(target, (0, pad_w, 0, pad_h), mode="replicate")
        weight = F.pad(weight, (0, pad_w, 0, pad_h), mode="constant", value=0.0)

    # The pyramid is linear, so one pyramid of the difference equals the difference of the two pyramids.
    bands = laplacian_pyramid(pred - target, levels)
    total = pred.new_zeros(())
    for band, band_weight in zip(bands, weights):
        if band_weight == 0.0:
            continue
        total = total + band_weight * weighted_mean(band.abs(), resize_weight(weight, band.shape[2:]))
    return total


class LaplacianLoss(nn.Module):
    """Module form of :func:`laplacian_loss`: ``forward(pred, target, weight=None) -> scalar``.

    Args:
        levels: number of pyramid bands, >= 1.
        band_weights: ``"equal"`` (default), ``"halving"`` or one float per band, finest first.
    """

    def __init__(self, levels: int = 5, band_weights: str | Sequence[float] = "equal") -> None:
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"LaplacianLoss: levels must be an integer >= 1, got {levels!r}")
        self.levels = levels
        self.band_weights = band_weights_for(band_weights, levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, band_weights={self.band_weights}"

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return laplacian_loss(pred, target, weight, self.levels, self.band_weights)


@register_loss_term("laplacian")
def build_laplacian_term(cfg: LossConfig) -> LaplacianLoss:
    """The ``laplacian`` term of the hybrid loss: ``loss.laplacian_levels`` equally weighted bands."""
    return LaplacianLoss(levels=cfg.laplacian_levels)
