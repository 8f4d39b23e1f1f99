"""Config settings as typed values (``{"loss.lpips": 0.2}``): reading them from sweep files and records.

A sweep's trial settings come from Tune's samplers as numbers and strings; they go into the config
through the config's own checks (:func:`shotfit.config.apply_values`), never through text. Text
appears only in a trial's record (``key=value``, as ``--set`` reads it) for people to read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from shotfit.errors import ConfigError


def plain(value: Any) -> Any:
    """A numpy scalar (Tune's samplers return them) as the Python number it holds; anything else as is."""
    return value.item() if hasattr(value, "item") else value


def given_keys(data: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The dotted keys a config mapping (a config file as read from YAML) sets: ``{"loss": {"l1": 2}}``
    -> ``("loss.l1",)``; in the file's order."""
    return tuple(f"{section}.{key}" for section, values in (data or {}).items()
                 if isinstance(values, Mapping) for key in values)


def config_file_keys(path: Path) -> tuple[str, ...]:
    """The dotted keys a config file sets (read after :func:`shotfit.config.load_config` accepted it)."""
    return given_keys(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def setting_text(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` reads it back (JSON is YAML): for records and tables, not for code."""
    return f"{key}={json.dumps(plain(value))}"


def settings_text(values: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(setting_text(k, v) for k, v in sorted(values.items()))


def read_settings(items: Iterable[str]) -> dict[str, Any]:
    """``["loss.l1=1"]`` (a sweep file's ``set:`` list) -> ``{"loss.l1": 1}``, each value read as YAML, as
    ``--set`` reads it; read once, when the sweep file is loaded."""
    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or len(key.strip().split(".")) != 2 or not all(key.strip().split(".")):
            raise ConfigError(f"{item!r} must look like section.key=value (e.g. train.lr=3e-4)")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{item!r}: cannot parse the value {raw!r}") from None
    return values
