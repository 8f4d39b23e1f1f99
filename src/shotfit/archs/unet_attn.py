"""U-Net with additive attention gates on its skip connections (Oktay et al. 2018), sized for few-shot edits."""

from __future__ import annotations

from shotfit.archs.registry import ARCHS
from shotfit.archs.unet_base import UNetBase


@ARCHS.register("unet_attn")
class UNetAttn(UNetBase):
    """Attention U-Net, shotfit's default: each skip passes through an additive attention gate.

    The coarser decoder features decide, per pixel, how much of the encoder's detail reaches the
    output, so an edit confined to a face leaves the background's detail alone. Options, shapes and
    the residual output are those of :class:`~shotfit.archs.unet_base.UNetBase`.

    Example:
        >>> import torch
        >>> UNetAttn(width=8, depth=2)(torch.zeros(1, 3, 37, 53)).shape
        torch.Size([1, 3, 37, 53])
    """

    arch_name = "unet_attn"
    gated = True
