"""Network architectures, one per file, looked up by name.

Importing this package registers every architecture; each is a :class:`Network` (see
:mod:`shotfit.archs.base`), which declares its tiling. Build one with :func:`build_network`; save
:func:`resolve_network_args`'s result beside the weights so a checkpoint can rebuild its own model.

Example:
    >>> from shotfit.archs import ARCHS, build_network
    >>> "unet_attn" in ARCHS
    True
    >>> net = build_network("unet_attn", width=8, depth=2)
"""

from __future__ import annotations

# Registration happens on import; listed by hand rather than found by scanning the folder.
from shotfit.archs import convnext_unet, mambair, nafnet, swinir, unet, unet_attn  # noqa: F401
from shotfit.archs.base import DeclaresTiling, Network
from shotfit.archs.registry import (
    ARCHS,
    build_network,
    count_parameters,
    resolve_network_args,
)

__all__ = ["ARCHS", "DeclaresTiling", "Network", "build_network", "count_parameters", "resolve_network_args"]
