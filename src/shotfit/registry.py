"""A small typed registry: things looked up by a stable lowercase name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from shotfit.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes or factories) of one kind.

    Example:
        >>> ARCHS = Registry("architecture")
        >>> @ARCHS.register("unet_attn")
        ... class UNetAttn: ...
        >>> ARCHS.get("unet_attn") is UNetAttn
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        if name != name.lower() or not name:
            raise ValueError(f"{self.kind} names are lowercase and non-empty, got {name!r}")

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.available()) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def available(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.available())
