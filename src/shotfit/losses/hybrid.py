"""The training loss: a weighted sum of L1, LPIPS, Laplacian-pyramid, SSIM and studio embedding terms."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

from shotfit.errors import ConfigError
from shotfit.losses._common import check_pair, check_weight, weighted_mean
from shotfit.losses.laplacian import LaplacianLoss
from shotfit.losses.lpips import LPIPS
from shotfit.losses.pixel import L1Loss, MSELoss
from shotfit.losses.ssim import SSIMLoss

BUILT_IN_TERMS = ("l1", "mse", "lpips", "laplacian", "ssim")
_NAME = re.compile(r"[A-Za-z0-9_\-]+")


class HybridLoss(nn.Module):
    """``l1·L1 + mse·MSE + lpips·LPIPS + laplacian·LapPyr + ssim·(1 - SSIM) + Σ weight·extra`` on [-1, 1] images.

    A term whose weight is 0 is never built nor evaluated (a zero LPIPS weight never loads the
    network) and is absent from the returned values.

    Args:
        l1, lpips, laplacian, ssim: non-negative weights of the built-in terms.
        mse: weight of a mean squared error term (off by default; the ablation's pix2pix-style baseline).
        laplacian_levels: bands of the Laplacian-pyramid term, >= 1.
        extra: ``(name, module, weight)`` triples of further terms, each called as ``module(pred, target)``
            and returning a scalar, e.g. ``("age", EmbeddingLoss(...), 0.1)``. Names are letters, digits,
            ``_`` or ``-`` and must not repeat a built-in name.

    Raises:
        ConfigError: a weight is negative or not finite, every weight is 0, an extra name is invalid or
            repeated, or ``laplacian_levels`` is not a positive integer.

    Shape:
        - pred, target: (B, C, H, W) in [-1, 1], C = 1 or 3; H, W >= 21 when LPIPS is on.
        - weight: optional (B or 1, 1, H, W) non-negative map (artist masks). It weights L1, LPIPS (its
          spatial map), the Laplacian bands and the SSIM map; extra terms are not spatially weighted.
        - Output: ``(total, values)``: the weighted total (scalar, with gradient) and each active term's
          unweighted value, detached, keyed ``l1``, ``lpips``, ``laplacian``, ``ssim`` and the extra names.

    LPIPS refuses data outside [-1, 1], so the prediction is clamped to [-1, 1] for that term only: a network
    that overshoots a little mid-training is normal, and L1 still pulls those pixels back. The target is not
    clamped, so data in the wrong range is still caught.

    Example:
        >>> loss = HybridLoss(l1=1.0, laplacian=1.0)
        >>> total, values = loss(torch.zeros(1, 3, 32, 32), torch.full((1, 3, 32, 32), 0.5))
        >>> sorted(values)
        ['l1', 'laplacian']
    """

    def __init__(
        self,
        l1: float = 1.0,
        lpips: float = 0.0,
        laplacian: float = 0.0,
        ssim: float = 0.0,
        mse: float = 0.0,
        laplacian_levels: int = 5,
        extra: Sequence[tuple[str, nn.Module, float]] = (),
    ) -> None:
        super().__init__()
        if isinstance(laplacian_levels, bool) or not isinstance(laplacian_levels, int) or laplacian_levels < 1:
            raise ConfigError(f"loss laplacian_levels = {laplacian_levels!r} must be an integer >= 1")
        weights = {"l1": l1, "mse": mse, "lpips": lpips, "laplacian": laplacian, "ssim": ssim}
        extras = _checked_extras(extra)
        for name, _, weight in extras:
            weights[name] = weight
        for name, weight in weights.items():
            _check_weight_value(name, weight)
        if not any(float(w) > 0 for w in weights.values()):
            raise ConfigError(f"every loss weight is 0 ({', '.join(weights)}); give at least one a positive weight")

        extra_modules = {name: module for name, module, _ in extras}
        self.term_names: tuple[str, ...] = tuple(name for name, w in weights.items() if float(w) > 0)
        self.term_weights: tuple[float, ...] = tuple(float(weights[name]) for name in self.term_names)
        # A ModuleList rather than a ModuleDict: studio names like "train" would clash with attributes.
        self.terms = nn.ModuleList(self._build(name, laplacian_levels, extra_modules) for name in self.term_names)

    @staticmethod
    def _build(name: str, levels: int, extra_modules: dict[str, nn.Module]) -> nn.Module:
        if name == "l1":
            return L1Loss()
        if name == "mse":
            return MSELoss()
        if name == "lpips":
            return LPIPS(input_range=(-1.0, 1.0))
        if name == "laplacian":
            return LaplacianLoss(levels=levels)
        if name == "ssim":
            return SSIMLoss(input_range=(-1.0, 1.0))
        return extra_modules[name]

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={weight:g}" for name, weight in zip(self.term_names, self.term_weights))

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and each term's unweighted, detached value (see the class docstring)."""
        check_pair(pred, target, "HybridLoss")
        check_weight(weight, pred, "HybridLoss")
        total = pred.new_zeros(())
        values: dict[str, torch.Tensor] = {}
        for name, term_weight, module in zip(self.term_names, self.term_weights, self.terms):
            if name == "lpips":
                value = self._lpips(module, pred, target, weight)
            elif name in BUILT_IN_TERMS:
                value = module(pred, target, weight)
            else:
                value = module(pred, target)
                if not isinstance(value, torch.Tensor) or value.dim() != 0:
                    shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                    raise ValueError(f"extra loss {name!r} must return a scalar tensor, got {shape}")
            total = total + term_weight * value
            values[name] = value.detach()
        return total, values

    @staticmethod
    def _lpips(module: LPIPS, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        pred = pred.clamp(-1.0, 1.0)
        if weight is None:
            return module(pred, target).mean()
        return weighted_mean(module.distance_map(pred, target), weight)


def _checked_extras(extra: Sequence[tuple[str, nn.Module, float]]) -> list[tuple[str, nn.Module, float]]:
    seen: set[str] = set()
    checked = []
    for item in extra:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ConfigError(f"extra loss {item!r} must be a (name, module, weight) triple")
        name, module, weight = item
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"extra loss name {name!r} must be letters, digits, '_' or '-'")
        if name in BUILT_IN_TERMS or name in seen:
            raise ConfigError(f"extra loss name {name!r} is used twice (built-in terms: {', '.join(BUILT_IN_TERMS)})")
        if not isinstance(module, nn.Module):
            raise ConfigError(f"extra loss {name!r} must be an nn.Module, got {type(module).__name__}")
        seen.add(name)
        checked.append((name, module, weight))
    return checked


def _check_weight_value(name: str, weight: object) -> None:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise ConfigError(f"loss weight {name!r} = {weight!r} must be a number")
    if not math.isfinite(weight) or weight < 0:
        raise ConfigError(f"loss weight {name!r} = {weight!r} must be a finite number >= 0")
