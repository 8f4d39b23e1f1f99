"""Shots: numbered frames from a folder, a frame pattern (``plate.####.exr``) or a video file."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from shotfit.errors import ConfigError, FrameError, quoted
from shotfit.io.formats import PixelFormat, canonical_ext, supported_list
from shotfit.io.image import read_image

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm", ".mxf", ".mpg", ".mpeg", ".ts", ".gif")

_DIGITS = re.compile(r"\d+")
# One placeholder per pattern: '####' (four digits of padding) or printf style '%04d' / '%d'.
_PLACEHOLDER = re.compile(r"#+|%(0?)(\d*)d")
_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*(?:x\s*(\d+)\s*)?)?")


def frame_number(path: str | Path) -> int:
    """The frame number of a file: the last group of digits in its name without the suffix.

    ``plate.0042.exr`` -> 42, ``shot3_v2_0107.png`` -> 107.

    Raises:
        FrameError: the name has no digits.
    """
    groups = _DIGITS.findall(Path(path).stem)
    if not groups:
        raise FrameError(f"{quoted(path)} has no frame number in its name")
    return int(groups[-1])


def parse_frame_range(text: str) -> range:
    """Parse a frame range: ``"10-90"`` (both ends included), ``"12"``, or ``"10-90x2"`` (every 2nd).

    Raises:
        ConfigError: anything else, an end before the start, or a zero step.
    """
    match = _RANGE.fullmatch(text)
    hint = "expected like '10-90', '12' or '10-90x2'"
    if match is None:
        raise ConfigError(f"frame range {text!r} is not a range ({hint})")
    first = int(match[1])
    last = int(match[2]) if match[2] is not None else first
    step = int(match[3]) if match[3] is not None else 1
    if last < first:
        raise ConfigError(f"frame range {text!r} ends before it starts ({hint})")
    if step == 0:
        raise ConfigError(f"frame range {text!r} has a step of 0 ({hint})")
    return range(first, last + 1, step)


class Shot:
    """A sequence of numbered frames, read one at a time.

    Subclasses: :class:`FrameSequence` (image files) and ``VideoShot`` (a video file). Open either
    with :func:`open_shot`. Frames read as float32 (H, W, C), C in {1, 3, 4}, RGB(A); integer data
    in [0, 1], float (EXR) data scene-linear.

    Attributes:
        path: The folder, pattern or video file the user gave.
    """

    path: Path

    @property
    def frames(self) -> list[int]:
        """Frame numbers, ascending."""
        raise NotImplementedError

    @property
    def format(self) -> PixelFormat:
        """The :class:`PixelFormat` of the first frame (video: 8-bit RGB PNG, 16-bit for deeper video)."""
        raise NotImplementedError

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the first frame."""
        raise NotImplementedError

    @property
    def channels(self) -> int:
        """Channel count of the first frame: 1, 3 or 4."""
        return self.format.channels

    def describe(self, frame: int) -> str:
        """Where a frame comes from, for messages: ``plate/0042.png`` or ``clip.mp4 frame 12``."""
        raise NotImplementedError

    def read(self, frame: int) -> np.ndarray:
        """Frame ``frame`` as float32 (H, W, C); FrameError if absent, unreadable or of another size."""
        raise NotImplementedError

    def iter_frames(self, frames: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, pixels)`` in ascending frame order, for all frames or those given."""
        for frame in self._selection(frames):
            yield frame, self.read(frame)

    def output_name(self, frame: int) -> str:
        """File name for this frame in an output folder, keeping the source's naming and padding."""
        raise NotImplementedError

    def close(self) -> None:
        """Release open files (videos); the shot stays usable and reopens them when needed."""

    def __enter__(self) -> Shot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self.frames)

    def __contains__(self, frame: object) -> bool:
        return frame in self._frame_set

    def __repr__(self) -> str:
        frames = self.frames
        span = f"{frames[0]}-{frames[-1]}" if frames else "empty"
        return f"{type(self).__name__}({str(self.path)!r}, {len(frames)} frames {span})"

    @cached_property
    def _frame_set(self) -> frozenset[int]:
        return frozenset(self.frames)

    def _check_frame(self, frame: int) -> None:
        if frame not in self:
            raise FrameError(f"{quoted(display_path(self.path))} has no frame {frame}")

    def _selection(self, frames: Iterable[int] | None) -> list[int]:
        if frames is None:
            return list(self.frames)
        chosen = sorted(set(frames))
        for frame in chosen:
            self._check_frame(frame)
        return chosen


