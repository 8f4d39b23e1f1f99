"""The sweep files shotfit ships (``src/shotfit/search/sweeps/*.yaml``, package data), by name only.

``shotfit sweep temporal`` runs the built-in ``temporal.yaml``; a service's sweep job names one as
``sweep.preset``. A name is looked up among these files and nothing else: never a path.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from shotfit.errors import ConfigError


def builtin_sweeps() -> dict[str, Path]:
    """The built-in sweep files by name (``loss_ablation``, ``temporal``)."""
    folder = resources.files("shotfit.search") / "sweeps"
    if not folder.is_dir():
        return {}
    found = [entry for entry in folder.iterdir() if entry.name.endswith(".yaml") and entry.is_file()]
    return {entry.name.removesuffix(".yaml"): Path(str(entry)) for entry in sorted(found, key=lambda e: e.name)}


def builtin_sweep(name: str) -> Path:
    """The built-in sweep file called ``name``.

    Raises:
        ConfigError: no built-in sweep has that name (the message lists them).
    """
    found = builtin_sweeps()
    if name not in found:
        raise ConfigError(f"{name!r} is not a built-in sweep (built-in: {', '.join(found) or 'none'})")
    return found[name]
