"""The plain U-Net: ``unet_attn`` without its attention gates, the ablation that shows what the gates buy."""

from __future__ import annotations

from shotfit.archs.registry import ARCHS
from shotfit.archs.unet_base import UNetBase


@ARCHS.register("unet")
class UNet(UNetBase):
    """U-Net (Ronneberger et al. 2015) with BatchNorm, no dropout and a tanh output.

    Identical to ``unet_attn`` (same options, layers and residual output) except that each skip
    connection passes its features straight to the decoder instead of through an attention gate, so
    comparing the two on a shot measures the gates alone.

    Example:
        >>> import torch
        >>> UNet(width=8, depth=2)(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = "unet"
    gated = False
