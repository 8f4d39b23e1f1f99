"""Pixel formats: which file type, sample type and channel count a frame has or should get."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotfit.errors import ConfigError

# Suffix as found on disk (lowercased) -> the canonical one a PixelFormat carries.
IMAGE_EXTENSIONS: dict[str, str] = {
    ".png": ".png",
    ".tif": ".tif",
    ".tiff": ".tif",
    ".jpg": ".jpg",
    ".jpeg": ".jpg",
    ".exr": ".exr",
}

# Sample types each file type can hold; the first is what a new file gets by default.
_DTYPES: dict[str, tuple[str, ...]] = {
    ".png": ("uint8", "uint16"),
    ".tif": ("uint16", "uint8", "float"),
    ".jpg": ("uint8",),
    ".exr": ("half", "float"),
}

_CHANNELS: dict[str, tuple[int, ...]] = {
    ".png": (1, 3, 4),
    ".tif": (1, 3, 4),
    ".jpg": (1, 3),
    ".exr": (1, 3, 4),
}

# Names as OpenEXR spells them without the "_COMPRESSION" suffix, lowercased.
EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "zstd")

HALF_MAX = 65504.0


def supported_list() -> str:
    """The image suffixes shotfit reads, for messages: ``.png, .tif, .tiff, .jpg, .jpeg, .exr``."""
    return ", ".join(IMAGE_EXTENSIONS)


def canonical_ext(path: str | Path) -> str | None:
    """The canonical suffix (``.tif`` for ``x.TIFF``) of an image path, or None if not an image type."""
    return IMAGE_EXTENSIONS.get(Path(path).suffix.lower())


@dataclass(frozen=True)
class PixelFormat:
    """How a frame is stored on disk.

    Attributes:
        ext: Canonical file type: ``".png"``, ``".tif"``, ``".jpg"`` or ``".exr"``.
        dtype: Sample type on disk: ``"uint8"`` or ``"uint16"`` (display-referred, read as [0, 1]),
            ``"half"`` or ``"float"`` (scene-linear, read unchanged: may exceed 1.0 or be negative).
        channels: 1 (grey / EXR ``Y``), 3 (RGB) or 4 (RGBA).
        compression: EXR only: the compression to write with (``"zip"``, ``"piz"``, ``"dwaa"``, ...,
            see ``EXR_COMPRESSIONS``); None means ``"zip"``, which is lossless. Reading an EXR records
            the file's own compression here so that outputs match the plates.

    Example:
        >>> PixelFormat(".exr", "half", 4).is_float
        True
    """

    ext: str
    dtype: str
    channels: int
    compression: str | None = None

    def __post_init__(self) -> None:
        if self.ext not in _DTYPES:
            raise ConfigError(f"unknown image type {self.ext!r} (known: {', '.join(_DTYPES)})")
        if self.dtype not in _DTYPES[self.ext]:
            raise ConfigError(
                f"{self.ext} files cannot hold {self.dtype!r} samples (they hold: {', '.join(_DTYPES[self.ext])})"
            )
        if self.channels not in _CHANNELS[self.ext]:
            raise ConfigError(
                f"{self.ext} files cannot hold {self.channels} channels "
                f"(they hold: {', '.join(map(str, _CHANNELS[self.ext]))})"
            )
        if self.compression is not None and (self.ext != ".exr" or self.compression not in EXR_COMPRESSIONS):
            raise ConfigError(
                f"compression {self.compression!r} is not an EXR compression (known: {', '.join(EXR_COMPRESSIONS)})"
                if self.ext == ".exr"
                else f"compression is an EXR setting; {self.ext} files take none"
            )

    @property
    def is_float(self) -> bool:
        """True for scene-linear float data (EXR, float TIFF); False for display-referred integers."""
        return self.dtype in ("half", "float")

    @property
    def max_code(self) -> int | None:
        """The integer code that stands for 1.0 (255 or 65535); None for float formats."""
        return {"uint8": 255, "uint16": 65535}.get(self.dtype)

    def describe(self) -> str:
        """Short human form for messages: ``"16-bit RGBA .png"``, ``"half RGB .exr"``."""
        depth = {"uint8": "8-bit", "uint16": "16-bit"}.get(self.dtype, self.dtype)
        layout = {1: "grey", 3: "RGB", 4: "RGBA"}[self.channels]
        return f"{depth} {layout} {self.ext}"


def integer_to_float(codes: np.ndarray) -> np.ndarray:
    """uint8 / uint16 codes (any shape) -> float32 in [0, 1] (code / 255 or code / 65535)."""
    scale = np.float32(np.iinfo(codes.dtype).max)
    return codes.astype(np.float32) / scale


def float_to_integer(pixels: np.ndarray, dtype: str) -> np.ndarray:
    """float in [0, 1] (values outside are clipped) -> uint8 / uint16 codes, rounded to nearest.

    Exact inverse of :func:`integer_to_float`: codes survive read -> write unchanged.
    """
    target = np.dtype(dtype)
    scale = np.iinfo(target).max
    scaled = np.clip(pixels.astype(np.float32, copy=False), 0.0, 1.0) * np.float32(scale)
    return np.rint(scaled).astype(target)
