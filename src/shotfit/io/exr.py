"""OpenEXR frames through the ``OpenEXR`` module (OpenCV's PyPI wheels are built without EXR)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import OpenEXR

from shotfit.errors import FrameError, quoted
from shotfit.io._quiet import native_output_held
from shotfit.io.formats import EXR_COMPRESSIONS, HALF_MAX, PixelFormat

log = logging.getLogger(__name__)

_LAYOUTS = {1: ("Y",), 3: ("R", "G", "B"), 4: ("R", "G", "B", "A")}


def read_exr(path: Path) -> tuple[np.ndarray, PixelFormat]:
    """Read the RGB(A) or Y channels of an EXR's first part.

    The picture is the display window: pixels of a smaller data window are placed in it over zeros,
    overscan outside it is cropped (compositing packages treat the display window as the format).

    Returns:
        pixels: float32 (H, W, C), C in {1, 3, 4}; scene-linear values as stored (half widened exactly).
        fmt: ``dtype`` is ``"float"`` if any channel read is 32-bit float, else ``"half"``.

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
    pixels = _to_display_window(path, pixels, header)
    compression = str(header.get("compression", "")).rsplit(".", 1)[-1].removesuffix("_COMPRESSION").lower()
    fmt = PixelFormat(".exr", dtype, len(names), compression if compression in EXR_COMPRESSIONS else None)
    return pixels, fmt


def encode_exr(pixels: np.ndarray, fmt: PixelFormat, path: Path) -> bytes:
    """Encode float (H, W, C) pixels as a single-part scanline EXR of ``fmt.dtype`` samples.

    Half output clips to +-65504 (beyond it half would store Inf, which shotfit refuses to read).
    ``path`` is only used in messages.
    """
    target = np.float16 if fmt.dtype == "half" else np.float32
    if target is np.float16 and np.abs(pixels).max(initial=0.0) > HALF_MAX:
        log.warning("%s: values beyond +-%g clipped to fit half floats", path, HALF_MAX)
        pixels = np.clip(pixels, -HALF_MAX, HALF_MAX)
    compression_name = f"{(fmt.compression or 'zip').upper()}_COMPRESSION"
    compression = getattr(OpenEXR, compression_name, None)
    if compression is None:
        raise FrameError(f"cannot write {quoted(path)}: this OpenEXR has no {fmt.compression} compression")
    planes = {
        name: np.ascontiguousarray(pixels[..., i], dtype=target) for i, name in enumerate(_LAYOUTS[fmt.channels])
    }
    header = {"compression": compression, "type": OpenEXR.scanlineimage}
    stream = io.BytesIO()
    OpenEXR.File(header, planes).write(stream)
    return stream.getvalue()


def _pick_channels(path: Path, names: list[str]) -> tuple[str, ...]:
    """The channels to read, in RGB(A) or Y order; other layers (Z, AOVs) are ignored."""
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


def _to_display_window(path: Path, pixels: np.ndarray, header: dict) -> np.ndarray:
    data_min, data_max = (np.asarray(v) for v in header["dataWindow"])
    disp_min, disp_max = (np.asarray(v) for v in header["displayWindow"])
    if np.array_equal(data_min, disp_min) and np.array_equal(data_max, disp_max):
        return pixels
    width, height = (disp_max - disp_min + 1).tolist()
    canvas = np.zeros((height, width, pixels.shape[-1]), np.float32)
    # Overlap of the two windows, in display-window coordinates.
    x0, y0 = np.maximum(data_min, disp_min) - disp_min
    x1, y1 = np.minimum(data_max, disp_max) - disp_min + 1
    if x1 > x0 and y1 > y0:
        sx, sy = disp_min + (x0, y0) - data_min
        canvas[y0:y1, x0:x1] = pixels[sy : sy + (y1 - y0), sx : sx + (x1 - x0)]
    log.debug("%s: data window %s-%s placed in display window %s-%s", path, data_min, data_max, disp_min, disp_max)
    return canvas


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
