"""Shots from folders and patterns: frame numbers, discovery, output names, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shotfit.errors import ConfigError, FrameError
from shotfit.io import (
    FrameSequence,
    PixelFormat,
    describe_gaps,
    frame_number,
    open_shot,
    parse_frame_range,
    runs,
    write_image,
)
from shotfit.io.sequence import clip_range

GREY8 = PixelFormat(".png", "uint8", 1)


def make_frames(folder: str, names: list[str], fmt: PixelFormat = GREY8, size: tuple[int, int] = (4, 5)) -> None:
    """Frames whose single value encodes their position in ``names`` (so reads can be told apart)."""
    for index, name in enumerate(names):
        pixels = np.full((*size, fmt.channels), (index + 1) / 255, np.float32)
        write_image(Path(folder) / name, pixels, fmt)


def value_of(pixels: np.ndarray) -> int:
    return int(np.rint(pixels[0, 0, 0] * 255))


@pytest.mark.parametrize(
    ("name", "number"),
    [
        ("plate.0042.exr", 42),
        ("shot3_v2_0107.png", 107),
        ("0007.tif", 7),
        ("frame12.jpg", 12),
        ("plate.1001.exr", 1001),
        ("a1b2c3.png", 3),
        ("plate.00000.png", 0),
    ],
)
def test_frame_number_is_the_last_group_of_digits(name: str, number: int):
    assert frame_number(name) == number


def test_name_without_digits_is_named():
    with pytest.raises(FrameError, match=r"^'plate/beauty\.exr' has no frame number in its name$"):
        frame_number("plate/beauty.exr")


def test_folder_finds_frames_in_numeric_order_and_keeps_names():
    names = ["plate.0010.png", "plate.0009.png", "plate.0100.png", "plate.0011.png"]
    make_frames("plate", names)
    Path("plate/.plate.0012.partial-1234.png").write_bytes(b"hidden temporary of a render in progress")
    Path("plate/notes.txt").write_text("ignored: not an image")
    Path("plate/sub").mkdir()

    shot = open_shot("plate")
    assert isinstance(shot, FrameSequence)
    assert shot.frames == [9, 10, 11, 100]
    assert len(shot) == 4 and 10 in shot and 12 not in shot
    assert shot.path == Path("plate")
    assert shot.describe(100) == str(Path("plate/plate.0100.png"))
    assert shot.output_name(9) == "plate.0009.png"
    assert value_of(shot.read(100)) == 3  # written third in `names`
    assert shot.format == GREY8 and shot.size == (4, 5) and shot.channels == 1
    assert [(frame, value_of(pixels)) for frame, pixels in shot.iter_frames([100, 9])] == [(9, 2), (100, 3)]


def test_folder_with_unpadded_numbers_sorts_numerically():
    make_frames("f", ["f1.png", "f2.png", "f10.png"])
    shot = open_shot("f")
    assert shot.frames == [1, 2, 10]
    assert [shot.output_name(frame) for frame in shot.frames] == ["f1.png", "f2.png", "f10.png"]


@pytest.mark.parametrize("pattern", ["plate/plate.####.exr", "plate/plate.%04d.exr"])
def test_pattern_matches_its_padding_and_names_outputs_alike(pattern: str):
    fmt = PixelFormat(".exr", "half", 3)
    make_frames("plate", ["plate.0007.exr", "plate.0008.exr", "plate.12345.exr"], fmt)
    make_frames("plate", ["plate.007.exr", "plate.v2.0009.exr", "other.0010.exr"], fmt)  # must not match

    shot = open_shot(pattern)
    assert shot.frames == [7, 8, 12345]
    assert shot.path == Path(pattern)
    assert shot.output_name(7) == "plate.0007.exr"
    assert shot.output_name(12345) == "plate.12345.exr"
    assert shot.format == PixelFormat(".exr", "half", 3, "zip")
    np.testing.assert_allclose(shot.read(8)[0, 0], 2 / 255, rtol=1e-3)


def test_pattern_without_padding():
    make_frames("seq", ["img_7.png", "img_10.png", "img_007.png"])
    shot = open_shot("seq/img_%d.png")
    assert shot.frames == [7, 10]
    assert shot.output_name(10) == "img_10.png"


def test_duplicate_frame_numbers_name_both_files():
    make_frames("plate", ["plate.0042.png", "matte.0042.png"])
    with pytest.raises(FrameError) as error:
        open_shot("plate")
    message = str(error.value)
    assert "\n" not in message and "both frame 42" in message
    assert "'plate/matte.0042.png'" in message and "'plate/plate.0042.png'" in message


def test_file_without_digits_in_a_folder_is_named():
    make_frames("plate", ["plate.0001.png", "reference.png"])
    with pytest.raises(FrameError, match=r"'plate/reference\.png' has no frame number"):
        open_shot("plate")


def test_empty_folder_lists_the_types_it_looked_for():
    Path("plate").mkdir()
    Path("plate/readme.txt").write_text("no frames here")
    with pytest.raises(FrameError, match=r"^'plate/' holds no frames \(\.png, .*\.exr, \.dpx\)$"):
        open_shot("plate")


def test_missing_path():
    with pytest.raises(FrameError, match=r"^'nowhere/plate' does not exist$"):
        open_shot("nowhere/plate")


def test_pattern_matching_nothing():
    make_frames("plate", ["plate.0001.png"])
    with pytest.raises(FrameError, match=r"^'plate/plate\.####\.exr' matches no frames$"):
        open_shot("plate/plate.####.exr")


def test_pattern_in_a_missing_folder():
    with pytest.raises(FrameError, match=r"folder 'gone/' of pattern 'gone/p\.####\.png' does not exist"):
        open_shot("gone/p.####.png")


def test_single_image_and_unknown_files_are_explained():
    make_frames(".", ["still.0001.png"])
    with pytest.raises(FrameError, match=r"'still\.0001\.png' is a single image; give its folder or a pattern"):
        open_shot("still.0001.png")
    Path("notes.txt").write_text("x")
    with pytest.raises(FrameError, match=r"'notes\.txt' is neither a folder of frames, a frame pattern nor a video"):
        open_shot("notes.txt")


def test_asking_for_a_frame_the_shot_lacks():
    make_frames("plate", ["p.0001.png"])
    shot = open_shot("plate")
    with pytest.raises(FrameError, match=r"^'plate/' has no frame 2$"):
        shot.read(2)
    with pytest.raises(FrameError, match=r"has no frame 5"):
        list(shot.iter_frames([1, 5]))


def test_frame_of_another_size_fails_when_read_naming_both_files():
    make_frames("plate", ["p.0001.png", "p.0002.png"], size=(4, 5))
    make_frames("plate", ["p.0003.png"], size=(6, 5))
    shot = open_shot("plate")  # opening stays cheap: nothing is decoded yet
    assert shot.read(2).shape == (4, 5, 1)
    with pytest.raises(FrameError) as error:
        shot.read(3)
    message = str(error.value)
    assert "\n" not in message
    assert "'plate/p.0003.png' is 5x6 grey integer" in message
    assert "first frame 'plate/p.0001.png' is 5x4 grey integer" in message


def test_frame_with_other_channels_fails_when_read():
    make_frames("plate", ["p.0001.png"], PixelFormat(".png", "uint8", 3))
    make_frames("plate", ["p.0002.png"], PixelFormat(".png", "uint8", 4))
    with pytest.raises(FrameError, match=r"'plate/p\.0002\.png' is 5x4 RGBA integer"):
        open_shot("plate").read(2)


@pytest.mark.parametrize(
    ("text", "frames"),
    [("10-90", range(10, 91)), ("12", range(12, 13)), ("10-90x2", range(10, 91, 2)), (" 1 - 3 ", range(1, 4))],
)
def test_frame_ranges_include_both_ends(text: str, frames: range):
    assert parse_frame_range(text) == frames


@pytest.mark.parametrize(("frames", "first", "last", "clipped"), [
    (range(1, 2_000_000_001), 1001, 1006, range(1001, 1007)),
    (range(1, 2_000_000_001, 2), 1001, 1006, range(1001, 1007, 2)),
    (range(0, 2_000_000_001, 2), 1001, 1006, range(1002, 1007, 2)),
    (range(1003, 1005), 1001, 1006, range(1003, 1005)),
    (range(1, 50), 1001, 1006, range(1001, 1001)),
    (range(2000, 3000), 1001, 1006, range(2000, 2000)),
    (range(1010, 990, -3), 1001, 1006, range(1001, 1007, 3)),
])
def test_a_frame_range_is_clipped_to_the_shot_without_listing_it(frames, first, last, clipped):
    result = clip_range(frames, first, last)
    assert list(result) == list(clipped)
    assert list(result) == sorted(f for f in (frames if len(frames) < 10**4 else clipped) if first <= f <= last)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("90-10", "ends before it starts"), ("ten", "not a range"), ("1-", "not a range"), ("1-9x0", "step of 0"),
     ("", "not a range"), ("-5", "not a range")],
)
def test_nonsense_frame_ranges_are_config_errors(text: str, reason: str):
    with pytest.raises(ConfigError, match=reason):
        parse_frame_range(text)


# ---- pattern styles, gaps, first/last ----


@pytest.mark.parametrize("pattern", ["plate.####.png", "plate.@@@@.png", "plate.%04d.png", "plate.$F4.png"])
def test_every_padded_pattern_style_finds_the_same_frames(pattern: str):
    make_frames("plate", ["plate.0007.png", "plate.0008.png", "plate.12345.png"])
    make_frames("plate", ["plate.007.png", "plate.00008.png", "plate.v2.0009.png"])  # other padding: no match
    shot = open_shot(f"plate/{pattern}")
    assert shot.frames == [7, 8, 12345]
    assert [shot.output_name(f) for f in shot.frames] == ["plate.0007.png", "plate.0008.png", "plate.12345.png"]
    assert value_of(shot.read(8)) == 2


@pytest.mark.parametrize("pattern", ["img_%d.png", "img_$F.png", "img_@.png", "img_#.png"])
def test_unpadded_pattern_styles(pattern: str):
    make_frames("seq", ["img_7.png", "img_10.png", "img_007.png"])
    shot = open_shot(f"seq/{pattern}")
    assert shot.frames == [7, 10]
    assert shot.output_name(10) == "img_10.png"


def test_three_at_signs_are_three_digits():
    make_frames("seq", ["s.007.png", "s.0008.png", "s.1234.png"])
    shot = open_shot("seq/s.@@@.png")
    assert shot.frames == [7, 1234]
    assert shot.output_name(7) == "s.007.png"


def test_gaps_are_reported_as_missing_runs():
    frames = [*range(1001, 1011), *range(1013, 1021)]
    make_frames("plate", [f"plate.{f}.png" for f in frames])
    shot = open_shot("plate/plate.####.png")
    assert shot.frames == frames  # holes are not filled in or skipped over silently...
    assert shot.gaps == [range(1011, 1013)]
    assert shot.gaps_warning() == "'plate/plate.####.png': frames 1011-1012 missing"  # ...but said


def test_several_gaps_are_named_then_counted():
    frames = [1, 3, 4, 8, 10, 12, 14, 16, 18]
    make_frames("plate", [f"p.{f:04d}.png" for f in frames])
    shot = open_shot("plate")
    assert shot.gaps == [range(2, 3), range(5, 8), range(9, 10), range(11, 12), range(13, 14), range(15, 16),
                         range(17, 18)]
    assert shot.gaps_warning() == "'plate/': frames 2, 5-7, 9, 11, 13 and 2 more gaps missing (9 frames)"
    assert describe_gaps([range(1015, 1016)]) == "frame 1015 missing"


def test_a_shot_without_holes_has_no_gaps():
    make_frames("plate", ["p.0001.png", "p.0002.png"])
    assert open_shot("plate").gaps == [] and open_shot("plate").gaps_warning() is None


def test_first_and_last_limit_the_shot():
    make_frames("plate", [f"p.{f:04d}.png" for f in range(1, 11)])
    shot = open_shot("plate/p.####.png", first=3, last=6)
    assert shot.frames == [3, 4, 5, 6] and len(shot) == 4 and 7 not in shot
    assert shot.label == "'plate/p.####.png' (frames 3-6)"
    assert open_shot("plate", first=8).frames == [8, 9, 10]
    assert open_shot("plate", last=2).frames == [1, 2]
    with pytest.raises(FrameError, match=r"^'plate/p\.####\.png' \(frames 3-6\) has no frame 7$"):
        shot.read(7)


def test_gaps_are_counted_within_first_and_last():
    make_frames("plate", [f"p.{f:04d}.png" for f in (1, 2, 5, 6, 9, 10)])
    assert open_shot("plate", first=5, last=10).gaps == [range(7, 9)]
    assert open_shot("plate", first=5, last=6).gaps == []


def test_first_and_last_that_select_nothing_are_one_line():
    make_frames("plate", ["p.0001.png", "p.0002.png"])
    with pytest.raises(FrameError, match=r"^'plate/' has no frames from 5 \(it holds frames 1-2\)$"):
        open_shot("plate", first=5)
    with pytest.raises(ConfigError, match=r"^the last frame 1 is before the first frame 2$"):
        open_shot("plate", first=2, last=1)


def test_runs_group_consecutive_frames():
    assert runs([5, 1, 2, 3, 9, 10, 2]) == [range(1, 4), range(5, 6), range(9, 11)]
    assert runs([]) == []
