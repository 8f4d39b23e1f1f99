"""The registry of loss terms: each term's name, how it is built from the loss config, and how it is called.

A term module registers itself on import (:mod:`shotfit.losses` imports them all); its name is the
name of its weight in :class:`~shotfit.config.LossConfig` and the name it is logged under
(``loss/<name>``), so one name follows a term from the YAML file to the charts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from shotfit.config import LossConfig
from shotfit.registry import Registry

#: The key of the weighted sum beside the terms' values (``loss/total``): no term may take it.
TOTAL = "total"

TermBuilder = Callable[[LossConfig], nn.Module]


@dataclass(frozen=True)
class LossTerm:
    """How :class:`~shotfit.losses.HybridLoss` builds and calls one registered term.

    Attributes:
        name: the term's registered name, which is also its weight's field in the loss config.
        build: ``build(cfg) -> module``, called only when the term's weight is above 0; it reads the
            term's own options from the config (``laplacian_levels``).
        weight_map: True if the module is called as ``module(pred, target, weight)`` with the artist's
            (B or 1, 1, H, W) map (or None); False if as ``module(pred, target)``, ignoring the map.
    """

    name: str
    build: TermBuilder
    weight_map: bool = True


LOSS_TERMS: Registry[LossTerm] = Registry("loss term")


def register_loss_term(name: str, *, weight_map: bool = True) -> Callable[[TermBuilder], TermBuilder]:
    """Register the decorated ``build(cfg) -> nn.Module`` as the loss term ``name``.

    The module it builds takes (B, C, H, W) ``pred`` and ``target`` in [-1, 1] (and, with ``weight_map``,
    the weight map) and returns a scalar tensor >= 0.

    Raises:
        ValueError: ``name`` is not a lowercase identifier (it is a config field), is ``"total"``, or is
            registered already.

    Example:
        >>> @register_loss_term("l1")  # doctest: +SKIP
        ... def build_l1(cfg: LossConfig) -> nn.Module:
        ...     return L1Loss()
    """
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"loss term names are lowercase identifiers (config fields), got {name!r}")
    if name == TOTAL:
        raise ValueError(f"loss term name {TOTAL!r} is the weighted sum's key")

    def add(build: TermBuilder) -> TermBuilder:
        LOSS_TERMS.register(name)(LossTerm(name, build, weight_map))
        return build

    return add
