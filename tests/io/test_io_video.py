"""Videos as shots: made with PyAV in the test, decoded back and compared."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from shotfit.errors import FrameError
from shotfit.io import PixelFormat, open_shot
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
