"""Video files as shots, decoded with PyAV.

Random access: a video is decoded forwards only. ``read(frame)`` keeps one decoder open and moves it
ahead to the frame asked for, so ascending reads (keyframes in order, a render) decode the clip once;
a frame behind the decoder reopens the file and decodes from the start. The last few frames read are
kept, so reading the same frame again is free. Seeking was left out on purpose: frame-exact seeking
depends on every container's timestamps being right, and a wrong frame would silently mis-pair
keyframes with their sources. ``iter_frames`` uses its own decoder, one pass, so it never disturbs
``read``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

from shotfit.errors import FrameError, quoted
from shotfit.io.formats import PixelFormat, integer_to_float
from shotfit.io.sequence import Shot

log = logging.getLogger(__name__)

RECENT_FRAMES = 4
_UNSPECIFIED_COLORSPACE = 2  # AVCOL_SPC_UNSPECIFIED


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
        log.debug("%s: %d frames of %dx%d %s", self.path, count, self._size[1], self._size[0], pixel_format)
        self._rgb = "rgb48le" if deep else "rgb24"
        self._format = PixelFormat(".png", "uint16" if deep else "uint8", 3)

    @property
    def frames(self) -> list[int]:
        return list(range(self._count))

    @property
    def format(self) -> PixelFormat:
        return self._format

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def describe(self, frame: int) -> str:
        return f"{self.path} frame {frame}"

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
