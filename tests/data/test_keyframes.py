"""Keyframe pairing: by frame number, every mismatch a one-line error naming the files, tensors in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
import pytest
import torch

from shotfit.data.keyframes import keyframes_to_tensors, model_channels, pair_keyframes
from shotfit.errors import FrameError
from shotfit.io import ColourPipeline, PixelFormat, open_shot, read_image, resolve_colour, write_image

PNG = PixelFormat(".png", "uint8", 3)
GREY = PixelFormat(".png", "uint8", 1)
RGBA = PixelFormat(".png", "uint8", 4)
EXR = PixelFormat(".exr", "half", 3)


def picture(frame: int, height: int = 20, width: int = 24, channels: int = 3) -> np.ndarray:
    """Distinct per frame: a gradient plus the frame number, so a mix-up of frames shows."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    layers = [xx / width, yy / height, np.full_like(xx, frame / 10.0), (xx + yy) % 2]
    return np.stack(layers[:channels], axis=-1).astype(np.float32)


def colour(fmt: PixelFormat) -> ColourPipeline:
    """The default colour pipeline of ``fmt``'s data (sRGB as is; scene-linear EXR into ACEScct)."""
    return ColourPipeline(resolve_colour(fmt))


def write(path: Path, pixels: np.ndarray, fmt: PixelFormat = PNG) -> Path:
    write_image(path, pixels, fmt)
    return path


@pytest.fixture
def plate(tmp_path) -> Path:
    """Frames 1-6 of a 24x20 RGB shot in 'plate/'."""
    for frame in range(1, 7):
        write(tmp_path / "plate" / f"sh010_plate.{frame:04d}.png", picture(frame))
    return Path("plate")


def one_line(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- pairing ------------------------------------------------------------------------------------

def test_keyframes_pair_with_the_source_frame_of_the_same_number(plate):
    # the artist's files are named differently and numbered without padding
    write(Path("kf/fix_v3_5.png"), 1 - picture(5))
    write(Path("kf/fix_v3_2.png"), 1 - picture(2))
    pairs = pair_keyframes(open_shot(plate), open_shot("kf"))
    assert [p.frame for p in pairs] == [2, 5]
    for pair in pairs:
        expected_source, _ = read_image(plate / f"sh010_plate.{pair.frame:04d}.png")
        np.testing.assert_array_equal(pair.source, expected_source)
        np.testing.assert_allclose(pair.target, 1 - picture(pair.frame), atol=0.5 / 255)
        assert pair.mask is None


def test_keyframe_without_a_source_frame_names_both(plate):
    write(Path("kf/sh010_plate.0002.png"), picture(2))
    write(Path("kf/sh010_plate.0042.png"), picture(42))
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"))
    assert one_line(excinfo) == "keyframe 'kf/sh010_plate.0042.png' has no source frame 42 in 'plate'"


def test_keyframe_of_another_size_names_both_files_and_sizes(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3, height=20, width=26))
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"))
    assert one_line(excinfo) == ("keyframe 'kf/sh010_plate.0003.png' is 26x20 but source frame "
                                 "'plate/sh010_plate.0003.png' is 24x20")


def test_grey_keyframe_for_a_colour_source_names_both_files(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3, channels=1), GREY)
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"))
    assert one_line(excinfo) == ("keyframe 'kf/sh010_plate.0003.png' has 1 channels but source frame "
                                 "'plate/sh010_plate.0003.png' has 3")


def test_float_keyframes_for_an_integer_source_are_refused(plate):
    write(Path("kf/sh010_plate.0003.exr"), picture(3), EXR)
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"))
    assert one_line(excinfo) == ("keyframes in 'kf' are float (scene-linear) data but the source 'plate' is "
                                 "integer (display): export the keyframes in the source's format")


def test_integer_keyframes_for_a_float_source_are_refused(tmp_path):
    write(Path("plate/p.0001.exr"), picture(1), EXR)
    write(Path("kf/p.0001.png"), picture(1))
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot("plate"), open_shot("kf"))
    assert "keyframes in 'kf' are integer (display) data but the source 'plate' is float" in one_line(excinfo)


