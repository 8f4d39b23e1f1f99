"""The registry of networks: look one up by name, resolve its constructor arguments, build it.

The architecture modules register themselves here on import; :mod:`shotfit.archs` imports them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from shotfit.archs.base import Network
from shotfit.errors import ConfigError
from shotfit.registry import Registry

ARCHS: Registry[type[Network]] = Registry("architecture")


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
        ConfigError: unknown architecture, unknown option, or an option value out of range.
    """
    return ARCHS.get(arch)(**resolve_network_args(arch, kwargs))


def count_parameters(net: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``net`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)
