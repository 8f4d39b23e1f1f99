"""Feature-distance losses on studio-supplied embedding networks (age, identity, style predictors).

The contract for a studio network
---------------------------------
A config names the network as ``"package.module:callable"``. shotfit imports ``package.module``, calls
``callable()`` with no arguments, and expects an ``nn.Module`` back, already holding its weights.
That module is then:

- frozen (``requires_grad=False``) and kept in eval mode, even while the U-Net trains;
- called as ``network(images)`` with ``images`` a float tensor (B, 3, H, W), RGB, values in [0, 1],
  on the same device and dtype as the U-Net's output (greyscale shots are repeated to three channels);
  any resizing, cropping or normalisation it needs is its own business, done inside ``forward``;
- expected to return a tensor, or a tuple, list or dict of tensors (e.g. several feature levels).
  Each output is compared between prediction and target and the distances are summed.

Gradients flow through the network into the prediction, so its ``forward`` must be differentiable
(no ``.numpy()``, no ``torch.no_grad()``).

A spec is code to run, so :func:`embedding_terms` imports only the specs its caller allows: those the
user named for this run (the workflow decides which: never one that only a run folder's saved config
names). Whatever the module or the callable raises, ``SystemExit`` and ``KeyboardInterrupt``
included, becomes one :class:`~shotfit.errors.ConfigError` line naming the spec.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shotfit.config import ExtraLossConfig
from shotfit.errors import ConfigError

logger = logging.getLogger(__name__)

DISTANCES = ("l1", "l2", "cosine")


def load_embedding_network(spec: str) -> nn.Module:
    """Import and build a studio embedding network from ``"package.module:callable"``.

    Args:
        spec: dotted module path and the name of a zero-argument callable in it, joined by ``:``.

    Returns:
        The ``nn.Module`` the callable returns (not yet frozen: :class:`EmbeddingLoss` does that).

    Raises:
        ConfigError: the spec is malformed, the module cannot be imported, the name is missing or
            not callable, the callable raises, or it returns something other than an ``nn.Module``.
    """
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise ConfigError(f"embedding network {spec!r} must be written 'package.module:callable'")
    module_name, attr_name = spec.split(":")
    if not _is_dotted_name(module_name) or not attr_name.isidentifier():
        raise ConfigError(f"embedding network {spec!r} must be written 'package.module:callable'")
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:  # a studio module may fail in any way while importing, sys.exit included
        raise ConfigError(f"embedding network {spec!r}: cannot import {module_name!r} "
                          f"({_describe_exception(exc)})") from None
    factory = getattr(module, attr_name, None)
    if factory is None:
        raise ConfigError(f"embedding network {spec!r}: module {module_name!r} has no attribute {attr_name!r}")
    if not callable(factory):
        raise ConfigError(f"embedding network {spec!r}: {attr_name!r} is a {type(factory).__name__}, "
                          "not a callable returning an nn.Module")
    try:
        network = factory()
    except BaseException as exc:  # studio code: any failure (SystemExit, KeyboardInterrupt too) is one line
        raise ConfigError(f"embedding network {spec!r}: calling {attr_name}() raised "
                          f"{_describe_exception(exc)}") from None
    if not isinstance(network, nn.Module):
        raise ConfigError(f"embedding network {spec!r}: {attr_name}() returned a {type(network).__name__}, "
                          "not a torch.nn.Module")
    logger.info("loaded embedding network %s (%s)", spec, type(network).__name__)
    return network


def embedding_distance(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """Batch-mean distance between two embeddings of the same shape.

    Args:
        a, b: (B, ...) embeddings; each sample is flattened to a vector.
        distance: ``"l1"`` mean absolute difference, ``"l2"`` mean squared difference (smooth at 0, unlike
            the Euclidean norm), ``"cosine"`` one minus cosine similarity (ignores the embedding's scale).

    Returns:
        Scalar >= 0 (<= 2 for cosine), 0 when ``a == b``.
    """
    if a.shape != b.shape:
        raise ValueError(f"embedding outputs differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    rows = a.shape[0] if a.dim() > 0 else 1
    a, b = a.reshape(rows, -1), b.reshape(rows, -1)
    if distance == "l1":
        return (a - b).abs().mean()
    if distance == "l2":
        return (a - b).pow(2).mean()
    if distance == "cosine":
        return (1.0 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()
    raise ConfigError(f"embedding distance {distance!r} is not one of {', '.join(DISTANCES)}")


class EmbeddingLoss(nn.Module):
    """Distance between a frozen embedding network's outputs for prediction and target.

    Args:
        network: an ``nn.Module`` following the contract in this module's docstring, or its
            ``"package.module:callable"`` spec (loaded with :func:`load_embedding_network`).
        distance: ``"l1"``, ``"l2"`` (mean squared) or ``"cosine"``; summed over the network's outputs.
        input_range: (low, high) value range of pred and target, (-1, 1) for shotfit network tensors;
            mapped to the network's [0, 1].

    Shape:
        - pred, target: (B, 1 or 3, H, W) in ``input_range``.
        - Output: scalar >= 0.

    Example:
        >>> loss = EmbeddingLoss("my_studio.age:age_features", distance="cosine")  # doctest: +SKIP
        >>> loss(pred, target)  # doctest: +SKIP
    """

    def __init__(self, network: nn.Module | str, distance: str = "l1",
                 input_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ConfigError(f"embedding distance {distance!r} is not one of {', '.join(DISTANCES)}")
        if isinstance(network, str):
            network = load_embedding_network(network)
        if not isinstance(network, nn.Module):
            raise ConfigError(f"embedding network must be an nn.Module, got {type(network).__name__}")
        self.network = network.requires_grad_(False).eval()
        self.distance = distance
        self.input_range = (float(input_range[0]), float(input_range[1]))

    def train(self, mode: bool = True) -> EmbeddingLoss:
        """Keep the embedding network in eval mode (frozen batch-norm statistics, no dropout)."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"distance={self.distance!r}, input_range={self.input_range}"

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() != 4 or pred.shape != target.shape or pred.shape[1] not in (1, 3):
            raise ValueError(f"EmbeddingLoss expects two (B, 1 or 3, H, W) tensors of one shape, got "
                             f"{tuple(pred.shape)} and {tuple(target.shape)}")
        pred_outputs = _flatten_outputs(self.network(self._to_network(pred)), self.network)
        # The target only sets the goal: no graph is needed through its pass.
        with torch.no_grad():
            target_outputs = _flatten_outputs(self.network(self._to_network(target)), self.network)
        if len(pred_outputs) != len(target_outputs):
            raise ConfigError(f"embedding network {type(self.network).__name__} returned a different number of "
                              f"outputs for prediction ({len(pred_outputs)}) and target ({len(target_outputs)})")
        return sum(embedding_distance(p, t, self.distance) for p, t in zip(pred_outputs, target_outputs))

    def _to_network(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.input_range
        x = (x - low) / (high - low)
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def embedding_terms(extra: Sequence[ExtraLossConfig], plugins: Collection[str] = frozenset()
                    ) -> list[tuple[str, EmbeddingLoss, float]]:
    """The ``(name, module, weight)`` terms of a config's ``loss.extra`` section, for :class:`HybridLoss`.

    A term weighted 0 is skipped before its network is imported. A term's name is its ``name``, or else
    the callable's name (``"my_studio.age:age_features"`` is logged as ``loss/age_features``).

    Args:
        extra: the config's ``loss.extra`` terms.
        plugins: the network specs the caller allows to be imported (code runs on import and on the
            call); a weighted term naming another is refused before anything is imported.

    Raises:
        ConfigError: a weighted term names a spec not in ``plugins``, or its network fails to load.
    """
    for term in extra:
        if term.weight > 0 and term.network not in plugins:
            allowed = ", ".join(repr(name) for name in sorted(plugins)) or "none"
            raise ConfigError(f"loss.extra names the plug-in {term.network!r}, which was not allowed to run "
                              f"(allowed: {allowed})")
    terms = []
    for term in extra:
        if term.weight > 0:
            name = term.name or term.network.rpartition(":")[2]
            terms.append((name, EmbeddingLoss(load_embedding_network(term.network), term.distance), term.weight))
    return terms


def _flatten_outputs(outputs: Any, network: nn.Module) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, Mapping):
        # Sorted keys so prediction and target pair the same outputs whatever the dict order.
        items = [outputs[key] for key in sorted(outputs, key=str)]
    elif isinstance(outputs, (tuple, list)):
        items = list(outputs)
    else:
        items = [outputs]
    if not items or not all(isinstance(item, torch.Tensor) for item in items):
        raise ConfigError(f"embedding network {type(network).__name__} must return a tensor or a tuple, list or "
                          f"dict of tensors, got {_describe(outputs)}")
    return items


def _describe(outputs: Any) -> str:
    if isinstance(outputs, (tuple, list, Mapping)):
        inner = outputs.values() if isinstance(outputs, Mapping) else outputs
        return f"a {type(outputs).__name__} of {', '.join(sorted({type(v).__name__ for v in inner})) or 'nothing'}"
    return f"a {type(outputs).__name__}"


def _is_dotted_name(name: str) -> bool:
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def _describe_exception(exc: BaseException) -> str:
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
