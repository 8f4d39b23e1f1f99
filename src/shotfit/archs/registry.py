"""The registry of networks: look one up by name, resolve its constructor arguments, build it.

The architecture modules register themselves here on import; :mod:`shotfit.archs` imports them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from shotfit.archs.base import Network
from shotfit.errors import ConfigError
from shotfit.registry import Registry

ARCHS: Registry[type[Network]] = Registry("architecture")

#: The most parameters a network may have: a hundred times shotfit's default networks and ten times any
#: published restoration network, yet 4 GB of float32 weights that training holds four times over
#: (gradients and AdamW's two moments). Each option has its own bound; this one catches the options
#: that multiply (a width at its bound times the deepest levels).
MAX_PARAMETERS = 1_000_000_000

# The options that make a network large, named in the message when it is too large.
_SIZE_OPTIONS = ("width", "max_width", "embed_dim", "depth", "depths", "enc_blocks", "middle_blocks", "dec_blocks",
                 "expansion", "mlp_ratio", "expand", "d_state")


def resolve_network_args(arch: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """The complete constructor keyword arguments for ``arch``: its signature's defaults, overridden by ``args``.

    The result names every argument, so saved beside a checkpoint it rebuilds the exact model even
    if a later shotfit changes a default. Values are passed through as given (``None`` included);
    dropping unset options is the caller's job.

    Raises:
        ConfigError: ``arch`` is not registered, or ``args`` names an argument the constructor lacks.
    """
    cls = ARCHS.get(arch)
    params = {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    known = ", ".join(sorted(params))
    for name in args:
        if name not in params:
            raise ConfigError(f"unknown option {name!r} for architecture {arch!r} (known: {known})")
    resolved = {name: p.default for name, p in params.items() if p.default is not p.empty}
    resolved.update(args)
    missing = sorted(name for name in params if name not in resolved)
    if missing:
        raise ConfigError(f"architecture {arch!r} needs option(s) {', '.join(missing)}")
    return resolved


def build_network(arch: str, **kwargs: Any) -> Network:
    """Build the architecture registered as ``arch`` with the given constructor options.

    Raises:
        ConfigError: unknown architecture, unknown option, an option value out of range, or options that
            together make more than :data:`MAX_PARAMETERS` parameters (said before any memory is taken).
    """
    cls = ARCHS.get(arch)
    args = resolve_network_args(arch, kwargs)
    _check_size(arch, cls, args)
    return cls(**args)


def _check_size(arch: str, cls: type[Network], args: dict[str, Any]) -> None:
    """Refuse a network of more than MAX_PARAMETERS parameters, counted on the meta device (shapes only: no
    memory is taken and no random number drawn, so the real build that follows gives the same weights)."""
    with torch.device("meta"):
        count = count_parameters(cls(**args))
    if count > MAX_PARAMETERS:
        options = ", ".join(f"{name}={args[name]}" for name in _SIZE_OPTIONS if name in args)
        raise ConfigError(f"architecture {arch!r}: these options make a network of {count / 1e6:,.0f}M parameters, "
                          f"more than the {MAX_PARAMETERS / 1e6:,.0f}M shotfit builds: lower some of {options}")


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``net`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
