"""Which job settings exist, from the config's own dataclasses: the JSON schema of ``settings`` in the
OpenAPI document, and the type check a submit makes before the config's own checks (so a string where
the config wants a number is refused, as the schema says, although ``--set`` would parse it)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, get_type_hints

from shotfit.config import Config
from shotfit.errors import ConfigError
from shotfit.service.sweepjob import DIMENSION_KEY, dimension_schema, sweep_fields

# Request fields a job may set beside the config's keys (used by the job kinds that know them).
REQUEST_FIELDS: dict[str, dict[str, Any]] = {
    "render.frames": {"anyOf": [{"type": "string", "minLength": 1},
                                {"type": "array", "items": {"type": "integer"}, "minItems": 1}],
                      "description": "frames to render: '1001-1100', '1001-1100x2', or a list"},
    "render.review": {"type": "boolean", "description": "also write review.mp4 (default true)"},
    "render.evaluate": {"type": "boolean", "description": "score against the truth frames, if any (default true)"},
    "render.workers": {"type": "integer", "minimum": 1, "maximum": 256,
                       "description": "Ray workers sharing the frames (default 1)"},
    "export.format": {"enum": ["onnx", "torchscript"], "description": "default onnx"},
    "export.tolerance": {"type": "number", "minimum": 0, "description": "default 1e-4"},
    "suggest.count": {"type": "integer", "minimum": 1, "maximum": 10000,
                      "description": "frames to suggest (needed before painting; after a run, default: rank all)"},
    "suggest.strategy": {"enum": ["cover", "farthest"], "description": "before painting: lowest mean (cover, "
                                                                       "default) or largest (farthest) distance"},
    "suggest.sheet_frames": {"type": "integer", "minimum": 1, "maximum": 50,
                             "description": "after a run: rows of the heat-map contact sheet (default 6)"},
    **sweep_fields(),
}
# Keys that would make the server import code or read its own files: never settable through the service.
REFUSED = ("loss.extra",)
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}
MODEL_KEY = r"^model\.[A-Za-z_][A-Za-z0-9_]*$"


def _field_schema(hint: Any, meta: Mapping[str, Any]) -> dict[str, Any] | None:
    if hint == int | None:
        schema: dict[str, Any] = {"type": ["integer", "null"]}
    elif hint == tuple[int, ...]:
        return {"type": "array", "items": {"type": "integer"}}
    elif hint in _JSON_TYPES:
        schema = {"type": _JSON_TYPES[hint]}
    else:
        return None  # loss.extra and the like: not settable here
    if meta.get("choices"):
        schema = {"enum": list(meta["choices"])}
    if meta.get("low") is not None:
        schema["minimum"] = meta["low"]
    if meta.get("high") is not None:
        schema["maximum"] = meta["high"]
    if meta.get("doc"):
        schema["description"] = meta["doc"]
    return schema


def config_settings() -> dict[str, dict[str, Any]]:
    """Every settable ``section.key`` of the config (but ``model.*``, free) with its JSON schema."""
    found: dict[str, dict[str, Any]] = {}
    for section, cls in get_type_hints(Config).items():
        if section == "model":
            continue
        hints = get_type_hints(cls)
        for field in dataclasses.fields(cls):
            key = f"{section}.{field.name}"
            schema = _field_schema(hints[field.name], field.metadata)
            if schema is not None and key not in REFUSED:
                found[key] = schema
    # checks the config makes beyond a field's own range
    found["render.tile"] = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 0},
                                      {"type": "integer", "minimum": 32}],
                            "description": found["render.tile"].get("description", "")}
    found["model.arch"] = {"type": "string", "minLength": 1, "description": "the network's registered name"}
    found["colour.config"] = {"type": "string", "pattern": "^(auto|ocio://.+)$",
                              "description": "a built-in OCIO config (ocio://...) or auto"}
    return found


def settings_json_schema() -> dict[str, Any]:
    return {"type": "object", "title": "Settings", "additionalProperties": False,
            "properties": {**config_settings(), **REQUEST_FIELDS},
            "patternProperties": {MODEL_KEY: {"type": ["string", "integer", "number", "boolean"]},
                                  DIMENSION_KEY: dimension_schema()},
            "description": 'config overrides ("section.key": value, as --set takes them) and request fields'}


def check_types(settings: Mapping[str, Any]) -> None:
    """Each setting known, and of its schema's JSON type (the config then checks ranges and choices)."""
    known = {**config_settings(), **REQUEST_FIELDS}
    for key, value in settings.items():
        if key.startswith("model.") and len(key) > 6:
            if not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"setting {key!r} must be a string, number or boolean", parameter="settings")
            continue
        if re.match(DIMENSION_KEY, key):
            if not _matches(dimension_schema(), value):
                raise ConfigError(f"setting {key!r} must be a list of values", parameter="settings")
            continue
        if key not in known:
            why = "loss plug-ins run code and cannot be set through the service" if key.startswith("loss.extra") \
                else "unknown setting"
            raise ConfigError(f"setting {key!r}: {why}", parameter="settings")
        if not _matches(known[key], value):
            raise ConfigError(f"setting {key!r} = {value!r} has the wrong type for it, or is out of its range",
                              parameter="settings")


def _matches(schema: Mapping[str, Any], value: Any) -> bool:
    if "anyOf" in schema:
        return any(_matches(option, value) for option in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    for kind in kinds:
        if kind == "null" and value is None or kind == "boolean" and isinstance(value, bool):
            return True
        if isinstance(value, bool):
            continue
        if kind in ("integer", "number") and isinstance(value, int if kind == "integer" else (int, float)):
            return schema.get("minimum", value) <= value <= schema.get("maximum", value)
        if kind == "string" and isinstance(value, str):
            return True
        if kind == "array" and isinstance(value, list):
            return len(value) >= schema.get("minItems", 0) and all(_matches(schema["items"], item) for item in value)
    return False
