"""The loss a config asks for: its registered terms by weight, and a studio's embedding-network terms."""

from __future__ import annotations

from shotfit.config import LossConfig
from shotfit.losses.hybrid import HybridLoss


def build_loss(cfg: LossConfig) -> HybridLoss:
    """The hybrid loss of the config: only the terms weighted above 0 are built (or imported, for embeddings)."""
    return HybridLoss(cfg)
