"""The loss a config asks for: the hybrid loss with its weights, and a studio's embedding-network terms."""

from __future__ import annotations

from shotfit.config import LossConfig
from shotfit.losses.embedding import EmbeddingLoss, load_embedding_network
from shotfit.losses.hybrid import HybridLoss


def build_loss(cfg: LossConfig) -> HybridLoss:
    """The hybrid loss of the config, with a studio's embedding-network terms added."""
    extra = []
    for term in cfg.extra:
        if term.weight > 0:
            name = term.name or term.network.rpartition(":")[2]
            extra.append((name, EmbeddingLoss(load_embedding_network(term.network), term.distance), term.weight))
    return HybridLoss(l1=cfg.l1, mse=cfg.mse, lpips=cfg.lpips, laplacian=cfg.laplacian, ssim=cfg.ssim,
                      laplacian_levels=cfg.laplacian_levels, extra=extra)
