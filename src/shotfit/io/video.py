"""Video files as shots, decoded with PyAV; and the review movie of a render (H.264 MP4).

Random access: a video is decoded forwards only. ``read(frame)`` keeps one decoder open and moves it
ahead to the frame asked for, so ascending reads (keyframes in order, a render) decode the clip once;
a frame behind the decoder reopens the file and decodes from the start. The last few frames read are
kept, so reading the same frame again is free. Seeking was left out on purpose: frame-exact seeking
depends on every container's timestamps being right, and a wrong frame would silently mis-pair
keyframes with their sources. ``iter_frames`` uses its own decoder, one pass, so it never disturbs
``read``.

The review movie takes display-referred frames; :func:`review_frame` is the one place a rendered
frame becomes one (a display transform for scene-linear frames belongs there).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from shotfit.errors import FrameError, quoted
from shotfit.files import REVIEW_COMMENT, atomic_path
from shotfit.io.exr import to_display_window
from shotfit.io.formats import FrameExtras, PixelFormat, float_to_integer, integer_to_float
from shotfit.io.sequence import Shot

log = logging.getLogger(__name__)

RECENT_FRAMES = 4
_UNSPECIFIED_COLORSPACE = 2  # AVCOL_SPC_UNSPECIFIED
_BT709 = 1  # AVCOL_SPC_BT709, AVCOL_PRI_BT709 and AVCOL_TRC_BT709 alike
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG: the 16-235 codes players expect from H.264
REVIEW_CRF = 18  # visually lossless for review; H.264's default (23) bands smooth grades


class VideoShot(Shot):
    """A video file: frames 0..N-1 in presentation order, RGB.

    8-bit video reads as 8-bit RGB in [0, 1] (format: uint8 PNG); deeper video (10-bit ProRes,
    H.265) as 16-bit RGB (format: uint16 PNG). Alpha in video is not read.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._decoder: _Decoder | None = None
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise FrameError(f"{quoted(self.path)} has no video stream")
                stream = container.streams.video[0]
                context = stream.codec_context
                self._size = (context.height, context.width)
                pixel_format = context.format.name if context.format is not None else "unknown pixel format"
                deep = context.format is not None and max(c.bits for c in context.format.components) > 8
                # The header's frame count is absent in some containers (MKV, AVI): count packets then.
                count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size > 0)
        except av.FFmpegError as err:
            raise FrameError(f"{quoted(self.path)} is not a readable video ({err.strerror or err})") from None
        if count == 0:
            raise FrameError(f"{quoted(self.path)} holds no frames")
        self._count = count
        self._frames = list(range(count))
        self.fps = float(stream.average_rate) if stream.average_rate else None
        log.debug("%s: %d frames of %dx%d %s", self.path, count, self._size[1], self._size[0], pixel_format)
        self._rgb = "rgb48le" if deep else "rgb24"
        self._format = PixelFormat(".png", "uint16" if deep else "uint8", 3)

    @property
    def frames(self) -> list[int]:
        return list(self._frames)

    def _keep(self, frames: list[int]) -> None:
        self._frames = frames

    @property
    def format(self) -> PixelFormat:
        return self._format

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def describe(self, frame: int) -> str:
        return f"{self.path} frame {frame}"

    def read_with_extras(self, frame: int) -> tuple[np.ndarray, FrameExtras]:
        return self.read(frame), FrameExtras()

    def read(self, frame: int) -> np.ndarray:
        self._check_frame(frame)
        if frame in self._recent:
            self._recent.move_to_end(frame)
            return self._recent[frame].copy()
        if self._decoder is None or self._decoder.position > frame:
            self.close()
            self._decoder = _Decoder(self.path, self._count)
        pixels = self._to_pixels(self._decoder.skip_to(frame), frame)
        self._recent[frame] = pixels
        if len(self._recent) > RECENT_FRAMES:
            self._recent.popitem(last=False)
        return pixels.copy()

    def iter_with_extras(self, frames: Iterable[int] | None = None
                         ) -> Generator[tuple[int, np.ndarray, FrameExtras], None, None]:
        for frame, pixels in self.iter_frames(frames):
            yield frame, pixels, FrameExtras()

    def iter_frames(self, frames: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        wanted = self._selection(frames)
        if not wanted:
            return
        decoder = _Decoder(self.path, self._count)
        try:
            for frame in wanted:
                yield frame, self._to_pixels(decoder.skip_to(frame), frame)
        finally:
            decoder.close()

    def output_name(self, frame: int) -> str:
        self._check_frame(frame)
        return f"{self.path.stem}.{frame:04d}.png"

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

    def _to_pixels(self, picture: av.VideoFrame, frame: int) -> np.ndarray:
        colorspace = None
        # Untagged HD video is BT.709 by convention; swscale would otherwise assume BT.601.
        if picture.colorspace == _UNSPECIFIED_COLORSPACE and picture.height >= 720:
            colorspace = "itu709"
        codes = picture.to_ndarray(
            format=self._rgb, src_colorspace=colorspace, src_color_range=picture.color_range or None
        )
        if codes.shape[:2] != self._size:
            height, width = self._size
            raise FrameError(
                f"{quoted(self.describe(frame))} is {codes.shape[1]}x{codes.shape[0]}, "
                f"but the video starts at {width}x{height}"
            )
        return integer_to_float(codes)


class _Decoder:
    """One open video, decoded forwards; ``position`` is the number of the next frame it yields."""

    def __init__(self, path: Path, count: int):
        self.path = path
        self.count = count
        self.position = 0
        try:
            self._container = av.open(str(path))
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
            self._pictures = self._container.decode(stream)
        except av.FFmpegError as err:
            raise FrameError(f"{quoted(path)} is not a readable video ({err.strerror or err})") from None

    def skip_to(self, frame: int) -> av.VideoFrame:
        """Decode forwards to ``frame`` (>= position) and return it; frames passed are not converted."""
        try:
            for picture in self._pictures:
                self.position += 1
                if self.position - 1 == frame:
                    return picture
        except av.FFmpegError as err:
            raise FrameError(
                f"{quoted(self.path)} frame {self.position} cannot be decoded ({err.strerror or err})"
            ) from None
        raise FrameError(f"{quoted(self.path)} ends after {self.position} frames, its header promised {self.count}")

    def close(self) -> None:
        self._container.close()


def review_frame(pixels: np.ndarray, fmt: PixelFormat, extras: FrameExtras | None = None,
                 display: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A rendered frame as the review movie shows it: display-referred RGB, float32 (H, W, 3) in [0, 1].

    ``display`` maps the frame's values to the display (``ColourPipeline.to_display``: scene-linear
    frames go through the OCIO view); without it the values are only clipped to [0, 1]. An EXR is
    shown in its display window (overscan cropped, a smaller data window placed over black); grey
    becomes RGB, alpha is dropped.
    """
    if extras is not None and extras.data_window is not None and extras.display_window is not None:
        pixels = to_display_window(pixels, extras.data_window, extras.display_window)
    if display is not None:
        pixels = display(pixels)
    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[..., :3]
    return np.clip(rgb, 0.0, 1.0).astype(np.float32, copy=False)


def write_review_movie(frames: Iterable[np.ndarray], path: str | Path, fps: float = 24.0) -> int:
    """Write an H.264 MP4 (yuv420p, BT.709, what every player and review tool plays), atomically.

    Args:
        frames: display-referred float RGB in [0, 1], (H, W, 3), all of one size (see :func:`review_frame`).
        path: The movie; a temporary file beside it is renamed over it once complete.
        fps: Frames per second (23.976 is written as 24000/1001).

    Returns:
        The number of frames written.

    Raises:
        FrameError: no frames, or frames of different sizes (naming the movie).
        ShotfitError: the folder cannot be written.
    """
    path = Path(path)
    rate = _frame_rate(fps)
    written = 0
    with atomic_path(path) as temp:
        with av.open(str(temp), "w", format="mp4") as container:
            container.metadata["comment"] = REVIEW_COMMENT  # marks the movie as shotfit's: a later render may replace it
            stream = container.add_stream("libx264", rate=rate, options={"crf": str(REVIEW_CRF)})
            stream.pix_fmt = "yuv420p"
            context = stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = _BT709
            context.color_range = _LIMITED_RANGE
            size = None
            for pixels in frames:
                # yuv420p halves the chroma planes: odd sizes gain a copy of their last row or column.
                height, width = pixels.shape[:2]
                even = np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                if size is None:
                    size = even.shape[:2]
                    stream.height, stream.width = size
                elif even.shape[:2] != size:
                    raise FrameError(f"review movie {quoted(path)}: frame {written} is {width}x{height}, "
                                     f"the first was {size[1]}x{size[0]}")
                picture = av.VideoFrame.from_ndarray(float_to_integer(even, "uint8"), format="rgb24")
                picture = picture.reformat(format="yuv420p", dst_colorspace="itu709")
                picture.colorspace, picture.color_range = _BT709, _LIMITED_RANGE
                container.mux(stream.encode(picture))
                written += 1
            if not written:
                raise FrameError(f"review movie {quoted(path)}: no frames to write")
            container.mux(stream.encode())
    log.info("review movie %s: %d frames at %s fps", path, written, rate)
    return written


def _frame_rate(fps: float) -> Fraction:
    """24 -> 24, 23.976 -> 24000/1001, 29.97 -> 30000/1001 (the NTSC rates as their exact fractions)."""
    if abs(fps - round(fps)) < 1e-6:
        return Fraction(round(fps))
    ntsc = round(fps * 1.001)
    if abs(fps * 1.001 - ntsc) < 0.01:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)
