"""Videos as shots: made with PyAV in the test, decoded back and compared."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from shotfit.errors import FrameError
from shotfit.io import PixelFormat, open_shot
from shotfit.io.video import review_frame, write_review_movie
from shotfit.sample_footage import sample_video

HEIGHT, WIDTH, COUNT = 32, 48, 6


def flat_colours(count: int = COUNT) -> list[np.ndarray]:
    """One flat colour per frame, far apart, so lossy codecs still tell frames apart."""
    return [np.full((HEIGHT, WIDTH, 3), (40 * i, 255 - 40 * i, 128), np.uint8) for i in range(count)]


def encode(path: str, frames: list[np.ndarray], codec: str, pix_fmt: str, source_format: str = "rgb24") -> None:
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, pix_fmt
        for pixels in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format=source_format)))
        container.mux(stream.encode())


def test_h264_video_reads_frame_by_frame_and_in_one_pass():
    colours = flat_colours()
    encode("clip.mp4", colours, "libx264", "yuv420p")

    with open_shot("clip.mp4") as shot:
        assert shot.frames == list(range(COUNT)) and len(shot) == COUNT
        assert shot.path == Path("clip.mp4")
        assert shot.size == (HEIGHT, WIDTH) and shot.channels == 3
        assert shot.format == PixelFormat(".png", "uint8", 3)
        assert shot.describe(3) == "clip.mp4 frame 3"
        assert shot.output_name(3) == "clip.0003.png"

        decoded = dict(shot.iter_frames())
        assert sorted(decoded) == shot.frames
        for frame, pixels in decoded.items():
            assert pixels.dtype == np.float32 and pixels.shape == (HEIGHT, WIDTH, 3)
            assert np.abs(pixels * 255 - colours[frame]).max() <= 6  # YUV 4:2:0 round trip

        # Random access, backwards too, gives the very frames of the single pass.
        for frame in (4, 1, 5, 1, 0):
            np.testing.assert_array_equal(shot.read(frame), decoded[frame])
        assert [frame for frame, _ in shot.iter_frames([5, 2])] == [2, 5]


@pytest.mark.parametrize("name", ["clip.mkv", "clip.mov"])
def test_lossless_video_is_exact(name: str):
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 255, (HEIGHT, WIDTH, 3), np.uint8, endpoint=True) for _ in range(3)]
    # FFV1 in Matroska has no frame count in its header: the shot counts packets instead.
    encode(name, noise, *(("ffv1", "bgr0") if name.endswith(".mkv") else ("png", "rgb24")))
    with open_shot(name) as shot:
        assert shot.frames == [0, 1, 2]
        for frame, pixels in shot.iter_frames():
            np.testing.assert_array_equal(np.rint(pixels * 255).astype(np.uint8), noise[frame])


def test_deep_video_reads_as_16_bit():
    ramp = np.linspace(0, 65535, HEIGHT * WIDTH * 3).astype(np.uint16).reshape(HEIGHT, WIDTH, 3)
    encode("deep.mkv", [ramp, ramp[::-1].copy()], "ffv1", "gbrp16le", source_format="rgb48le")
    with open_shot("deep.mkv") as shot:
        assert shot.format == PixelFormat(".png", "uint16", 3)
        np.testing.assert_array_equal(np.rint(shot.read(0) * 65535).astype(np.uint16), ramp)


def test_video_errors_are_one_line_naming_the_file():
    Path("broken.mp4").write_text("not a video")
    with pytest.raises(FrameError, match=r"^'broken\.mp4' is not a readable video"):
        open_shot("broken.mp4")

    encode("short.mp4", flat_colours(2), "libx264", "yuv420p")
    with open_shot("short.mp4") as shot, pytest.raises(FrameError, match=r"^'short\.mp4' has no frame 2$"):
        shot.read(2)


def test_real_footage_counts_every_frame(shared_data: Path):
    with open_shot(sample_video("carphone_pristine.mp4")) as shot:
        assert len(shot) == 120 and shot.size == (144, 176)
        assert sum(1 for _ in shot.iter_frames()) == 120
        assert shot.read(119).shape == (144, 176, 3)
    folder = open_shot(shared_data / "dvp_bike_packing/demo/consistency/Enhancement/bike-packing-input")
    assert folder.frames == list(range(69)) and folder.format == PixelFormat(".jpg", "uint8", 3)
    assert folder.read(68).shape == (480, 910, 3) and folder.output_name(7) == "00007.jpg"


# ---- camera and review codecs ----


def ramp_16bit() -> np.ndarray:
    """A smooth 16-bit ramp, so that 10-bit precision (and not 8-bit) is measurable."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    rgb = np.stack([x / (WIDTH - 1), y / (HEIGHT - 1), 0.25 + 0.5 * x / (WIDTH - 1)], axis=-1)
    return np.rint(rgb * 65535).astype(np.uint16)


