"""DPX and TIFF plates through OpenImageIO: exact codes at every depth, metadata kept, one-line errors.

Inputs are written with OpenImageIO (and OpenCV) in the test and outputs read back with it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest

from shotfit.errors import FrameError
from shotfit.io import PixelFormat, read_image, read_with_extras, write_image

RNG = np.random.default_rng(3)


def random_codes(bits: int, channels: int = 3, height: int = 6, width: int = 9) -> np.ndarray:
    top = 2**bits - 1
    codes = RNG.integers(0, top, (height, width, channels), endpoint=True)
    codes[0, 0], codes[-1, -1] = 0, top
    return codes


def write_with_oiio(path: str, codes: np.ndarray, bits: int, attributes: dict | None = None) -> None:
    """Codes of ``bits`` bits into a DPX/TIFF, as a scanner or a compositor would leave it."""
    height, width, channels = codes.shape
    spec = oiio.ImageSpec(width, height, channels, "uint8" if bits == 8 else "uint16")
    spec.attribute("oiio:BitsPerSample", bits)
    for name, (kind, value) in (attributes or {}).items():
        spec.attribute(name, kind, value)
    output = oiio.ImageOutput.create(path)
    assert output.open(path, spec), output.geterror()
    assert output.write_image((codes / (2**bits - 1)).astype(np.float32)), output.geterror()
    output.close()


def read_with_oiio(path: str) -> tuple[np.ndarray, oiio.ImageSpec]:
    """Codes as stored (at the file's own depth) and the file's spec."""
    image = oiio.ImageInput.open(path)
    assert image is not None, oiio.geterror()
    spec = image.spec()
    bits = spec.get_int_attribute("oiio:BitsPerSample")
    values = image.read_image(0, 0, 0, spec.nchannels, "float")
    image.close()
    return np.rint(values * (2**bits - 1)).astype(np.int64), spec


DPX_METADATA = {
    "dpx:Transfer": ("string", "Printing density"),
    "dpx:Colorimetric": ("string", "Printing density"),
    "smpte:TimeCode": ("timecode", (0x01000412, 0)),  # 01:00:04:12
    "dpx:FrameRate": ("float", 24.0),
    "Copyright": ("string", "scan dept"),
    "dpx:InputDevice": ("string", "film scanner 2"),
}


@pytest.mark.parametrize(("bits", "dtype"), [(10, "uint10"), (12, "uint12"), (16, "uint16"), (8, "uint8")])
def test_dpx_reads_exact_codes_and_writes_back_at_its_depth_with_its_metadata(tmp_path: Path, bits: int, dtype: str):
    codes = random_codes(bits)
    write_with_oiio("scan.dpx", codes, bits, DPX_METADATA)

    pixels, fmt, extras = read_with_extras("scan.dpx")
    assert fmt == PixelFormat(".dpx", dtype, 3) and fmt.max_code == 2**bits - 1
    assert fmt.describe() == f"{bits}-bit RGB .dpx"
    np.testing.assert_array_equal(pixels, (codes / np.float32(2**bits - 1)).astype(np.float32))
    assert extras.attributes["dpx:Transfer"] == "Printing density"

    write_image("out.dpx", pixels, fmt, extras)
    written, spec = read_with_oiio("out.dpx")
    assert spec.get_int_attribute("oiio:BitsPerSample") == bits
    np.testing.assert_array_equal(written, codes)
    assert spec.getattribute("dpx:Transfer") == "Printing density"
    assert spec.getattribute("dpx:TimeCode") == "01:00:04:12"
    assert spec.getattribute("dpx:FrameRate") == 24.0
    assert spec.getattribute("Copyright") == "scan dept"
    assert spec.getattribute("dpx:InputDevice") == "film scanner 2"


def test_dpx_with_alpha_and_grey(tmp_path: Path):
    for channels in (1, 4):
        codes = random_codes(10, channels)
        write_with_oiio(f"c{channels}.dpx", codes, 10)
        pixels, fmt = read_image(f"c{channels}.dpx")
        assert fmt == PixelFormat(".dpx", "uint10", channels)
        np.testing.assert_array_equal(np.rint(pixels * 1023), codes)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16_bit_tiff_keeps_codes_alpha_and_metadata(tmp_path: Path, channels: int):
    codes = random_codes(16, channels)
    attributes = {"Artist": ("string", "paint dept"), "ImageDescription": ("string", "sh010 cleanup"),
                  "compression": ("string", "lzw")}
    write_with_oiio("paint.tif", codes, 16, attributes)

    pixels, fmt, extras = read_with_extras("paint.tif")
    assert fmt == PixelFormat(".tif", "uint16", channels)
    np.testing.assert_array_equal(np.rint(pixels * 65535), codes)  # alpha as stored, not premultiplied

    write_image("out.tiff", pixels, fmt, extras)
    written, spec = read_with_oiio("out.tiff")
    np.testing.assert_array_equal(written, codes)
    assert spec.getattribute("Artist") == "paint dept"
    assert spec.getattribute("ImageDescription") == "sh010 cleanup"
    assert spec.getattribute("compression") == "lzw"


def test_tiff_alpha_keeps_its_association(tmp_path: Path):
    codes = random_codes(16, 4)
    write_with_oiio("straight.tif", codes, 16, {"oiio:UnassociatedAlpha": ("int", 1)})
    pixels, fmt, extras = read_with_extras("straight.tif")
    np.testing.assert_array_equal(np.rint(pixels * 65535), codes)  # straight colour, not premultiplied
    write_image("out.tif", pixels, fmt, extras)
    # A reader that premultiplies straight alpha does the same to both files: same codes, same association.
    np.testing.assert_array_equal(read_with_oiio("out.tif")[0], read_with_oiio("straight.tif")[0])
    assert not np.array_equal(read_with_oiio("out.tif")[0], codes)


def test_tiff_from_another_writer_reads_the_same(tmp_path: Path):
    codes = random_codes(16, 4).astype(np.uint16)
    assert cv2.imwrite("opencv.tif", cv2.cvtColor(codes, cv2.COLOR_RGBA2BGRA))
    pixels, fmt = read_image("opencv.tif")
    assert fmt == PixelFormat(".tif", "uint16", 4)
    np.testing.assert_array_equal(np.rint(pixels * 65535), codes)


def test_half_tiff_reads_as_float(tmp_path: Path):
    values = (RNG.standard_normal((4, 5, 3)) * 8).astype(np.float16)
    spec = oiio.ImageSpec(5, 4, 3, "half")
    output = oiio.ImageOutput.create("half.tif")
    output.open("half.tif", spec)
    output.write_image(values.astype(np.float32))
    output.close()
    pixels, fmt = read_image("half.tif")
    assert fmt == PixelFormat(".tif", "float", 3)
    np.testing.assert_array_equal(pixels, values.astype(np.float32))


# ---- errors: one line naming the file ----


@pytest.mark.parametrize("name", ["scan.dpx", "paint.tif"])
def test_a_file_that_is_not_an_image_is_one_line(tmp_path: Path, name: str):
    Path(name).write_bytes(b"\x00" * 64 + b"not pixels")
    with pytest.raises(FrameError) as error:
        read_image(name)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"'{name}' is not a readable ")
    assert "corrupt or truncated" in message


def test_a_float_dpx_is_refused_in_one_line(tmp_path: Path):
    spec = oiio.ImageSpec(4, 3, 3, "float")
    output = oiio.ImageOutput.create("float.dpx")
    output.open("float.dpx", spec)
    output.write_image(np.zeros((3, 4, 3), np.float32))
    output.close()
    with pytest.raises(FrameError, match=r"^'float\.dpx' holds 32-bit float samples; shotfit reads 8/10/12/16-bit DPX$"):
        read_image("float.dpx")


def test_a_tiff_with_five_channels_is_refused_in_one_line(tmp_path: Path):
    spec = oiio.ImageSpec(4, 3, 5, "uint8")
    output = oiio.ImageOutput.create("five.tif")
    output.open("five.tif", spec)
    output.write_image(np.zeros((3, 4, 5), np.float32))
    output.close()
    with pytest.raises(FrameError, match=r"^'five\.tif' has 5 channels \(.*\); shotfit reads grey, RGB or RGBA$"):
        read_image("five.tif")


def test_an_unwritable_dpx_leaves_nothing_behind(tmp_path: Path):
    Path("out").write_text("a file where a folder should be")
    with pytest.raises(Exception, match="is a file, not a folder"):
        write_image("out/x.dpx", np.zeros((2, 2, 3), np.float32), PixelFormat(".dpx", "uint10", 3))
    assert sorted(p.name for p in Path(".").iterdir()) == ["out"]
