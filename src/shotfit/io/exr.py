"""OpenEXR frames through the ``OpenEXR`` module (OpenCV's PyPI wheels are built without EXR)."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import OpenEXR

from shotfit.errors import FrameError, quoted
from shotfit.io._quiet import native_output_held
from shotfit.io.formats import EXR_COMPRESSIONS, HALF_MAX, FrameExtras, PixelFormat, Window

log = logging.getLogger(__name__)

_LAYOUTS = {1: ("Y",), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}
# Header entries that describe the file's layout: the writer sets them, they are not kept as attributes.
_LAYOUT_ATTRIBUTES = {"channels", "dataWindow", "displayWindow", "compression", "type", "tiles", "chunkCount",
                      "version", "maxSamplesPerPixel"}


def read_exr(path: Path) -> tuple[np.ndarray, PixelFormat, FrameExtras]:
    """Read the RGB(A) or Y channels of an EXR's first part, and what the file holds beside them.

    The pixels are the data window, as stored: overscan beyond the display window is kept, a data
    window inside it is not padded. The extras record both windows, the header's attributes and
    every other channel (Z, AOV layers), so that a rendered frame can be written with all of them.

    Returns:
        pixels: float32 (H, W, C), (H, W) the data window's size, C in {1, 3, 4}; scene-linear values
            as stored (half widened exactly).
        fmt: ``dtype`` is ``"float"`` if any channel read is 32-bit float, else ``"half"``; the
            compression is the file's.
        extras: windows, attributes and the other channels (see :class:`FrameExtras`).

    Raises:
        FrameError: unreadable or truncated file, no usable channels, NaN/Inf values.
    """
    try:
        # The C library prints its own complaint about a damaged file; the FrameError says it in one line.
        with native_output_held():
            # separate_channels: a file that mixes half and float channels cannot be coalesced otherwise.
            exr = OpenEXR.File(str(path), separate_channels=True)
            if not exr.parts:  # the binding prints why, then returns a file with nothing in it
                raise ValueError("its pixel data cannot be read")
            part = exr.parts[0]
            header = part.header
            channels = part.channels
    except Exception as err:  # OpenEXR raises RuntimeError / ValueError / IndexError for bad files
        raise FrameError(f"{quoted(path)} is not a readable EXR (corrupt or truncated: {_first_line(err)})") from None
    if len(exr.parts) > 1:
        log.debug("%s has %d parts; reading the first", path, len(exr.parts))
    if "deep" in str(header.get("type", "")):
        raise FrameError(f"{quoted(path)} is a deep EXR; shotfit reads flat images only")

    names = _pick_channels(path, list(channels))
    planes = []
    for name in names:
        channel = channels[name]
        if channel.xSampling != 1 or channel.ySampling != 1:
            raise FrameError(f"{quoted(path)} has subsampled channel {name}; shotfit reads full-resolution channels")
        plane = channel.pixels
        if plane.dtype not in (np.float16, np.float32):
            raise FrameError(f"{quoted(path)} channel {name} holds {plane.dtype} samples; shotfit reads half or float")
        if not np.isfinite(plane).all():
            raise FrameError(f"{quoted(path)} has NaN/Inf values in channel {name}")
        planes.append(plane)

    dtype = "float" if any(p.dtype == np.float32 for p in planes) else "half"
    pixels = np.stack([p.astype(np.float32) for p in planes], axis=-1)
    compression = str(header.get("compression", "")).rsplit(".", 1)[-1].removesuffix("_COMPRESSION").lower()
    compression = "none" if compression == "no" else compression  # OpenEXR's NO_COMPRESSION
    fmt = PixelFormat(".exr", dtype, len(names), compression if compression in EXR_COMPRESSIONS else None)
    extras = FrameExtras(
        ext=".exr",
        attributes={k: v for k, v in header.items() if k not in _LAYOUT_ATTRIBUTES},
        data_window=_window(header["dataWindow"]),
        display_window=_window(header["displayWindow"]),
        channels={name: channel for name, channel in channels.items() if name not in names},
    )
    if extras.data_window != extras.display_window:
        log.debug("%s: %s", path, extras.windows())
    return pixels, fmt, extras


def encode_exr(pixels: np.ndarray, fmt: PixelFormat, path: Path, extras: FrameExtras | None = None) -> bytes:
    """Encode float (H, W, C) pixels as a single-part scanline EXR of ``fmt.dtype`` samples.

    With ``extras`` from an EXR, the file gets their windows, attributes and other channels
    unchanged (the pixels must then be the data window's size). Half output clips to +-65504 (beyond
    it half would store Inf, which shotfit refuses to read). ``path`` is only used in messages.
    """
    target = np.float16 if fmt.dtype == "half" else np.float32
    if target is np.float16 and np.abs(pixels).max(initial=0.0) > HALF_MAX:
        log.warning("%s: values beyond +-%g clipped to fit half floats", path, HALF_MAX)
        pixels = np.clip(pixels, -HALF_MAX, HALF_MAX)
    compression_name = f"{(fmt.compression or 'zip').upper()}_COMPRESSION".replace("NONE_", "NO_")
    compression = getattr(OpenEXR, compression_name, None)
    if compression is None:
        raise FrameError(f"cannot write {quoted(path)}: this OpenEXR has no {fmt.compression} compression")
    planes: dict[str, Any] = {
        name: np.ascontiguousarray(pixels[..., i], dtype=target) for i, name in enumerate(_LAYOUTS[fmt.channels])
    }
    header: dict[str, Any] = {}
    if extras is not None and extras.ext == ".exr":
        if extras.data_window is not None and extras.data_window.size != pixels.shape[:2]:
            raise ValueError(f"pixels of shape {pixels.shape} do not fill the data window {extras.data_window}")
        header.update(extras.attributes)
        for window, key in ((extras.data_window, "dataWindow"), (extras.display_window, "displayWindow")):
            if window is not None:
                header[key] = (np.array([window.x_min, window.y_min], np.int32),
                               np.array([window.x_max, window.y_max], np.int32))
        # Channels a render does not touch, as read; the picture's own names win over a clash.
        planes = {**extras.channels, **planes}
    header.update({"compression": compression, "type": OpenEXR.scanlineimage})
    if header.get("lineOrder") == OpenEXR.RANDOM_Y:  # a tiled file's order; scanlines go top to bottom
        del header["lineOrder"]
    stream = io.BytesIO()
    OpenEXR.File(header, planes).write(stream)
    return stream.getvalue()


def _pick_channels(path: Path, names: list[str]) -> tuple[str, ...]:
    """The picture's channels, in RGB(A) or Y order; other layers (Z, AOVs) go to the extras."""
    available = set(names)
    # Some writers use lowercase names; accept them only when that is unambiguous.
    by_upper = {n.upper(): n for n in names}
    if len(by_upper) == len(names):
        available |= set(by_upper)
    for layout in (_LAYOUTS[4], _LAYOUTS[3]):
        if available.issuperset(layout):
            return tuple(n if n in names else by_upper[n] for n in layout)
    if "Y" in available:
        if "A" in available:
            raise FrameError(f"{quoted(path)} has channels Y and A; shotfit reads R,G,B(,A) or Y alone")
        return ("Y" if "Y" in names else by_upper["Y"],)
    shown = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
    raise FrameError(f"{quoted(path)} has no R,G,B or Y channels (it has: {shown})")


