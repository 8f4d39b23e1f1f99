"""Shots: numbered frames from a folder, a frame pattern (``plate.####.exr``) or a video file.

A shot's frame numbers may have holes (a plate delivered as 1001-1010 and 1013-1020): they are
reported (:attr:`Shot.gaps`, :func:`describe_gaps`), never papered over.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Generator, Iterable, Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from shotfit.errors import ConfigError, FrameError, quoted
from shotfit.files import not_a_file
from shotfit.io.formats import FrameExtras, PixelFormat, canonical_ext, supported_list
from shotfit.io.image import read_with_extras

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".m4v", ".webm", ".mxf", ".mpg", ".mpeg", ".ts", ".gif")

_DIGITS = re.compile(r"\d+")
# One placeholder per pattern: '####' or '@@@@' (one character per digit of padding), printf style
# '%04d' / '%d', or Houdini's '$F4' / '$F'.
_PLACEHOLDER = re.compile(r"#+|@+|%(0?)(\d*)d|\$F(\d*)")
# Gaps listed by name in a message before the rest are counted.
_GAPS_NAMED = 5
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


def clip_range(frames: range, first: int, last: int) -> range:
    """The frames of ``frames`` from ``first`` to ``last`` (both included), ascending, as a range.

    Worked out from the ends, never frame by frame: ``1-2000000000`` on a shot of 1001-1006 is
    ``range(1001, 1007)`` at once, not two billion numbers in memory.
    """
    if frames.step < 0:
        frames = frames[::-1]
    start, step = frames.start, frames.step
    if start < first:
        start += -(-(first - start) // step) * step  # the first frame of the range at or after `first`
    stop = min(frames.stop, last + 1)
    return range(start, max(start, stop), step)


def runs(frames: Iterable[int]) -> list[range]:
    """Consecutive runs of frame numbers: ``[1011, 1012, 1015]`` -> ``[range(1011, 1013), range(1015, 1016)]``."""
    result: list[range] = []
    for frame in sorted(set(frames)):
        if result and result[-1].stop == frame:
            result[-1] = range(result[-1].start, frame + 1)
        else:
            result.append(range(frame, frame + 1))
    return result


def describe_gaps(gaps: Iterable[range]) -> str:
    """Missing frames for messages: ``"frames 1011-1012, 1015 missing"``; the first few are named."""
    gaps = list(gaps)
    names = [f"{g.start}" if len(g) == 1 else f"{g.start}-{g[-1]}" for g in gaps[:_GAPS_NAMED]]
    more = len(gaps) - _GAPS_NAMED
    listed = ", ".join(names) + (f" and {more} more gaps" if more > 0 else "")
    count = sum(len(g) for g in gaps)
    return f"{'frame' if count == 1 else 'frames'} {listed} missing" + (f" ({count} frames)" if len(gaps) > 1 else "")


class Shot:
    """A sequence of numbered frames, read one at a time.

    Subclasses: :class:`FrameSequence` (image files) and ``VideoShot`` (a video file). Open either
    with :func:`open_shot`. Frames read as float32 (H, W, C), C in {1, 3, 4}, RGB(A); integer data
    in [0, 1], float (EXR) data scene-linear.

    Attributes:
        path: The folder, pattern or video file the user gave.
    """

    path: Path
    # The --first/--last limits the shot was opened with (None: open-ended).
    limits: tuple[int | None, int | None] = (None, None)
    # Frames per second where the source says (a video's rate); None for image sequences.
    fps: float | None = None

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

    @property
    def gaps(self) -> list[range]:
        """Frame numbers missing between the first and the last frame, as runs (empty: no holes)."""
        frames = self.frames
        return [range(a + 1, b) for a, b in zip(frames, frames[1:]) if b - a > 1]

    def gaps_warning(self) -> str | None:
        """One line for a shot with holes: ``'plate/plate.####.exr': frames 1011-1012 missing``; else None."""
        gaps = self.gaps
        return f"{self.label}: {describe_gaps(gaps)}" if gaps else None

    @property
    def label(self) -> str:
        """The shot as messages show it, quoted: ``'plate/'`` (folders end in ``/``), ``'plate.####.exr'``,
        followed by the --first/--last limits when there are any (``'plate/' (frames 1001-1050)``)."""
        if self.limits == (None, None):
            return quoted(display_path(self.path))
        return f"{quoted(display_path(self.path))} ({frames_span(*self.limits)})"

    def describe(self, frame: int) -> str:
        """Where a frame comes from, for messages: ``plate/0042.png`` or ``clip.mp4 frame 12``."""
        raise NotImplementedError

    def read(self, frame: int) -> np.ndarray:
        """Frame ``frame`` as float32 (H, W, C); FrameError if absent, unreadable or of another size."""
        return self.read_with_extras(frame)[0]

    def read_with_extras(self, frame: int) -> tuple[np.ndarray, FrameExtras]:
        """Frame ``frame`` as :meth:`read` gives it, with what its file holds beside the picture
        (EXR windows, other channels and attributes; DPX/TIFF metadata; nothing for video)."""
        raise NotImplementedError

    def iter_frames(self, frames: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, pixels)`` in ascending frame order, for all frames or those given."""
        for frame, pixels, _ in self.iter_with_extras(frames):
            yield frame, pixels

    def iter_with_extras(self, frames: Iterable[int] | None = None
                         ) -> Generator[tuple[int, np.ndarray, FrameExtras], None, None]:
        """Yield ``(frame, pixels, extras)`` in ascending frame order, for all frames or those given."""
        for frame in self._selection(frames):
            yield frame, *self.read_with_extras(frame)

    def output_name(self, frame: int) -> str:
        """File name for this frame in an output folder, keeping the source's naming and padding."""
        raise NotImplementedError

    def stored_format(self, frame: int) -> PixelFormat:
        """How frame ``frame`` is stored: :attr:`format` unless its own file differs (a 16-bit plate in an
        8-bit shot). Known without decoding once the frame has been read."""
        return self.format

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

    def limit(self, first: int | None, last: int | None) -> None:
        """Keep only the frames from ``first`` and up to ``last`` (both included; None: open-ended)."""
        self._keep([frame for frame in self.frames if _within(frame, first, last)])
        self.limits = (first, last)
        self.__dict__.pop("_frame_set", None)

    def _keep(self, frames: list[int]) -> None:
        raise NotImplementedError

    def _check_frame(self, frame: int) -> None:
        if frame not in self:
            raise FrameError(f"{self.label} has no frame {frame}")

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
        # how each frame read so far is stored (a 16-bit file among 8-bit ones is read, and so seen, as such)
        self._formats: dict[int, PixelFormat] = {}
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

    def _keep(self, frames: list[int]) -> None:
        self._files = {frame: self._files[frame] for frame in frames}

    def file(self, frame: int) -> Path:
        """The file that holds ``frame``."""
        self._check_frame(frame)
        return self._files[frame]

    def describe(self, frame: int) -> str:
        return str(self.file(frame))

    def read_with_extras(self, frame: int) -> tuple[np.ndarray, FrameExtras]:
        path = self.file(frame)
        pixels, fmt, extras = read_with_extras(path)
        # Reading the first frame itself fills the cached description instead of decoding it twice.
        if "_first" not in self.__dict__ and frame == self.frames[0]:
            self.__dict__["_first"] = (pixels.shape, fmt)
        shape, first_fmt = self._first
        self._formats[frame] = fmt
        if pixels.shape != shape or fmt.is_float != first_fmt.is_float:
            first = self._files[self.frames[0]]
            windows = extras.data_window is not None and pixels.shape[:2] != shape[:2]
            raise FrameError(
                f"{quoted(path)} is {_layout(pixels.shape, fmt)} but the shot's first frame "
                f"{quoted(first)} is {_layout(shape, first_fmt)}"
                + (f" (data window {extras.data_window}: a shot's EXRs need data windows of one size)"
                   if windows else "")
            )
        return pixels, extras

    def stored_format(self, frame: int) -> PixelFormat:
        if frame not in self._formats:
            self.read_with_extras(frame)  # not read yet: its file says
        return self._formats[frame]

    def output_name(self, frame: int) -> str:
        path = self.file(frame)
        if self._template is None:
            return path.name
        prefix, padding, suffix = self._template
        return f"{prefix}{frame:0{padding}d}{suffix}"

    @cached_property
    def _first(self) -> tuple[tuple[int, ...], PixelFormat]:
        pixels, fmt, _ = read_with_extras(self._files[self.frames[0]])
        return pixels.shape, fmt