def test_10_bit_prores_reads_as_16_bit_frames():
    ramp = ramp_16bit()
    frames = [ramp, ramp[:, ::-1].copy(), ramp[::-1].copy()]
    encode("prores.mov", frames, "prores_ks", "yuv444p10le", source_format="rgb48le")
    with open_shot("prores.mov") as shot:
        assert shot.frames == [0, 1, 2] and shot.size == (HEIGHT, WIDTH)
        assert shot.format == PixelFormat(".png", "uint16", 3)
        assert shot.fps == 24.0
        for frame, pixels in shot.iter_frames():
            error = np.abs(pixels - frames[frame] / 65535)
            assert error.mean() < 1 / 1023  # within a 10-bit step on average
        codes = np.rint(shot.read(1) * 65535).astype(np.int64)
        assert np.mean(codes % 257 != 0) > 0.9  # real 10-bit values, not 8-bit ones widened


def test_h265_video_reads():
    try:
        av.codec.Codec("libx265", "w")
    except ValueError as err:  # UnknownCodecError: this PyAV build has no H.265 encoder
        pytest.skip(f"this PyAV build cannot encode H.265 ({err})")
    # 64 px at least: this build's x265 corrupts its heap on frames smaller than one 64 px coding tree unit
    colours = [np.full((64, 96, 3), (40 * i, 255 - 40 * i, 128), np.uint8) for i in range(4)]
    with av.open("clip.mp4", "w") as container:
        stream = container.add_stream("libx265", rate=25, options={"x265-params": "log-level=error"})
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p10le"
        for pixels in colours:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode())
    with open_shot("clip.mp4") as shot:
        assert shot.frames == [0, 1, 2, 3] and shot.fps == 25.0
        assert shot.format == PixelFormat(".png", "uint16", 3)  # 10-bit video
        for frame, pixels in shot.iter_frames():
            assert np.abs(pixels * 255 - colours[frame]).max() <= 6


def test_video_first_and_last():
    encode("clip.mp4", flat_colours(), "libx264", "yuv420p")
    with open_shot("clip.mp4", first=2, last=4) as shot:
        assert shot.frames == [2, 3, 4]
        decoded = dict(shot.iter_frames())
        assert sorted(decoded) == [2, 3, 4]
        assert np.abs(decoded[3] * 255 - flat_colours()[3]).max() <= 6
        with pytest.raises(FrameError, match=r"^'clip\.mp4' \(frames 2-4\) has no frame 5$"):
            shot.read(5)


# ---- review movie ----


def decode_movie(path: str) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = [picture.to_ndarray(format="rgb24") for picture in container.decode(stream)]
        return stream, frames


@pytest.mark.parametrize(("height", "width"), [(32, 48), (31, 47)])
def test_review_movie_is_h264_of_every_frame_at_an_even_size(height: int, width: int):
    colours = [np.full((height, width, 3), (0.1 + 0.15 * i, 0.8 - 0.1 * i, 0.5), np.float32) for i in range(5)]
    assert write_review_movie(colours, "review/sh010.mp4", fps=23.976) == 5
    assert sorted(p.name for p in Path("review").iterdir()) == ["sh010.mp4"]  # no temporary left

    stream, frames = decode_movie("review/sh010.mp4")
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert stream.average_rate == Fraction(24000, 1001)
    assert len(frames) == 5
    assert frames[0].shape == (height + height % 2, width + width % 2, 3)
    for decoded, colour in zip(frames, colours):
        assert np.abs(decoded[:height, :width] / 255 - colour).max() < 4 / 255


def test_review_frame_clips_scene_linear_values_and_drops_alpha():
    linear = np.array([[[-0.5, 0.25, 40.0, 0.5]]], np.float32)
    shown = review_frame(linear, PixelFormat(".exr", "half", 4))
    np.testing.assert_array_equal(shown, [[[0.0, 0.25, 1.0]]])
    grey = review_frame(np.full((2, 2, 1), 0.5, np.float32), PixelFormat(".png", "uint8", 1))
    assert grey.shape == (2, 2, 3)


def test_review_movie_refuses_frames_of_two_sizes_and_keeps_an_older_movie():
    write_review_movie([np.zeros((8, 8, 3), np.float32)], "review.mp4")
    before = Path("review.mp4").read_bytes()
    with pytest.raises(FrameError, match=r"^review movie 'review\.mp4': frame 1 is 10x8, the first was 8x8$"):
        write_review_movie([np.zeros((8, 8, 3), np.float32), np.zeros((8, 10, 3), np.float32)], "review.mp4")
    assert Path("review.mp4").read_bytes() == before
    assert sorted(p.name for p in Path(".").iterdir()) == ["review.mp4"]


def test_review_movie_without_frames_is_refused_and_leaves_nothing():
    with pytest.raises(FrameError, match=r"^review movie 'empty\.mp4': no frames to write$"):
        write_review_movie([], "empty.mp4")
    assert list(Path(".").iterdir()) == []
