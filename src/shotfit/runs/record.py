"""run.json as a typed record: what a run was trained on, checked field by field where it is read.

A run.json with a wrong type (``"channels": "three"``) or a list at the top is a one-line
:class:`~shotfit.errors.RunError` naming the file and the field. Files written by earlier versions
read unchanged: fields they lack take the defaults below, and keys this version does not know are
kept (``extra``) and written back as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shotfit.errors import RunError

# The keys that say how colour was handled; "transfer" is what runs made before OCIO hold instead of "colour".
COLOUR_KEYS = ("colour", "transfer", "format")


@dataclass(frozen=True)
class RunInfo:
    """What one training run learnt from, as its run.json records it.

    Attributes:
        source, keyframes: The shot and the fixed keyframes, as given to train.
        masks: The mask sequence, ``"alpha"``, or None.
        keyframe_frames: The keyframes trained on; ``validation_frames`` those held out.
        frame_size: (height, width) of the shot's frames.
        channels: Channels the network sees (1 or 3).
        colour: The resolved colour settings (:class:`shotfit.io.ColourSettings` as a mapping).
        format: The shot's pixel format (:class:`shotfit.io.PixelFormat` as a mapping).
        tracking: Ids of the tracked run (``mlflow_run_id``...); empty when untracked.
        transfer: Runs made before colour management: ``"none"`` or ``"acescct"``.
        shotfit: The version that wrote the file (None when it does not say).
        extra: Keys this version does not know, kept as read.
    """

    source: str
    keyframes: str
    masks: str | None = None
    keyframe_frames: tuple[int, ...] = ()
    validation_frames: tuple[int, ...] = ()
    frame_size: tuple[int, ...] | None = None
    channels: int | None = None
    colour: Mapping[str, Any] | None = None
    format: Mapping[str, Any] | None = None
    tracking: Mapping[str, str] = field(default_factory=dict)
    transfer: str | None = None
    shotfit: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("colour", "format"):
            if (value := getattr(self, name)) is not None:
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        object.__setattr__(self, "tracking", MappingProxyType(dict(self.tracking)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def mlflow_run_id(self) -> str | None:
        """The MLflow run this run logs into (a resume goes on logging there), or None."""
        return self.tracking.get("mlflow_run_id") or None

    @property
    def dtype(self) -> str | None:
        """The sample type of the frames it was trained on (``"uint8"``, ``"half"``...), if recorded."""
        return None if self.format is None else self.format.get("dtype")

    def colour_record(self) -> dict[str, Any]:
        """How colour was handled, as run.json holds it (``colour``/``transfer`` and ``format``)."""
        values = {"colour": self.colour, "transfer": self.transfer, "format": self.format}
        return {key: _plain(values[key]) for key in COLOUR_KEYS if values[key] is not None}

    def to_dict(self, version: str) -> dict[str, Any]:
        """The JSON object run.json holds, stamped with the writing ``version``, in the order it always had."""
        out: dict[str, Any] = {
            "shotfit": version, "source": self.source, "keyframes": self.keyframes, "masks": self.masks,
            "keyframe_frames": list(self.keyframe_frames), "validation_frames": list(self.validation_frames)}
        if self.frame_size is not None:
            out["frame_size"] = list(self.frame_size)
        if self.channels is not None:
            out["channels"] = self.channels
        out.update(self.colour_record())
        out["tracking"] = dict(self.tracking)
        out.update({key: value for key, value in self.extra.items() if key not in out})
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RunInfo:
        """Check and build the record from a parsed run.json; ``where`` names the file in errors."""
        if not isinstance(data, Mapping):
            raise RunError(f"{where} must hold a JSON object, not {type(data).__name__}")
        read = _Reader(data, where)
        frame_size = read.ints("frame_size", None)
        return cls(
            source=read.text("source"), keyframes=read.text("keyframes"),
            masks=read.text("masks", None), keyframe_frames=read.ints("keyframe_frames", ()),
            validation_frames=read.ints("validation_frames", ()),
            frame_size=frame_size,
            channels=read.integer("channels"), colour=read.mapping("colour"), format=read.mapping("format"),
            tracking=read.mapping("tracking") or {}, transfer=read.text("transfer", None),
            shotfit=read.text("shotfit", None),
            extra={key: value for key, value in data.items() if key not in _KNOWN})


_KNOWN = {"source", "keyframes", "masks", "keyframe_frames", "validation_frames", "frame_size", "channels",
          "colour", "format", "tracking", "transfer", "shotfit"}
_REQUIRED = object()


class _Reader:
    """Typed reads of one run.json's fields, each failing as one line that names the file and the field."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data, self.where = data, where

    def _get(self, key: str, default: Any) -> Any:
        if key not in self.data:
            if default is _REQUIRED:
                raise RunError(f"{self.where} lacks the field '{key}'")
            return default
        return self.data[key]

    def _wrong(self, key: str, what: str) -> RunError:
        return RunError(f"{self.where}: field '{key}' must be {what}, not {self.data[key]!r}")

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def integer(self, key: str) -> int | None:
        value = self._get(key, None)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self._wrong(key, "an integer")
        return value

    def ints(self, key: str, default: Any) -> Any:
        value = self._get(key, default)
        if value is default:
            return default
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self._wrong(key, "a list of integers")
        return tuple(value)

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self._get(key, None)
        if value is not None and not isinstance(value, Mapping):
            raise self._wrong(key, "a JSON object")
        return value


def _plain(value: Any) -> Any:
    """A read-only mapping back to a dict, for JSON and for callers that expect one."""
    return dict(value) if isinstance(value, Mapping) else value