def is_pattern(path: Path) -> bool:
    """Whether ``path``'s name holds a frame placeholder (``####``, ``@@@@``, ``%04d``, ``$F4``)."""
    return _PLACEHOLDER.search(path.name) is not None


def display_path(path: Path) -> str:
    """A path as messages show it: folders end with ``/`` (``'plate/'``)."""
    return f"{path}/" if path.is_dir() and str(path) not in (".", "/") else str(path)


def _within(frame: int, first: int | None, last: int | None) -> bool:
    return (first is None or frame >= first) and (last is None or frame <= last)


def frames_span(first: int | None, last: int | None) -> str:
    """``frames 1001-1050``, ``frames from 1001`` or ``frames up to 1050``."""
    if last is None:
        return f"frames from {first}"
    return f"frames up to {last}" if first is None else f"frames {first}-{last}"


def open_folder(folder: Path) -> FrameSequence:
    files: dict[int, Path] = {}
    ignored = 0
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or canonical_ext(path) is None or not _frame_file(path):
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


def open_pattern(pattern: Path) -> FrameSequence:
    name = pattern.name
    placeholders = list(_PLACEHOLDER.finditer(name))
    if len(placeholders) > 1:
        raise FrameError(f"{quoted(pattern)} has more than one frame-number placeholder")
    if canonical_ext(pattern) is None:
        raise FrameError(f"{quoted(pattern)} is not a supported image type ({supported_list()})")
    found = placeholders[0]
    if found[0][0] in "#@":
        padding = len(found[0])
    else:  # '%04d' or '$F4'; '%d' and '$F' are unpadded
        padding = int(found[2] or found[3] or 0)
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
        if match and _frame_file(path):
            files[int(match[1])] = path
    if not files:
        raise FrameError(f"{quoted(pattern)} matches no frames")
    log.debug("%s: %d frames", pattern, len(files))
    return FrameSequence(pattern, files, (prefix, padding, suffix))


def _frame_file(path: Path) -> bool:
    """Whether an entry named like a frame is a file to read; one that is not (a symlink loop, a broken
    link, a FIFO, a folder) is skipped with a warning naming it, and never opened (a FIFO would wait)."""
    kind = not_a_file(path)
    if kind is None:
        return True
    log.warning("%s is %s, not a frame file: skipped", quoted(path), kind)
    return False


def _layout(shape: tuple[int, ...], fmt: PixelFormat) -> str:
    kind = "float" if fmt.is_float else "integer"
    return f"{shape[1]}x{shape[0]} {({1: 'grey', 3: 'RGB', 4: 'RGBA'})[shape[2]]} {kind}"
