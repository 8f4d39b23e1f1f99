"""EXR plates as compositors make them: overscan, AOV layers, header attributes, every compression.

Inputs are written with the OpenEXR module itself and outputs read back with it, so shotfit's own
reader and writer never vouch for each other.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from shotfit.errors import FrameError
from shotfit.io import FrameExtras, PixelFormat, Window, open_shot, read_image, read_with_extras, write_image
from shotfit.io.video import review_frame

RNG = np.random.default_rng(7)


def corners(x_min: int, y_min: int, x_max: int, y_max: int) -> tuple[np.ndarray, np.ndarray]:
    return np.array([x_min, y_min], np.int32), np.array([x_max, y_max], np.int32)


# A 6x4 format; the data window reaches 2 px beyond it left and 1 px above and below (overscan).
DISPLAY = (0, 0, 5, 3)
OVERSCAN = (-2, -1, 5, 4)
INSIDE = (1, 1, 3, 2)  # a data window smaller than the format (a CG element's bounding box)

ATTRIBUTES = {
    "owner": "Plate Dept",
    "comments": "sh010 plate, graded",
    "chromaticities": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),  # ACES AP1
    "framesPerSecond": Fraction(24000, 1001),
    "timeCode": OpenEXR.TimeCode(1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
    "studio:shot": "sh010",
    "studio:take": 3,
    "studio:lens_mm": 35.0,
    "studio:camera": np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [4, 5, 6, 1]], np.float32),
}


def plate_exr(path: Path, data: tuple[int, int, int, int], display: tuple[int, int, int, int] = DISPLAY,
              compression: OpenEXR.Compression = OpenEXR.PIZ_COMPRESSION, extra: bool = True) -> dict:
    """An RGBA half plate with a float Z, a half 'diffuse' AOV and a uint32 object id; returns its channels."""
    height, width = data[3] - data[1] + 1, data[2] - data[0] + 1
    rgba = (RNG.random((height, width, 4)) * 4).astype(np.float16)
    channels = {name: rgba[..., i].copy() for i, name in enumerate("RGBA")}
    if extra:
        channels.update({
            "Z": (RNG.random((height, width)) * 100).astype(np.float32),
            "diffuse.R": (RNG.random((height, width))).astype(np.float16),
            "diffuse.G": (RNG.random((height, width))).astype(np.float16),
            "diffuse.B": (RNG.random((height, width))).astype(np.float16),
            "objectId": RNG.integers(0, 2**31, (height, width)).astype(np.uint32),
        })
    header = {"compression": compression, "type": OpenEXR.scanlineimage, "dataWindow": corners(*data),
              "displayWindow": corners(*display), **(ATTRIBUTES if extra else {})}
    OpenEXR.File(dict(header), dict(channels)).write(str(path))  # copies: the binding changes what it is given
    return channels


def exr_part(path: Path) -> OpenEXR.Part:
    return OpenEXR.File(str(path), separate_channels=True).parts[0]


@pytest.mark.parametrize("data", [OVERSCAN, INSIDE, DISPLAY], ids=["overscan", "inside", "same"])
def test_pixels_are_the_data_window_and_both_windows_survive_a_write(tmp_path: Path, data):
    channels = plate_exr(Path("in.exr"), data)
    pixels, fmt, extras = read_with_extras("in.exr")
    assert fmt == PixelFormat(".exr", "half", 4, "piz")
    assert pixels.shape == (data[3] - data[1] + 1, data[2] - data[0] + 1, 4)
    np.testing.assert_array_equal(pixels[..., 0], channels["R"].astype(np.float32))  # nothing cropped or padded
    assert extras.data_window == Window(*data) and extras.display_window == Window(*DISPLAY)

    write_image("out.exr", pixels * 2, fmt, extras)
    part = exr_part(Path("out.exr"))
    assert [a.tolist() for a in part.header["dataWindow"]] == [list(data[:2]), list(data[2:])]
    assert [a.tolist() for a in part.header["displayWindow"]] == [list(DISPLAY[:2]), list(DISPLAY[2:])]
    assert str(part.header["compression"]).endswith("PIZ_COMPRESSION")
    np.testing.assert_array_equal(part.channels["A"].pixels, (channels["A"].astype(np.float32) * 2).astype(np.float16))


def test_extra_channels_pass_through_untouched(tmp_path: Path):
    channels = plate_exr(Path("in.exr"), OVERSCAN)
    pixels, fmt, extras = read_with_extras("in.exr")
    assert sorted(extras.channels) == ["Z", "diffuse.B", "diffuse.G", "diffuse.R", "objectId"]
    write_image("out.exr", pixels, fmt, extras)
    written = exr_part(Path("out.exr")).channels
    assert sorted(written) == sorted(channels)
    for name in ("Z", "diffuse.R", "diffuse.G", "diffuse.B", "objectId"):
        assert written[name].pixels.dtype == channels[name].dtype, name
        np.testing.assert_array_equal(written[name].pixels, channels[name])


def test_header_attributes_survive_a_write(tmp_path: Path):
    plate_exr(Path("in.exr"), DISPLAY)
    pixels, fmt, extras = read_with_extras("in.exr")
    write_image("out.exr", pixels, fmt, extras)
    header = exr_part(Path("out.exr")).header
    assert header["owner"] == "Plate Dept" and header["comments"] == "sh010 plate, graded"
    np.testing.assert_allclose(header["chromaticities"], ATTRIBUTES["chromaticities"], rtol=1e-6)
    assert header["framesPerSecond"] == Fraction(24000, 1001)
    assert (header["timeCode"].hours, header["timeCode"].minutes, header["timeCode"].seconds,
            header["timeCode"].frame) == (1, 2, 3, 4)
    assert header["studio:shot"] == "sh010" and header["studio:take"] == 3 and header["studio:lens_mm"] == 35.0
    np.testing.assert_array_equal(header["studio:camera"], ATTRIBUTES["studio:camera"])


def test_extras_of_another_file_type_are_ignored(tmp_path: Path):
    plate_exr(Path("in.exr"), OVERSCAN)
    pixels, _, extras = read_with_extras("in.exr")
    write_image("out.png", np.clip(pixels, 0, 1), PixelFormat(".png", "uint16", 4), extras)
    assert read_image("out.png")[0].shape == pixels.shape


def test_pixels_that_do_not_fill_the_data_window_are_a_bug(tmp_path: Path):
    plate_exr(Path("in.exr"), OVERSCAN)
    pixels, fmt, extras = read_with_extras("in.exr")
    with pytest.raises(ValueError, match="do not fill the data window"):
        write_image("out.exr", pixels[1:], fmt, extras)
    assert not Path("out.exr").exists()


def test_without_extras_the_windows_start_at_zero(tmp_path: Path):
    write_image("new.exr", np.ones((3, 5, 3), np.float32), PixelFormat(".exr", "float", 3))
    pixels, fmt, extras = read_with_extras("new.exr")
    assert extras.data_window == extras.display_window == Window(0, 0, 4, 2)
    assert extras.channels == {} and fmt.dtype == "float"


COMPRESSIONS = [name for name in OpenEXR.Compression.__members__ if not name.startswith("NUM_")]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_every_compression_openexr_writes_is_read_and_kept(tmp_path: Path, compression: str):
    channels = plate_exr(Path("in.exr"), OVERSCAN, compression=getattr(OpenEXR, compression), extra=False)
    pixels, fmt, extras = read_with_extras("in.exr")
    name = {"NO_COMPRESSION": "none"}.get(compression, compression.removesuffix("_COMPRESSION").lower())
    assert fmt.compression == name
    lossy = name in ("b44", "b44a", "dwaa", "dwab")
    stored = exr_part(Path("in.exr")).channels["G"].pixels.astype(np.float32)
    np.testing.assert_array_equal(pixels[..., 1], stored)  # what the file holds, decoded
    if not lossy:
        np.testing.assert_array_equal(stored, channels["G"].astype(np.float32))
    write_image("out.exr", pixels, fmt, extras)
    assert str(exr_part(Path("out.exr")).header["compression"]).endswith(compression)


def test_a_tiled_exr_reads_and_writes_back_as_scanlines(tmp_path: Path):
    values = RNG.random((20, 30)).astype(np.float32)
    tiles = OpenEXR.TileDescription()
    tiles.xSize, tiles.ySize, tiles.mode = 16, 16, OpenEXR.ONE_LEVEL
    header = {"type": OpenEXR.tiledimage, "tiles": tiles, "compression": OpenEXR.ZIP_COMPRESSION}
    OpenEXR.File(header, {"R": values, "G": values, "B": values}).write("tiled.exr")
    pixels, fmt, extras = read_with_extras("tiled.exr")
    np.testing.assert_array_equal(pixels[..., 2], values)
    write_image("out.exr", pixels, fmt, extras)
    np.testing.assert_array_equal(read_image("out.exr")[0], pixels)
    assert exr_part(Path("out.exr")).header["type"] == OpenEXR.scanlineimage


def test_review_frames_show_the_display_window(tmp_path: Path):
    plate_exr(Path("in.exr"), OVERSCAN)
    pixels, fmt, extras = read_with_extras("in.exr")
    shown = review_frame(pixels, fmt, extras)
    assert shown.shape == (4, 6, 3) and 0.0 <= shown.min() and shown.max() <= 1.0
    # display pixel (0, 0) is data pixel (2, 1): overscan cropped, not squeezed in
    np.testing.assert_array_equal(shown[0, 0], np.clip(pixels[1, 2, :3], 0, 1))


def test_a_truncated_plate_with_overscan_is_one_line(tmp_path: Path):
    plate_exr(Path("in.exr"), OVERSCAN)
    data = Path("in.exr").read_bytes()
    Path("cut.exr").write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(FrameError, match=r"^'cut\.exr' is not a readable EXR \(corrupt or truncated"):
        read_with_extras("cut.exr")


def test_frame_extras_describe_their_windows():
    extras = FrameExtras(".exr", data_window=Window(-2, -1, 5, 4), display_window=Window(0, 0, 5, 3))
    assert extras.windows() == "data window (-2,-1)-(5,4), display window (0,0)-(5,3)"
    assert Window(-8, -8, 1927, 1087).size == (1096, 1936)


def test_a_shot_whose_data_windows_change_size_names_the_window(tmp_path: Path):
    Path("cg").mkdir()
    plate_exr(Path("cg/el.0001.exr"), (0, 0, 5, 3), extra=False)
    plate_exr(Path("cg/el.0002.exr"), (1, 1, 4, 3), extra=False)  # a CG element's bounding box, per frame
    shot = open_shot("cg/el.####.exr")
    assert shot.read(1).shape == (4, 6, 4)
    with pytest.raises(FrameError) as error:
        shot.read(2)
    assert str(error.value) == ("'cg/el.0002.exr' is 4x3 RGBA float but the shot's first frame 'cg/el.0001.exr' "
                                "is 6x4 RGBA float (data window (1,1)-(4,3): a shot's EXRs need data windows "
                                "of one size)")