def exr_with_windows(path: Path, data: tuple[int, int, int, int], display: tuple[int, int, int, int]) -> None:
    """A half RGB EXR whose data window is ``data`` (x0, y0, x1, y1) in the format ``display``, via OpenEXR."""
    height, width = data[3] - data[1] + 1, data[2] - data[0] + 1
    plane = picture(1, height, width)[..., 0].astype(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    OpenEXR.File({"dataWindow": (np.array(data[:2], np.int32), np.array(data[2:], np.int32)),
                  "displayWindow": (np.array(display[:2], np.int32), np.array(display[2:], np.int32))},
                 {"R": plane, "G": plane, "B": plane}).write(str(path))


def test_exr_keyframes_pair_by_their_data_window_overscan_included(tmp_path):
    exr_with_windows(Path("plate/p.0001.exr"), (-4, -4, 27, 23), (0, 0, 23, 19))
    exr_with_windows(Path("kf/p.0001.exr"), (-4, -4, 27, 23), (0, 0, 23, 19))
    (pair,) = pair_keyframes(open_shot("plate"), open_shot("kf"))
    assert pair.source.shape == pair.target.shape == (28, 32, 3)


@pytest.mark.parametrize(("key_data", "key_display"), [
    ((0, 0, 23, 19), (0, 0, 23, 19)),  # the artist exported the format only: the overscan is gone
    ((-2, -4, 29, 23), (0, 0, 23, 19)),  # same size, shifted
    ((-4, -4, 27, 23), (0, 0, 19, 19)),  # same pixels, another format
])
def test_exr_keyframe_with_other_windows_names_both_files_and_windows(tmp_path, key_data, key_display):
    exr_with_windows(Path("plate/p.0001.exr"), (-4, -4, 27, 23), (0, 0, 23, 19))
    exr_with_windows(Path("kf/p.0001.exr"), key_data, key_display)
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot("plate"), open_shot("kf"))
    data, display = "({},{})-({},{})".format(*key_data), "({},{})-({},{})".format(*key_display)
    assert one_line(excinfo) == (f"keyframe 'kf/p.0001.exr' has data window {data}, display window {display} "
                                 "but source frame 'plate/p.0001.exr' has data window (-4,-4)-(27,23), "
                                 "display window (0,0)-(23,19)")


def test_rgba_keyframes_pair_with_an_rgb_source(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3, channels=4), RGBA)
    (pair,) = pair_keyframes(open_shot(plate), open_shot("kf"))
    assert pair.target.shape == (20, 24, 4)  # as read; the alpha is dropped on the way to the network


# --- masks --------------------------------------------------------------------------------------

def test_mask_without_a_keyframe_names_the_mask(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3))
    write(Path("masks/m.0003.png"), np.ones((20, 24, 1), np.float32), GREY)
    write(Path("masks/m.0005.png"), np.ones((20, 24, 1), np.float32), GREY)
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"), open_shot("masks"))
    assert one_line(excinfo) == "mask 'masks/m.0005.png' has no keyframe 5 in 'kf'"


def test_keyframe_without_a_mask_names_the_keyframe(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3))
    write(Path("kf/sh010_plate.0004.png"), picture(4))
    write(Path("masks/m.0003.png"), np.ones((20, 24, 1), np.float32), GREY)
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"), open_shot("masks"))
    assert one_line(excinfo) == "keyframe 'kf/sh010_plate.0004.png' has no mask 4 in 'masks'"


def test_mask_of_another_size_names_both_files(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3))
    write(Path("masks/m.0003.png"), np.ones((10, 12, 1), np.float32), GREY)
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"), open_shot("masks"))
    assert one_line(excinfo) == "mask 'masks/m.0003.png' is 12x10 but keyframe 'kf/sh010_plate.0003.png' is 24x20"


@pytest.mark.parametrize(("fmt", "pixels", "expected"), [
    (GREY, np.full((20, 24, 1), 0.4), 0.4),                                    # grey: as is
    (RGBA, np.concatenate([np.zeros((20, 24, 3)), np.full((20, 24, 1), 0.8)], axis=2), 0.8),  # RGBA: its alpha
    (PNG, np.stack([np.full((20, 24), v) for v in (0.2, 0.4, 0.9)], axis=2), 0.5),  # RGB: the mean
])
def test_a_mask_is_read_as_one_weight_per_pixel(plate, fmt, pixels, expected):
    write(Path("kf/sh010_plate.0003.png"), picture(3))
    write(Path("masks/m.0003.png"), pixels.astype(np.float32), fmt)
    (pair,) = pair_keyframes(open_shot(plate), open_shot("kf"), open_shot("masks"))
    assert pair.mask.shape == (20, 24, 1)
    np.testing.assert_allclose(pair.mask, expected, atol=1 / 255)


def test_alpha_masks_are_each_keyframes_own_alpha(plate):
    keyframe = picture(3, channels=4)
    keyframe[..., 3] = 0.0
    keyframe[:, :10, 3] = 1.0  # painted: the left ten columns
    write(Path("kf/sh010_plate.0003.png"), keyframe, RGBA)
    (pair,) = pair_keyframes(open_shot(plate), open_shot("kf"), "alpha")
    assert pair.mask.shape == (20, 24, 1)
    assert pair.mask[:, :10].min() == 1.0 and pair.mask[:, 10:].max() == 0.0
    # 8-bit PNG colour is straight (not premultiplied): kept as painted
    np.testing.assert_allclose(pair.target[..., :3], keyframe[..., :3], atol=1 / 255)


