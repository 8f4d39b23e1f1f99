"""Losses: one per file (a function plus a thin ``nn.Module``); :class:`HybridLoss` composes them by weight.

Every loss takes shotfit's network tensors, float (B, C, H, W) in [-1, 1], and where it can, an optional
(B, 1, H, W) non-negative weight map that steers it towards an artist's painted region.
"""

from shotfit.losses.build import build_loss
from shotfit.losses.embedding import DISTANCES, EmbeddingLoss, embedding_distance, load_embedding_network
from shotfit.losses.hybrid import BUILT_IN_TERMS, HybridLoss
from shotfit.losses.laplacian import LaplacianLoss, laplacian_loss, laplacian_pyramid
from shotfit.losses.lpips import LPIPS, load_lpips, lpips_weights_path
from shotfit.losses.pixel import L1Loss, MSELoss, l1_loss, mse_loss
from shotfit.losses.ssim import SSIMLoss, ssim_loss

__all__ = [
    "BUILT_IN_TERMS",
    "DISTANCES",
    "LPIPS",
    "EmbeddingLoss",
    "HybridLoss",
    "L1Loss",
    "LaplacianLoss",
    "MSELoss",
    "SSIMLoss",
    "build_loss",
    "embedding_distance",
    "l1_loss",
    "laplacian_loss",
    "laplacian_pyramid",
    "load_embedding_network",
    "load_lpips",
    "lpips_weights_path",
    "mse_loss",
    "ssim_loss",
]
