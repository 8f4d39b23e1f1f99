"""The loss a config asks for: its registered terms by weight, and a studio's embedding-network terms."""

from __future__ import annotations

from collections.abc import Collection

from shotfit.config import LossConfig
from shotfit.losses.hybrid import HybridLoss


def build_loss(cfg: LossConfig, plugins: Collection[str] = frozenset()) -> HybridLoss:
    """The hybrid loss of the config: only the terms weighted above 0 are built (or imported, for embeddings).

    ``plugins``: the ``loss.extra`` network specs the caller allows to run (default none); a weighted
    extra term naming another is a ConfigError, raised before anything is imported.
    """
    return HybridLoss(cfg, plugins=plugins)