def to_display_window(pixels: np.ndarray, data_window: Window, display_window: Window) -> np.ndarray:
    """Pixels of ``data_window`` (H, W, C) as the display window shows them: overscan cropped,
    uncovered parts black. What a compositing package shows as the frame's format."""
    if data_window == display_window:
        return pixels
    height, width = display_window.size
    canvas = np.zeros((height, width, pixels.shape[-1]), pixels.dtype)
    data, shown = data_window, display_window
    # The overlap of the two windows, as (x0, y0) to (x1, y1) exclusive, in image coordinates.
    x0, y0 = max(data.x_min, shown.x_min), max(data.y_min, shown.y_min)
    x1, y1 = min(data.x_max, shown.x_max) + 1, min(data.y_max, shown.y_max) + 1
    if x1 > x0 and y1 > y0:
        canvas[y0 - shown.y_min : y1 - shown.y_min, x0 - shown.x_min : x1 - shown.x_min] = (
            pixels[y0 - data.y_min : y1 - data.y_min, x0 - data.x_min : x1 - data.x_min])
    return canvas


def _window(corners: tuple[np.ndarray, np.ndarray]) -> Window:
    (x_min, y_min), (x_max, y_max) = (np.asarray(c).tolist() for c in corners)
    return Window(x_min, y_min, x_max, y_max)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
