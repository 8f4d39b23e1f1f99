"""What an exported file says about itself, so a host knows what to feed it (no torch here).

ONNX files carry it as ``metadata_props`` (string keys and values, ``shotfit.*``); TorchScript files
as an extra file ``shotfit.json`` in the archive holding the same keys. Read an ONNX file's with
``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map`` and a TorchScript file's
with ``torch.jit.load(path, _extra_files={"shotfit.json": ""})``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.errors import RunError, quoted

TORCHSCRIPT_METADATA = "shotfit.json"
PREFIX = "shotfit."
INPUT_NAME = "image"
OUTPUT_NAME = "edited"
# What run.json records about colour ("transfer" in runs made before OCIO); copied as the run wrote it.
COLOUR_KEYS = ("colour", "transfer", "format")
# Where `shotfit export` puts the file in the run folder when given no --out (render looks there too).
DEFAULT_NAMES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
INPUT_TEXT = ("(B, {channels}, H, W) float32 in [0, 1], any H and W: the frame converted to the run's working "
              "colour space (shotfit.colour) and mapped to [0, 1]; RGB order for 3 channels")
OUTPUT_TEXT = "(B, {channels}, H, W) float32 in [0, 1]: the edited frame, in the same space as the input"


@dataclass(frozen=True)
class ModelInfo:
    """Everything a host needs besides the network: who made it, what it takes, how to tile it.

    Attributes:
        version: shotfit's version that exported it.
        arch: the architecture's registry name (``unet_attn`` ...).
        channels: C of input and output (3 for RGB; an alpha channel is the host's to pass through).
        colour: the run's colour settings as run.json records them (see ``COLOUR_KEYS``).
        size_multiple: the network's internal downsampling factor; tiles start on multiples of it.
        tile_overlap: the overlap under which tiles match the whole frame (the run's setting, else the
            network's reach).
        max_tile: the largest tile the network should see, or None.
        tile, blend: the run's render settings (tile size in pixels; ``hann`` or ``linear`` feather).
    """

    version: str
    arch: str
    channels: int
    colour: dict[str, Any]
    size_multiple: int
    tile_overlap: int
    max_tile: int | None
    tile: int
    blend: str

    def to_strings(self) -> dict[str, str]:
        """The metadata as string pairs (what ONNX ``metadata_props`` holds), keys prefixed ``shotfit.``."""
        values = {
            "version": self.version, "arch": self.arch, "channels": str(self.channels),
            "colour": json.dumps(self.colour, sort_keys=True), "size_multiple": str(self.size_multiple),
            "tile_overlap": str(self.tile_overlap), "max_tile": "" if self.max_tile is None else str(self.max_tile),
            "tile": str(self.tile), "blend": self.blend,
            "input": INPUT_TEXT.format(channels=self.channels), "output": OUTPUT_TEXT.format(channels=self.channels),
        }
        return {PREFIX + key: value for key, value in values.items()}

    def to_json(self) -> str:
        return json.dumps(self.to_strings(), indent=2) + "\n"

    @classmethod
    def from_strings(cls, values: Mapping[str, str], path: str | Path) -> ModelInfo:
        """Read the metadata back; a file without it (not made by ``shotfit export``) is a one-line RunError."""
        def get(key: str) -> str:
            try:
                return values[PREFIX + key]
            except KeyError:
                raise RunError(f"{quoted(path)} was not made by 'shotfit export' (no {PREFIX}{key} in its "
                               "metadata)") from None

        version = get("version")  # first: a file without it is someone else's, not a damaged one of ours
        try:
            max_tile = get("max_tile")
            return cls(version=version, arch=get("arch"), channels=int(get("channels")),
                       colour=json.loads(get("colour")), size_multiple=int(get("size_multiple")),
                       tile_overlap=int(get("tile_overlap")), max_tile=int(max_tile) if max_tile else None,
                       tile=int(get("tile")), blend=get("blend"))
        except ValueError as err:
            raise RunError(f"{quoted(path)} has damaged shotfit metadata ({err})") from None

    @classmethod
    def from_json(cls, text: str, path: str | Path) -> ModelInfo:
        try:
            values = json.loads(text)
        except ValueError as err:
            raise RunError(f"{quoted(path)} has damaged shotfit metadata ({err})") from None
        return cls.from_strings(values if isinstance(values, dict) else {}, path)
