"""Single frames: exact round trips, one-line errors naming the file, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import OpenEXR
import pytest

from shotfit.errors import ConfigError, FrameError, ShotfitError
from shotfit.io import PixelFormat, hold_native_output, read_image, write_image

RNG = np.random.default_rng(0)


def codes(dtype: str, channels: int, height: int = 6, width: int = 9) -> np.ndarray:
    """Every code value a dtype can hold is possible; the corners hold the extremes."""
    top = np.iinfo(dtype).max
    values = RNG.integers(0, top, size=(height, width, channels), endpoint=True).astype(dtype)
    values[0, 0], values[-1, -1] = 0, top
    return values


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_integer_files_round_trip_bit_exact(tmp_path: Path, ext: str, dtype: str, channels: int):
    original = codes(dtype, channels)
    fmt = PixelFormat(ext, dtype, channels)
    path = tmp_path / f"frame{ext}"
    write_image(path, original / np.float32(np.iinfo(dtype).max), fmt)

    pixels, read_fmt = read_image(path)
    assert read_fmt == fmt
    assert pixels.dtype == np.float32 and pixels.shape == original.shape
    assert 0.0 <= pixels.min() and pixels.max() <= 1.0
    # Read -> write -> read again gives the very same codes.
    write_image(tmp_path / f"again{ext}", pixels, read_fmt)
    again, _ = read_image(tmp_path / f"again{ext}")
    np.testing.assert_array_equal(np.rint(again * np.iinfo(dtype).max).astype(dtype), original)
    np.testing.assert_array_equal(again, pixels)


def test_rgb_channel_order_is_kept(tmp_path: Path):
    red = np.zeros((2, 3, 3), np.float32)
    red[..., 0] = 1.0
    write_image(tmp_path / "red.png", red, PixelFormat(".png", "uint8", 3))
    pixels, _ = read_image(tmp_path / "red.png")
    np.testing.assert_array_equal(pixels, red)


def test_values_outside_unit_range_are_clipped_and_rounded(tmp_path: Path):
    pixels = np.array([[[-0.5], [2.0], [0.5 / 255 + 1e-4], [0.5 / 255 - 1e-4]]], np.float32)
    write_image(tmp_path / "clip.png", pixels, PixelFormat(".png", "uint8", 1))
    read, _ = read_image(tmp_path / "clip.png")
    np.testing.assert_array_equal(np.rint(read[0, :, 0] * 255), [0, 255, 1, 0])


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path: Path, channels: int):
    smooth = np.linspace(0.0, 1.0, 16 * 16 * channels, dtype=np.float32).reshape(16, 16, channels)
    write_image(tmp_path / "x.jpg", smooth, PixelFormat(".jpg", "uint8", channels))
    pixels, fmt = read_image(tmp_path / "x.jpg")
    assert fmt == PixelFormat(".jpg", "uint8", channels)
    assert np.abs(pixels - smooth).mean() < 2 / 255


@pytest.mark.parametrize("dtype", ["half", "float"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_exr_round_trip_keeps_scene_linear_values(tmp_path: Path, dtype: str, channels: int):
    linear = (RNG.standard_normal((5, 7, channels)) * 40).astype(np.float32)
    linear[0, 0, 0] = 1234.5  # far above 1.0
    if dtype == "half":
        linear = linear.astype(np.float16).astype(np.float32)  # values half can hold: must survive exactly
    fmt = PixelFormat(".exr", dtype, channels)
    write_image(tmp_path / "x.exr", linear, fmt)
    pixels, read_fmt = read_image(tmp_path / "x.exr")
    assert read_fmt == PixelFormat(".exr", dtype, channels, "zip")
    np.testing.assert_array_equal(pixels, linear)


def test_float_tiff_keeps_scene_linear_values(tmp_path: Path):
    linear = (RNG.standard_normal((4, 5, 3)) * 10).astype(np.float32)
    write_image("x.tif", linear, PixelFormat(".tif", "float", 3))
    pixels, fmt = read_image("x.tif")
    assert fmt == PixelFormat(".tif", "float", 3) and fmt.is_float
    np.testing.assert_array_equal(pixels, linear)


def test_exr_keeps_its_compression_for_writing_back(tmp_path: Path):
    write_image(tmp_path / "piz.exr", np.ones((4, 4, 3), np.float32), PixelFormat(".exr", "half", 3, "piz"))
    _, fmt = read_image(tmp_path / "piz.exr")
    assert fmt.compression == "piz"


def test_exr_with_mixed_half_and_float_channels_reads_as_float(tmp_path: Path):
    rgb = np.full((3, 4), 2.5, np.float16)
    alpha = np.full((3, 4), 0.25, np.float32)
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"R": rgb, "G": rgb, "B": rgb, "A": alpha}).write(
        str(tmp_path / "mixed.exr")
    )
    pixels, fmt = read_image(tmp_path / "mixed.exr")
    assert fmt.dtype == "float" and fmt.channels == 4
    np.testing.assert_array_equal(pixels[0, 0], [2.5, 2.5, 2.5, 0.25])


def test_exr_pixels_are_its_data_window(tmp_path: Path):
    values = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    windows = {
        "dataWindow": (np.array([1, 1], np.int32), np.array([3, 2], np.int32)),  # x, y of both corners
        "displayWindow": (np.array([0, 0], np.int32), np.array([4, 3], np.int32)),
    }
    OpenEXR.File(windows, {"Y": values}).write("cropped.exr")
    pixels, fmt = read_image("cropped.exr")  # neither padded to the display window nor cropped
    assert fmt.channels == 1 and pixels.shape == (2, 3, 1)
    np.testing.assert_array_equal(pixels[..., 0], values)


def test_half_output_clips_to_the_largest_half(tmp_path: Path):
    write_image(tmp_path / "big.exr", np.full((2, 2, 1), 1e6, np.float32), PixelFormat(".exr", "half", 1))
    pixels, _ = read_image(tmp_path / "big.exr")
    assert pixels.max() == 65504.0


# ---- errors: one line, naming the file ----


def assert_one_line_naming(error: pytest.ExceptionInfo, name: str, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message and f"'{name}'" in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_file(tmp_path: Path):
    with pytest.raises(FrameError) as error:
        read_image("plate/0001.png")
    assert_one_line_naming(error, "plate/0001.png", "does not exist")


def test_unsupported_type():
    with pytest.raises(FrameError) as error:
        read_image("scan.cin")
    assert_one_line_naming(error, "scan.cin", "not a supported image type", ".exr", ".dpx")


@pytest.mark.parametrize("ext", [".png", ".tif", ".jpg", ".exr", ".dpx"])
def test_not_an_image(tmp_path: Path, ext: str):
    Path(f"notes{ext}").write_text("not pixels")
    with pytest.raises(FrameError) as error:
        read_image(f"notes{ext}")
    assert_one_line_naming(error, f"notes{ext}", "not a readable")


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".exr", ".dpx"])
def test_an_empty_file_is_named_as_empty(tmp_path: Path, ext: str):
    Path(f"frame{ext}").write_bytes(b"")
    with pytest.raises(FrameError) as error:
        read_image(f"frame{ext}")
    assert_one_line_naming(error, f"frame{ext}", "is empty (0 bytes)")


def test_jpeg_that_is_not_jpeg_data_says_so_without_python_objects(tmp_path: Path):
    Path("frame.jpg").write_text("not pixels")
    with pytest.raises(FrameError) as error:
        read_image("frame.jpg")
    assert str(error.value) == "'frame.jpg' is not a readable JPEG image (corrupt or truncated)"


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".exr", ".dpx"])
@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_files_are_rejected(tmp_path: Path, ext: str, keep: float):
    noise = RNG.random((64, 64, 3)).astype(np.float32)
    dtype = {".exr": "half", ".jpg": "uint8", ".dpx": "uint10"}.get(ext, "uint16")
    write_image(f"whole{ext}", noise, PixelFormat(ext, dtype, 3))
    data = Path(f"whole{ext}").read_bytes()
    Path(f"cut{ext}").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(FrameError) as error:
        read_image(f"cut{ext}")
    assert_one_line_naming(error, f"cut{ext}", "corrupt or truncated")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_exr_with_nan_or_inf_is_rejected_naming_the_channel(tmp_path: Path, bad: float):
    green = np.zeros((2, 3), np.float32)
    green[1, 2] = bad
    zero = np.zeros((2, 3), np.float32)
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"R": zero, "G": green, "B": zero}).write("nan.exr")
    with pytest.raises(FrameError) as error:
        read_image("nan.exr")
    assert_one_line_naming(error, "nan.exr", "NaN/Inf", "channel G")


def test_exr_without_colour_channels(tmp_path: Path):
    OpenEXR.File({}, {"Z": np.zeros((2, 2), np.float32)}).write("depth.exr")
    with pytest.raises(FrameError) as error:
        read_image("depth.exr")
    assert_one_line_naming(error, "depth.exr", "no R,G,B or Y channels", "Z")


def test_writing_nan_is_refused(tmp_path: Path):
    pixels = np.full((2, 2, 3), np.nan, np.float32)
    with pytest.raises(FrameError) as error:
        write_image("out/x.exr", pixels, PixelFormat(".exr", "half", 3))
    assert_one_line_naming(error, "out/x.exr", "NaN/Inf")
    assert not Path("out/x.exr").exists()


def test_impossible_formats_are_config_errors():
    with pytest.raises(ConfigError, match="cannot hold 'uint16'"):
        PixelFormat(".jpg", "uint16", 3)
    with pytest.raises(ConfigError, match="cannot hold 4 channels"):
        PixelFormat(".jpg", "uint8", 4)
    with pytest.raises(ConfigError, match="not an EXR compression"):
        PixelFormat(".exr", "half", 3, "gzip")


# ---- writing: folders and atomicity ----


def test_write_creates_folders_and_leaves_no_temporary(tmp_path: Path):
    write_image("renders/v001/frame.0001.png", np.zeros((3, 3, 3)), PixelFormat(".png", "uint8", 3))
    assert os.listdir("renders/v001") == ["frame.0001.png"]


def test_existing_file_is_replaced_whole(tmp_path: Path):
    fmt = PixelFormat(".png", "uint16", 3)
    write_image("x.png", RNG.random((64, 64, 3)), fmt)
    small = np.full((2, 2, 3), 0.5, np.float32)
    write_image("x.png", small, fmt)
    pixels, _ = read_image("x.png")
    assert pixels.shape == (2, 2, 3)
    assert os.listdir(".") == ["x.png"]


def test_failed_write_keeps_the_old_file_and_no_temporary(monkeypatch: pytest.MonkeyPatch):
    fmt = PixelFormat(".png", "uint8", 1)
    write_image("x.png", np.ones((2, 2, 1)), fmt)

    def disk_full(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch, pytest.raises(ShotfitError) as error:
        patch.setattr(os, "replace", disk_full)
        write_image("x.png", np.zeros((2, 2, 1)), fmt)
    assert_one_line_naming(error, "x.png", "No space left")
    assert os.listdir(".") == ["x.png"]
    assert read_image("x.png")[0].min() == 1.0


def test_folder_that_is_a_file_is_named(tmp_path: Path):
    Path("out").write_text("a file where a folder should be")
    with pytest.raises(ShotfitError) as error:
        write_image("out/x.png", np.zeros((2, 2, 3)), PixelFormat(".png", "uint8", 3))
    assert_one_line_naming(error, "out/", "is a file, not a folder")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_folder_is_named(tmp_path: Path):
    Path("locked").mkdir(mode=0o555)
    try:
        with pytest.raises(ShotfitError) as error:
            write_image("locked/x.png", np.zeros((2, 2, 3)), PixelFormat(".png", "uint8", 3))
    finally:
        Path("locked").chmod(0o755)
    assert_one_line_naming(error, "locked/", "not writable")


def test_suffix_contradicting_format_is_a_bug():
    with pytest.raises(ValueError, match="suffix should be .exr"):
        write_image("x.png", np.zeros((2, 2, 3)), PixelFormat(".exr", "half", 3))
    with pytest.raises(ValueError, match=r"\(H, W, 4\)"):
        write_image("x.png", np.zeros((2, 2, 3)), PixelFormat(".png", "uint8", 4))


@pytest.mark.parametrize("held", [False, True], ids=["library", "entry-point"])
def test_decoders_output_is_held_only_when_an_entry_point_asks(tmp_path: Path, capfd, held: bool):
    # libpng prints its complaint about a damaged file straight to file descriptor 2: only the process's
    # owner (the CLI) may redirect that descriptor, so a library call in a host leaves it alone.
    write_image("whole.png", RNG.random((64, 64, 3)).astype(np.float32), PixelFormat(".png", "uint16", 3))
    data = Path("whole.png").read_bytes()
    Path("cut.png").write_bytes(data[: len(data) * 49 // 50])
    hold_native_output(held)
    try:
        with pytest.raises(FrameError):
            read_image("cut.png")
    finally:
        hold_native_output(False)
    assert bool(capfd.readouterr().err) is not held
