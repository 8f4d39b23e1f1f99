"""Inputs the architecture tests share: reproducible frames, and networks moved off their initial weights.

Imported by name (``from arch_inputs import TINY, frames, perturbed``): the tests folder is on sys.path.
"""

from __future__ import annotations

import torch
from torch import nn

# Every architecture's smallest options that still exercise every part of it (the architecture and
# export tests share them).
TINY = {
    "convnext_unet": {"width": 4, "depths": [1, 1, 1]},
    "mambair": {"embed_dim": 8, "depths": [1, 1], "d_state": 2, "expand": 1.0, "squeeze_factor": 4},
    "nafnet": {"width": 4, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1], "pool_window": 16},
    "swinir": {"embed_dim": 6, "depths": [2, 2], "num_heads": [2, 3], "window_size": 4},
    "unet": {"width": 4, "depth": 3},
    "unet_attn": {"width": 4, "depth": 3},
}


def perturbed(net: nn.Module, scale: float = 0.2) -> nn.Module:
    """Move every parameter off its initial value, so zero-initialised layers pass gradients on."""
    with torch.no_grad():
        for param in net.parameters():
            param.add_(scale * torch.randn_like(param))
    return net


def frames(*shape: int) -> torch.Tensor:
    """Uniform values in [-1, 1] of ``shape``, the same on every call."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
