"""Pixel formats: which file type, sample type and channel count a frame has or should get; and the
extras (windows, attributes, other channels) a frame file carries beside its pixels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    ".dpx": ".dpx",
}

# Sample types each file type can hold; the first is what a new file gets by default.
_DTYPES: dict[str, tuple[str, ...]] = {
    ".png": ("uint8", "uint16"),
    ".tif": ("uint16", "uint8", "float"),
    ".jpg": ("uint8",),
    ".exr": ("half", "float"),
    ".dpx": ("uint10", "uint12", "uint16", "uint8"),
}

_CHANNELS: dict[str, tuple[int, ...]] = {
    ".png": (1, 3, 4),
    ".tif": (1, 3, 4),
    ".jpg": (1, 3),
    ".exr": (1, 3, 4),
    ".dpx": (1, 3, 4),
}

# Integer sample types -> the code that stands for 1.0 (DPX packs 10 and 12 bits into its words).
_MAX_CODES = {"uint8": 255, "uint10": 1023, "uint12": 4095, "uint16": 65535}

# Names as OpenEXR spells them without the "_COMPRESSION" suffix, lowercased.
EXR_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz", "pxr24", "b44", "b44a", "dwaa", "dwab", "zstd",
                    "htj2k256", "htj2k32", "lj2k")

HALF_MAX = 65504.0


def supported_list() -> str:
    """The image suffixes shotfit reads, for messages: ``.png, .tif, .tiff, .jpg, .jpeg, .exr, .dpx``."""
    return ", ".join(IMAGE_EXTENSIONS)


def canonical_ext(path: str | Path) -> str | None:
    """The canonical suffix (``.tif`` for ``x.TIFF``) of an image path, or None if not an image type."""
    return IMAGE_EXTENSIONS.get(Path(path).suffix.lower())


@dataclass(frozen=True)
class PixelFormat:
    """How a frame is stored on disk.

    Attributes:
        ext: Canonical file type: ``".png"``, ``".tif"``, ``".jpg"``, ``".exr"`` or ``".dpx"``.
        dtype: Sample type on disk: ``"uint8"``, ``"uint10"``, ``"uint12"`` (DPX) or ``"uint16"``
            (integer codes, read as [0, 1]),
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
        """The integer code that stands for 1.0 (255, 1023, 4095 or 65535); None for float formats."""
        return _MAX_CODES.get(self.dtype)

    @property
    def bits(self) -> int | None:
        """Bits per integer sample (8, 10, 12, 16); None for float formats."""
        return None if self.max_code is None else self.max_code.bit_length()

    @property
    def depth(self) -> str:
        """The sample depth in words: ``"8-bit"``, ``"10-bit"``, ``"half"``, ``"float"``."""
        return f"{self.bits}-bit" if self.bits else self.dtype

    def describe(self) -> str:
        """Short human form for messages: ``"16-bit RGBA .png"``, ``"half RGB .exr"``, ``"10-bit RGB .dpx"``."""
        layout = {1: "grey", 3: "RGB", 4: "RGBA"}[self.channels]
        return f"{self.depth} {layout} {self.ext}"


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


@dataclass(frozen=True)
class Window:
    """A pixel rectangle as EXR stores it: corners included, x right and y down, may be negative.

    Example:
        >>> Window(-8, -8, 1927, 1087).size
        (1096, 1936)
    """

    x_min: int
    y_min: int
    x_max: int
    y_max: int

    @property
    def size(self) -> tuple[int, int]:
        """(H, W), the shape its pixels have in memory."""
        return self.y_max - self.y_min + 1, self.x_max - self.x_min + 1

    def __str__(self) -> str:
        return f"({self.x_min},{self.y_min})-({self.x_max},{self.y_max})"


@dataclass(frozen=True)
class FrameExtras:
    """What a frame file holds beside its picture, so that a rendered frame can carry it unchanged.

    A writer uses them only for a file of the type they came from (``ext``); others ignore them.

    Attributes:
        ext: The file type they were read from (``".exr"``, ``".dpx"``, ``".tif"``); None: no extras.
        attributes: Header metadata by name, values as the file's library gives them (OpenEXR for
            EXR: ``owner``, ``comments``, ``chromaticities``, ``framesPerSecond``, ``timeCode``, custom
            ones...; OpenImageIO for DPX/TIFF: ``dpx:Transfer``, ``smpte:TimeCode``, ``Artist``...).
        attribute_types: OpenImageIO files only: each attribute's OIIO type name (``"timecode"``),
            so that it is written back as the same type.
        data_window: EXR: where the pixels lie (their shape is ``data_window.size``).
        display_window: EXR: the frame's format; overscan is the data window reaching beyond it.
        channels: EXR channels other than the picture's (``Z``, ``diffuse.R``...), as stored:
            name -> ``OpenEXR.Channel``.
    """

    ext: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    attribute_types: Mapping[str, str] = field(default_factory=dict)
    data_window: Window | None = None
    display_window: Window | None = None
    channels: Mapping[str, Any] = field(default_factory=dict)

    def windows(self) -> str:
        """The windows for messages: ``"data window (0,0)-(47,39), display window (0,0)-(47,39)"``."""
        return f"data window {self.data_window}, display window {self.display_window}"
