"""Inputs the architecture tests share: reproducible frames, and networks moved off their initial weights.

Imported by name (``from arch_inputs import TINY, frames, perturbed``): the tests folder is on sys.path.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from shotfit.archs import ARCHS


def tiny_options(arch: str) -> dict[str, Any]:
    """The smallest options that still exercise every part of ``arch``, as the network declares them
    (``tiny_options``); a copy, so a test cannot change them for the next."""
    return copy.deepcopy(ARCHS.get(arch).tiny_options)


# Every registered architecture's tiny options (the architecture, export and engine tests share them).
TINY = {arch: tiny_options(arch) for arch in ARCHS.available()}


def perturbed(net: nn.Module, scale: float = 0.2) -> nn.Module:
    """Move every parameter off its initial value, so zero-initialised layers pass gradients on."""
    with torch.no_grad():
        for param in net.parameters():
            param.add_(scale * torch.randn_like(param))
    return net


def frames(*shape: int) -> torch.Tensor:
    """Uniform values in [-1, 1] of ``shape``, the same on every call."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
