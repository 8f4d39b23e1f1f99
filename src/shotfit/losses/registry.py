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
#: What a term compares (:attr:`LossTerm.inputs`): an output with its keyframe's target, or the outputs of
#: two consecutive frames of the shot with each other (:class:`~shotfit.losses.temporal.PairOutputs`).
KEYFRAMES, FRAME_PAIRS = "keyframes", "frame_pairs"
TERM_INPUTS = (KEYFRAMES, FRAME_PAIRS)

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
        inputs: ``"keyframes"``: called on the keyframe batch as above; ``"frame_pairs"``: called as
            ``module(pairs)`` with the outputs of consecutive frames of the shot and the source's flow
            between them (:class:`~shotfit.losses.temporal.PairOutputs`), only when the trainer draws them.
    """

    name: str
    build: TermBuilder
    weight_map: bool = True
    inputs: str = KEYFRAMES


LOSS_TERMS: Registry[LossTerm] = Registry("loss term")


def register_loss_term(name: str, *, weight_map: bool = True, inputs: str = KEYFRAMES
                       ) -> Callable[[TermBuilder], TermBuilder]:
    """Register the decorated ``build(cfg) -> nn.Module`` as the loss term ``name``.

    The module it builds takes (B, C, H, W) ``pred`` and ``target`` in [-1, 1] (and, with ``weight_map``,
    the weight map) and returns a scalar tensor >= 0.

    A term with ``inputs="frame_pairs"`` compares the outputs of consecutive frames instead (see
    :class:`LossTerm`).

    Raises:
        ValueError: ``name`` is not a lowercase identifier (it is a config field), is ``"total"``, or is
            registered already; ``inputs`` is not one of :data:`TERM_INPUTS`.

    Example:
        >>> @register_loss_term("l1")  # doctest: +SKIP
        ... def build_l1(cfg: LossConfig) -> nn.Module:
        ...     return L1Loss()
    """
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"loss term names are lowercase identifiers (config fields), got {name!r}")
    if name == TOTAL:
        raise ValueError(f"loss term name {TOTAL!r} is the weighted sum's key")
    if inputs not in TERM_INPUTS:
        raise ValueError(f"loss term inputs must be one of {', '.join(TERM_INPUTS)}, got {inputs!r}")

    def add(build: TermBuilder) -> TermBuilder:
        LOSS_TERMS.register(name)(LossTerm(name, build, weight_map, inputs))
        return build

    return add
