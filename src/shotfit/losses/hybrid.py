"""The training loss: the registered terms (L1, MSE, LPIPS, Laplacian pyramid, SSIM, temporal) and studio terms,
by weight."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Sequence

import torch
from torch import nn

from shotfit.config import LossConfig
from shotfit.errors import ConfigError
from shotfit.losses._common import check_pair, check_weight
from shotfit.losses.embedding import embedding_terms
from shotfit.losses.registry import FRAME_PAIRS, LOSS_TERMS, TOTAL
from shotfit.losses.temporal import PairOutputs

_NAME = re.compile(r"[A-Za-z0-9_\-]+")


class HybridLoss(nn.Module):
    """``Σ weight·term`` over the config's registered terms, then ``Σ weight·extra``, on [-1, 1] images.

    With the built-in terms that is ``l1·L1 + mse·MSE + lpips·LPIPS + laplacian·LapPyr + ssim·(1 - SSIM)``,
    summed in the order :meth:`LossConfig.term_weights` gives (the order the weights are declared). A term
    whose weight is 0 is never built nor evaluated (a zero LPIPS weight never loads the network) and is
    absent from the returned values. Terms on frame pairs (``temporal``, registered with
    ``inputs="frame_pairs"``) come last, and only in a call given ``frame_pairs``.

    Args:
        cfg: the loss config: one weight per registered term (``cfg.term_weights()``), the options the
            terms read (``laplacian_levels``), and the studio embedding terms (``extra``), which follow the
            registered terms in the sum.
        extra: ``(name, module, weight)`` triples of further terms, after the config's, each called as
            ``module(pred, target)`` and returning a scalar, e.g. ``("age", EmbeddingLoss(...), 0.1)``.
            Names (these and the config's extra names) are letters, digits, ``_`` or ``-`` and must not
            repeat a registered term's name nor be ``total``.
        plugins: the ``cfg.extra`` network specs allowed to be imported (they run code); a weighted
            term naming another is refused. The caller decides: only what the user named for this run.

    Raises:
        ConfigError: a weight is negative or not finite, every weight is 0 (or only frame-pair terms are
            weighted: they teach no edit), a weight names no registered term, an extra name is invalid or
            repeated, or an extra network is not in ``plugins``.

    Shape:
        - pred, target: (B, C, H, W) in [-1, 1], C = 1 or 3; H, W >= 21 when LPIPS is on.
        - weight: optional (B or 1, 1, H, W) non-negative map (artist masks). It weights every registered
          term that takes one (all the built-in ones: L1, MSE, LPIPS's spatial map, the Laplacian bands,
          the SSIM map); extra terms are not spatially weighted.
        - frame_pairs: optional :class:`~shotfit.losses.temporal.PairOutputs`, the outputs on patches of
          consecutive frames and the source's flow between them, for the frame-pair terms.
        - Output: ``(total, values)``: the weighted total (scalar, with gradient) and each active term's
          unweighted value, detached, keyed by the term's config name (``l1``, ``mse``, ``lpips``,
          ``laplacian``, ``ssim``, ``temporal``) and the extra names. Trackers log them as ``loss/<name>``
          beside ``loss/total``.

    Example:
        >>> cfg = LossConfig(l1=1.0, lpips=0.0, laplacian=1.0, ssim=0.0)
        >>> total, values = HybridLoss(cfg)(torch.zeros(1, 3, 32, 32), torch.full((1, 3, 32, 32), 0.5))
        >>> sorted(values)
        ['l1', 'laplacian']
    """

    def __init__(self, cfg: LossConfig, extra: Sequence[tuple[str, nn.Module, float]] = (),
                 plugins: Collection[str] = frozenset()) -> None:
        super().__init__()
        weights = dict(cfg.term_weights())
        # a weight without a registered term is a ConfigError naming the known ones
        registered = {name: LOSS_TERMS.get(name) for name in weights}
        extras = _checked_extras([*embedding_terms(cfg.extra, plugins), *extra])
        for name, _, weight in extras:
            weights[name] = weight
        for name, weight in weights.items():
            _check_weight_value(name, weight)
        if not any(float(w) > 0 for w in weights.values()):
            raise ConfigError(f"every loss weight is 0 ({', '.join(weights)}); give at least one a positive weight")

        extra_modules = {name: module for name, module, _ in extras}
        active = [name for name, w in weights.items() if float(w) > 0]
        on_pairs = [name for name in active if name in registered and registered[name].inputs == FRAME_PAIRS]
        if len(on_pairs) == len(active):
            raise ConfigError(f"only {', '.join(on_pairs)} is weighted, which compares frames with each other and "
                              "teaches no edit; give a keyframe term (l1, ...) a positive weight too")
        self.pair_term_names: tuple[str, ...] = tuple(on_pairs)
        self.pair_term_weights: tuple[float, ...] = tuple(float(weights[name]) for name in on_pairs)
        self.pair_terms = nn.ModuleList(registered[name].build(cfg) for name in on_pairs)
        self.term_names: tuple[str, ...] = tuple(name for name in active if name not in on_pairs)
        self.term_weights: tuple[float, ...] = tuple(float(weights[name]) for name in self.term_names)
        # Extra terms are called without the map; a registered term says whether it takes one.
        self.term_takes_map: tuple[bool, ...] = tuple(
            name in registered and registered[name].weight_map for name in self.term_names)
        # A ModuleList rather than a ModuleDict: studio names like "train" would clash with attributes.
        self.terms = nn.ModuleList(
            registered[name].build(cfg) if name in registered else extra_modules[name] for name in self.term_names)

    @property
    def needs_frame_pairs(self) -> bool:
        """Whether a term compares consecutive frames (the trainer then draws frame pairs for it)."""
        return bool(self.pair_term_names)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={weight:g}" for name, weight in zip(
            (*self.term_names, *self.pair_term_names), (*self.term_weights, *self.pair_term_weights)))

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
        frame_pairs: PairOutputs | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and each term's unweighted, detached value (see the class docstring)."""
        check_pair(pred, target, "HybridLoss")
        check_weight(weight, pred, "HybridLoss")
        total = pred.new_zeros(())
        values: dict[str, torch.Tensor] = {}
        for name, term_weight, module, takes_map in zip(self.term_names, self.term_weights, self.terms,
                                                        self.term_takes_map):
            value = module(pred, target, weight) if takes_map else module(pred, target)
            total = total + term_weight * _scalar(name, value)
            values[name] = value.detach()
        if frame_pairs is not None:
            for name, term_weight, module in zip(self.pair_term_names, self.pair_term_weights, self.pair_terms):
                value = module(frame_pairs)
                total = total + term_weight * _scalar(name, value)
                values[name] = value.detach()
        return total, values


def _scalar(name: str, value: object) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"loss term {name!r} must return a scalar tensor, got {shape}")
    return value


def _checked_extras(extra: Sequence[tuple[str, nn.Module, float]]) -> list[tuple[str, nn.Module, float]]:
    seen: set[str] = set()
    checked = []
    for item in extra:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise ConfigError(f"extra loss {item!r} must be a (name, module, weight) triple")
        name, module, weight = item
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"extra loss name {name!r} must be letters, digits, '_' or '-'")
        if name in LOSS_TERMS or name == TOTAL or name in seen:
            raise ConfigError(f"extra loss name {name!r} is used twice (registered terms: "
                              f"{', '.join(LOSS_TERMS.available())}; {TOTAL!r} is the weighted sum)")
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
