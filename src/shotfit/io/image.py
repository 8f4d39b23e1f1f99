"""Read and write single frames: PNG and JPEG (OpenCV, Pillow), EXR (OpenEXR), DPX and TIFF (OpenImageIO).

In memory a frame is float32 (H, W, C), C in {1, 3, 4}, RGB(A) order. Integer files map to [0, 1]
(code / max code: 255, 1023, 4095 or 65535); float files keep their scene-linear values. What a file
holds beside its picture (EXR windows, other channels, header attributes; DPX/TIFF metadata) comes
with :func:`read_with_extras` and goes back with ``write_image(..., extras=...)``.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from shotfit.errors import FrameError, quoted
from shotfit.files import not_a_file, write_bytes_atomic
from shotfit.io._quiet import native_output_held
from shotfit.io.exr import encode_exr, read_exr
from shotfit.io.formats import (
    FrameExtras,
    PixelFormat,
    canonical_ext,
    float_to_integer,
    integer_to_float,
    supported_list,
)

JPEG_QUALITY = 95

_TO_RGB = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}
_FROM_RGB = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}
_CODES_TO_DTYPE = {np.dtype(np.uint8): "uint8", np.dtype(np.uint16): "uint16"}


def read_image(path: str | Path) -> tuple[np.ndarray, PixelFormat]:
    """Read one frame.

    Args:
        path: A ``.png`` (8 or 16 bit), ``.tif`` / ``.tiff`` (8 or 16 bit, or float), ``.jpg`` /
            ``.jpeg``, ``.exr`` (half or float, any compression) or ``.dpx`` (8/10/12/16 bit) file.

    Returns:
        pixels: float32 (H, W, C), C in {1, 3, 4}, RGB(A) order. Integer files in [0, 1]; float files
            scene-linear as stored (may exceed 1.0 or be negative, never NaN/Inf). An EXR's pixels
            are its data window (overscan included).
        fmt: The file's :class:`PixelFormat`, to write results back the same way.

    Raises:
        FrameError: one line naming the file: missing, unsupported type, corrupt or truncated, NaN/Inf.
    """
    pixels, fmt, _ = read_with_extras(path)
    return pixels, fmt


def read_with_extras(path: str | Path) -> tuple[np.ndarray, PixelFormat, FrameExtras]:
    """Read one frame as :func:`read_image` does, with what the file holds beside its picture.

    Returns:
        pixels, fmt: as :func:`read_image`.
        extras: EXR: data and display windows, header attributes, every channel other than the
            picture's; DPX/TIFF: metadata. Empty for PNG and JPEG. Give them to :func:`write_image`
            to carry them into an output of the same type.
    """
    path = Path(path)
    ext = canonical_ext(path)
    if ext is None:
        raise FrameError(f"{quoted(path)} is not a supported image type ({supported_list()})")
    kind = not_a_file(path)
    if kind == "missing":
        raise FrameError(f"{quoted(path)} does not exist")
    if kind is not None:  # never opened: a FIFO would wait for a writer forever
        raise FrameError(f"{quoted(path)} is {kind}, not an image")
    try:
        empty = path.stat().st_size == 0
    except OSError as err:
        raise FrameError(f"cannot read {quoted(path)} ({err.strerror})") from None
    if empty:  # a render or copy that died before writing a byte; some decoders assert on it
        raise FrameError(f"{quoted(path)} is empty (0 bytes)")
    if ext == ".exr":
        return read_exr(path)
    if ext in (".dpx", ".tif"):
        from shotfit.io.oiio_image import read_oiio  # OpenImageIO loads only for DPX and TIFF

        return read_oiio(path, ext)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise FrameError(f"cannot read {quoted(path)} ({err.strerror})") from None
    codes = _decode_jpeg(path, data) if ext == ".jpg" else _decode_with_opencv(path, data)
    if codes.ndim == 2:
        codes = codes[..., None]
    if codes.shape[-1] == 2:  # grey + alpha: no such layout in memory, so widen to RGBA
        codes = np.concatenate([codes[..., :1]] * 3 + [codes[..., 1:]], axis=-1)
    dtype = _CODES_TO_DTYPE.get(codes.dtype)
    if dtype is None:
        raise FrameError(f"{quoted(path)} holds {codes.dtype} samples; shotfit reads 8/16-bit PNG")
    return integer_to_float(codes), PixelFormat(ext, dtype, codes.shape[-1]), FrameExtras()


def write_image(path: str | Path, pixels: np.ndarray, fmt: PixelFormat, extras: FrameExtras | None = None) -> None:
    """Write one frame atomically: a temporary file beside ``path``, then one rename over it.

    Readers never see a half-written frame and an existing file is replaced whole. Missing folders
    are created.

    Args:
        path: Destination; its suffix must be a spelling of ``fmt.ext`` (``.tiff`` is fine for ``.tif``).
        pixels: float (H, W, C) with C == ``fmt.channels``, RGB(A) order. For integer formats the
            range is [0, 1] (outside is clipped, then rounded to the nearest code); for float
            formats, scene-linear values are written as they are (half clips to +-65504).
        fmt: How to store it.
        extras: What the source file held beside its picture (from :func:`read_with_extras`): an
            output of the same type gets them (EXR: windows, attributes, other channels, and then
            ``pixels`` must be the data window's size; DPX/TIFF: metadata); other types ignore them.

    Raises:
        FrameError: NaN/Inf pixels, or the folder cannot be created or written (naming it).
        ValueError: pixels of the wrong shape or a suffix that contradicts ``fmt`` (a bug in the caller).
    """
    path = Path(path)
    if canonical_ext(path) != fmt.ext:
        raise ValueError(f"cannot write {fmt.describe()} data to {quoted(path)}: the suffix should be {fmt.ext}")
    if pixels.ndim != 3 or pixels.shape[-1] != fmt.channels:
        raise ValueError(f"expected pixels of shape (H, W, {fmt.channels}) for {fmt.describe()}, got {pixels.shape}")
    if not np.isfinite(pixels).all():
        raise FrameError(f"refusing to write NaN/Inf values to {quoted(path)}")
    if fmt.ext in (".dpx", ".tif"):
        # OpenImageIO loads in a second or so: only for the formats that need it
        from shotfit.io.oiio_image import write_oiio

        write_oiio(path, pixels, fmt, extras)
        return
    if fmt.ext == ".exr":
        data = encode_exr(pixels, fmt, path, extras)
    else:
        data = _encode_with_opencv(path, pixels, fmt)
    write_bytes_atomic(path, data)


def _decode_with_opencv(path: Path, data: bytes) -> np.ndarray:
    # imdecode rather than imread: it rejects truncated files that imread half-decodes with a warning.
    with native_output_held() as held:
        try:
            codes = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:  # OpenCV asserts on some inputs (an empty buffer) instead of returning None
            codes = None
        held.discard = codes is None  # OpenCV's and libpng's complaints: the FrameError says it in one line
    if codes is None:
        raise FrameError(f"{quoted(path)} is not a readable PNG image (corrupt or truncated)")
    if codes.ndim == 3 and codes.shape[-1] in _TO_RGB:
        codes = cv2.cvtColor(codes, _TO_RGB[codes.shape[-1]])
    return codes


def _decode_jpeg(path: Path, data: bytes) -> np.ndarray:
    # Pillow, because libjpeg only warns about a truncated file and OpenCV then returns grey-filled
    # rows; Pillow raises instead (unless someone sets ImageFile.LOAD_TRUNCATED_IMAGES).
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
            image.load()
            if image.mode not in ("L", "RGB"):
                image = image.convert("RGB")
            return np.asarray(image)
    except UnidentifiedImageError:
        raise FrameError(f"{quoted(path)} is not a readable JPEG image (corrupt or truncated)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise FrameError(f"{quoted(path)} is not a readable JPEG image (corrupt or truncated: {err})") from None


def _encode_with_opencv(path: Path, pixels: np.ndarray, fmt: PixelFormat) -> bytes:
    codes = float_to_integer(pixels, fmt.dtype)
    if fmt.channels in _FROM_RGB:
        codes = cv2.cvtColor(codes, _FROM_RGB[fmt.channels])
    else:
        codes = codes[..., 0]
    params: list[int] = []
    if fmt.ext == ".jpg":
        # 4:4:4 because chroma subsampling would blur the very edits shotfit learns.
        params = [
            cv2.IMWRITE_JPEG_QUALITY,
            JPEG_QUALITY,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        ]
    ok, encoded = cv2.imencode(fmt.ext, codes, params)
    if not ok:
        raise FrameError(f"cannot encode {quoted(path)} as {fmt.describe()}")
    return encoded.tobytes()