def test_alpha_masks_unpremultiply_float_keyframes(tmp_path):
    write(Path("plate/p.0001.exr"), picture(1) * 4.0, EXR)
    colour = picture(1) * 2.0
    alpha = np.full((20, 24, 1), 0.5, np.float32)
    alpha[:, :6] = 0.0
    write(Path("kf/p.0001.exr"), np.concatenate([colour * alpha, alpha], axis=2), PixelFormat(".exr", "float", 4))
    (pair,) = pair_keyframes(open_shot("plate"), open_shot("kf"), "alpha")
    # EXR colour is premultiplied: where the paint's alpha is 0.5 the artist's colour is twice what is stored
    np.testing.assert_allclose(pair.target[:, 6:, :3], colour[:, 6:], rtol=1e-6)
    np.testing.assert_array_equal(pair.mask[..., 0], alpha[..., 0])


def test_alpha_masks_need_an_alpha_channel(plate):
    write(Path("kf/sh010_plate.0003.png"), picture(3))
    with pytest.raises(FrameError) as excinfo:
        pair_keyframes(open_shot(plate), open_shot("kf"), "alpha")
    assert one_line(excinfo) == ("'kf/sh010_plate.0003.png' has no alpha channel to use as the mask "
                                 "(3 channels); give a mask sequence instead")


# --- tensors ------------------------------------------------------------------------------------

def test_tensors_are_nchw_in_minus_one_to_one(plate):
    write(Path("kf/sh010_plate.0002.png"), 1 - picture(2))
    write(Path("kf/sh010_plate.0006.png"), 1 - picture(6))
    pairs = pair_keyframes(open_shot(plate), open_shot("kf"))
    kf = keyframes_to_tensors(pairs, colour(PNG), torch.device("cpu"))
    assert kf.frames == (2, 6)
    assert kf.sources.shape == kf.targets.shape == (2, 3, 20, 24)
    assert kf.sources.dtype == torch.float32 and kf.masks is None
    for tensor in (kf.sources, kf.targets):
        assert tensor.min() >= -1 and tensor.max() <= 1
    # pixel (row 5, column 7) of frame 6's source, channel by channel: 2x - 1 of what is on disk
    on_disk, _ = read_image(plate / "sh010_plate.0006.png")
    expected = torch.from_numpy(2 * on_disk[5, 7] - 1)
    torch.testing.assert_close(kf.sources[1, :, 5, 7], expected)
    # full black (code 0) and white (code 255) land exactly on the ends of the range
    assert kf.sources[0, 0, 0, 0] == -1.0
    assert kf.targets[0, 0, 0, 0] == 1.0


def test_alpha_is_dropped(tmp_path):
    for frame in (1, 2):
        write(Path(f"plate/p.{frame}.png"), picture(frame, channels=4), RGBA)
    write(Path("kf/p.2.png"), 1 - picture(2, channels=4), RGBA)
    pairs = pair_keyframes(open_shot("plate"), open_shot("kf"))
    kf = keyframes_to_tensors(pairs, colour(PNG), torch.device("cpu"))
    assert model_channels(4) == 3
    assert kf.sources.shape == kf.targets.shape == (1, 3, 20, 24)
    torch.testing.assert_close(kf.sources[0], torch.from_numpy(2 * pairs[0].source[..., :3] - 1).permute(2, 0, 1))


def test_scene_linear_keyframes_are_log_encoded_into_range(tmp_path):
    for frame in (1, 2):
        write(Path(f"plate/p.{frame}.exr"), picture(frame) * 40.0, EXR)  # highlights far above 1.0
    write(Path("kf/p.1.exr"), picture(1) * 20.0, EXR)
    pairs = pair_keyframes(open_shot("plate"), open_shot("kf"))
    kf = keyframes_to_tensors(pairs, colour(EXR), torch.device("cpu"))
    assert kf.sources.shape == (1, 3, 20, 24)
    assert kf.sources.min() >= -1 and kf.sources.max() <= 1
    assert kf.sources.max() > 0.4  # 40.0 linear stays distinct from 1.0: nothing was clipped
    # the same conversion as a render's, and not the plain 2x - 1 of display data
    expected = colour(EXR).to_network(pairs[0].source)
    torch.testing.assert_close(kf.sources[0], torch.from_numpy(expected).permute(2, 0, 1))
    assert (kf.sources[0] != torch.from_numpy(2 * pairs[0].source - 1).permute(2, 0, 1)).all()


def test_mask_tensors_are_n1hw(plate):
    write(Path("kf/sh010_plate.0002.png"), picture(2))
    write(Path("kf/sh010_plate.0004.png"), picture(4))
    for frame in (2, 4):
        write(Path(f"masks/m.{frame}.png"), np.full((20, 24, 1), frame / 10, np.float32), GREY)
    pairs = pair_keyframes(open_shot(plate), open_shot("kf"), open_shot("masks"))
    kf = keyframes_to_tensors(pairs, colour(PNG), torch.device("cpu"))
    assert kf.masks.shape == (2, 1, 20, 24)
    torch.testing.assert_close(kf.masks[:, 0, 0, 0], torch.tensor([0.2, 0.4]), atol=1 / 255, rtol=0)