class FrameSequence(Shot):
    """Image files, one per frame number (from a folder or a pattern).

    Frames are checked against the first one as they are read (size, channel count, integer vs
    float), not up front, so that opening a long shot stays instant.
    """

    def __init__(self, path: str | Path, files: dict[int, Path], name_template: tuple[str, int, str] | None):
        self.path = Path(path)
        self._files = dict(sorted(files.items()))
        # (prefix, padding, suffix) for patterns; folders reuse each source file's own name.
        self._template = name_template

    @property
    def frames(self) -> list[int]:
        return list(self._files)

    @property
    def format(self) -> PixelFormat:
        return self._first[1]

    @property
    def size(self) -> tuple[int, int]:
        height, width = self._first[0][:2]
        return height, width

    def file(self, frame: int) -> Path:
        """The file that holds ``frame``."""
        self._check_frame(frame)
        return self._files[frame]

    def describe(self, frame: int) -> str:
        return str(self.file(frame))

    def read(self, frame: int) -> np.ndarray:
        path = self.file(frame)
        pixels, fmt = read_image(path)
        # Reading the first frame itself fills the cached description instead of decoding it twice.
        if "_first" not in self.__dict__ and frame == self.frames[0]:
            self.__dict__["_first"] = (pixels.shape, fmt)
        shape, first_fmt = self._first
        if pixels.shape != shape or fmt.is_float != first_fmt.is_float:
            first = self._files[self.frames[0]]
            raise FrameError(
                f"{quoted(path)} is {_layout(pixels.shape, fmt)} but the shot's first frame "
                f"{quoted(first)} is {_layout(shape, first_fmt)}"
            )
        return pixels

    def output_name(self, frame: int) -> str:
        path = self.file(frame)
        if self._template is None:
            return path.name
        prefix, padding, suffix = self._template
        return f"{prefix}{frame:0{padding}d}{suffix}"

    @cached_property
    def _first(self) -> tuple[tuple[int, ...], PixelFormat]:
        pixels, fmt = read_image(self._files[self.frames[0]])
        return pixels.shape, fmt


def open_shot(spec: str | Path) -> Shot:
    """Open a shot from what the user typed.

    Args:
        spec: One of
            - a folder of frames: every non-hidden file with an image suffix ({images}), numbered by
              the last group of digits in its name;
            - a frame pattern: ``plate.####.exr`` (one ``#`` per digit of padding) or ``plate.%04d.png``;
            - a video file ({videos}): frames 0..N-1 in presentation order, decoded to RGB.

    Raises:
        FrameError: one line naming the path: missing, empty, duplicate frame numbers, unreadable.
    """
    path = Path(spec)
    if path.is_dir():
        return _open_folder(path)
    if not path.exists():
        if _PLACEHOLDER.search(path.name):
            return _open_pattern(path)
        raise FrameError(f"{quoted(spec)} does not exist")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        from shotfit.io.video import VideoShot  # PyAV is only needed for videos

        return VideoShot(path)
    if canonical_ext(path) is not None:
        raise FrameError(
            f"{quoted(spec)} is a single image; give its folder or a pattern like 'plate.####{suffix}' instead"
        )
    raise FrameError(
        f"{quoted(spec)} is neither a folder of frames, a frame pattern nor a video ({', '.join(VIDEO_EXTENSIONS)})"
    )


open_shot.__doc__ = (open_shot.__doc__ or "").format(images=supported_list(), videos=", ".join(VIDEO_EXTENSIONS))


def display_path(path: Path) -> str:
    """A path as messages show it: folders end with ``/`` (``'plate/'``)."""
    return f"{path}/" if path.is_dir() and str(path) not in (".", "/") else str(path)


def _open_folder(folder: Path) -> FrameSequence:
    files: dict[int, Path] = {}
    ignored = 0
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or canonical_ext(path) is None:
            ignored += 1
            continue
        frame = frame_number(path)
        if frame in files:
            raise FrameError(f"{quoted(files[frame])} and {quoted(path)} are both frame {frame}")
        files[frame] = path
    if not files:
        raise FrameError(f"{quoted(display_path(folder))} holds no frames ({supported_list()})")
    log.debug("%s: %d frames, %d other entries ignored", folder, len(files), ignored)
    return FrameSequence(folder, files, None)


def _open_pattern(pattern: Path) -> FrameSequence:
    name = pattern.name
    placeholders = list(_PLACEHOLDER.finditer(name))
    if len(placeholders) > 1:
        raise FrameError(f"{quoted(pattern)} has more than one frame-number placeholder")
    if canonical_ext(pattern) is None:
        raise FrameError(f"{quoted(pattern)} is not a supported image type ({supported_list()})")
    found = placeholders[0]
    padding = len(found[0]) if found[0].startswith("#") else int(found[2] or 0)
    # Numbers wider than the padding are written in full (frame 10000 of '####'), never with a leading 0.
    digits = rf"(\d{{{padding}}}|[1-9]\d{{{padding},}})" if padding > 1 else r"(0|[1-9]\d*)"
    prefix, suffix = name[: found.start()], name[found.end() :]
    matcher = re.compile(re.escape(prefix) + digits + re.escape(suffix))
    folder = pattern.parent
    if not folder.is_dir():
        raise FrameError(f"folder {quoted(f'{folder}/')} of pattern {quoted(pattern)} does not exist")
    files = {}
    for path in folder.iterdir():
        match = matcher.fullmatch(path.name)
        if match and path.is_file():
            files[int(match[1])] = path
    if not files:
        raise FrameError(f"{quoted(pattern)} matches no frames")
    log.debug("%s: %d frames", pattern, len(files))
    return FrameSequence(pattern, files, (prefix, padding, suffix))


def _layout(shape: tuple[int, ...], fmt: PixelFormat) -> str:
    kind = "float" if fmt.is_float else "integer"
    return f"{shape[1]}x{shape[0]} {({1: 'grey', 3: 'RGB', 4: 'RGBA'})[shape[2]]} {kind}"
