"""DPX (8/10/12/16-bit) and TIFF (8/16-bit, float) frames through OpenImageIO, metadata kept.

OpenImageIO hands every integer depth over as floats (code / (2**bits - 1)); they are rounded back to
the file's own codes here, so an integer frame reads as ``code / max_code`` exactly, as PNGs do, and
writing it back at the same depth gives the same codes. Alpha is read as stored, never
premultiplied on the way, and written back with the source's association (a TIFF's
``oiio:UnassociatedAlpha`` travels with its metadata); a new file's colour is stored as given.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from shotfit.errors import FrameError, quoted
from shotfit.files import atomic_path
from shotfit.io.formats import FrameExtras, PixelFormat

log = logging.getLogger(__name__)

_KIND = {".dpx": "DPX", ".tif": "TIFF"}
_DPX_DTYPES = {8: "uint8", 10: "uint10", 12: "uint12", 16: "uint16"}
_TIFF_DTYPES = {"uint8": "uint8", "uint16": "uint16", "half": "float", "float": "float"}
# Attributes that describe how this file was laid out; the writer decides them afresh.
_LAYOUT_ATTRIBUTES = {"oiio:BitsPerSample", "oiio:subimages", "oiio:RowsPerChunk", "tiff:RowsPerStrip",
                      "tiff:PlanarConfiguration", "planarconfig", "tiff:Compression", "dpx:EndOfLinePadding",
                      "dpx:EndOfImagePadding"}
_NAMES = {1: ("Y",), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}


def read_oiio(path: Path, ext: str) -> tuple[np.ndarray, PixelFormat, FrameExtras]:
    """Read a DPX or TIFF frame (its first subimage) with its metadata.

    Returns:
        pixels: float32 (H, W, C), C in {1, 3, 4}, RGB(A); integer files in [0, 1] (code / max code),
            float TIFF as stored. Grey + alpha widens to RGBA.
        fmt: The file's :class:`PixelFormat` (``"uint10"`` for a 10-bit DPX, ...).
        extras: the file's attributes (``dpx:Transfer``, ``smpte:TimeCode``, ``Artist``...) and their types.

    Raises:
        FrameError: one line naming the file: unreadable, truncated, an unsupported depth or layout.
    """
    kind = _KIND[ext]
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # codes as stored, not premultiplied on the way in
    image = oiio.ImageInput.open(str(path), config)
    if image is None:
        raise FrameError(f"{quoted(path)} is not a readable {kind} image "
                         f"(corrupt or truncated: {_first_line(oiio.geterror())})")
    try:
        spec = image.spec()
        dtype = _dtype(path, ext, spec)
        channels = spec.nchannels
        if channels not in (1, 2, 3, 4):
            raise FrameError(f"{quoted(path)} has {channels} channels ({', '.join(spec.channelnames)}); "
                             "shotfit reads grey, RGB or RGBA")
        values = image.read_image(0, 0, 0, channels, "float")
        if values is None:
            raise FrameError(f"{quoted(path)} is not a readable {kind} image "
                             f"(corrupt or truncated: {_first_line(image.geterror())})")
    finally:
        image.close()
    values = np.asarray(values, np.float32).reshape(spec.height, spec.width, channels)
    if channels == 2:  # grey + alpha: no such layout in memory, so widen to RGBA
        values = np.concatenate([values[..., :1]] * 3 + [values[..., 1:]], axis=-1)
    fmt = PixelFormat(ext, dtype, values.shape[-1])
    if fmt.is_float:
        if not np.isfinite(values).all():
            raise FrameError(f"{quoted(path)} has NaN/Inf values")
        pixels = np.ascontiguousarray(values)
    else:
        top = np.float32(fmt.max_code)
        pixels = np.rint(values * top) / top
    kept = [p for p in spec.extra_attribs if p.name not in _LAYOUT_ATTRIBUTES]
    extras = FrameExtras(ext=ext, attributes={p.name: p.value for p in kept},
                         attribute_types={p.name: str(p.type) for p in kept})
    return pixels.astype(np.float32, copy=False), fmt, extras


def write_oiio(path: Path, pixels: np.ndarray, fmt: PixelFormat, extras: FrameExtras | None = None) -> None:
    """Write a DPX or TIFF frame atomically, with the metadata of ``extras`` when they are of this type.

    Integer formats take [0, 1] (clipped, rounded to the nearest code of ``fmt``'s depth); float TIFF
    takes values as they are.
    """
    height, width, channels = pixels.shape
    spec = oiio.ImageSpec(width, height, channels, "float" if fmt.is_float else _storage(fmt))
    if extras is not None and extras.ext == fmt.ext:
        for name, value in extras.attributes.items():
            spec.attribute(name, extras.attribute_types.get(name, "string"), value)
    spec.channelnames = _NAMES[channels]
    spec.alpha_channel = 3 if channels == 4 else -1
    if not fmt.is_float:
        spec.attribute("oiio:BitsPerSample", fmt.bits)
        top = np.float32(fmt.max_code)
        pixels = np.rint(np.clip(pixels, 0.0, 1.0) * top) / top  # OpenImageIO then stores these codes
    data = np.ascontiguousarray(pixels, dtype=np.float32)
    with atomic_path(path) as temp:
        output = oiio.ImageOutput.create(str(temp))
        if output is None:
            raise FrameError(f"cannot write {quoted(path)} ({_first_line(oiio.geterror())})")
        ok = output.open(str(temp), spec) and output.write_image(data)
        error = output.geterror()
        ok = output.close() and ok
        if not ok:
            raise FrameError(f"cannot write {quoted(path)} as {fmt.describe()} ({_first_line(error)})")


def _dtype(path: Path, ext: str, spec: oiio.ImageSpec) -> str:
    storage = str(spec.format)
    if ext == ".dpx":
        bits = spec.get_int_attribute("oiio:BitsPerSample", 0)
        if storage in ("uint8", "uint16") and bits in _DPX_DTYPES:
            return _DPX_DTYPES[bits]
        raise FrameError(f"{quoted(path)} holds {bits}-bit {storage} samples; shotfit reads 8/10/12/16-bit DPX")
    if storage not in _TIFF_DTYPES:
        raise FrameError(f"{quoted(path)} holds {storage} samples; shotfit reads 8/16-bit or float TIFF")
    return _TIFF_DTYPES[storage]


def _storage(fmt: PixelFormat) -> str:
    return "uint8" if fmt.dtype == "uint8" else "uint16"


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else "unknown error"
