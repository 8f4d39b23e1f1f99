"""Opening a shot: a folder of frames, a frame pattern or a video file, whichever the user gave."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from shotfit.errors import ConfigError, FrameError, quoted
from shotfit.files import not_a_file
from shotfit.io.formats import canonical_ext, supported_list
from shotfit.io.sequence import VIDEO_EXTENSIONS, Shot, display_path, frames_span, is_pattern, open_folder, open_pattern
from shotfit.io.video import VideoShot


def open_shot(spec: str | Path, *, first: int | None = None, last: int | None = None) -> Shot:
    """Open a shot from what the user typed.

    Args:
        spec: One of
            - a folder of frames: every non-hidden file with an image suffix ({images}), numbered by
              the last group of digits in its name;
            - a frame pattern: ``plate.####.exr`` or ``plate.@@@@.exr`` (one ``#`` or ``@`` per digit
              of padding), ``plate.%04d.png`` or Houdini's ``plate.$F4.exr`` (``%d``, ``$F``: no
              padding); frame numbers wider than the padding match too (10000 of ``####``);
            - a video file ({videos}): frames 0..N-1 in presentation order, decoded to RGB.
        first, last: Keep only frames from ``first`` and/or up to ``last`` (both included).

    Raises:
        FrameError: one line naming the path: missing, empty, duplicate frame numbers, unreadable,
            no frame between ``first`` and ``last``.
        ConfigError: ``last`` before ``first``.
    """
    if first is not None and last is not None and last < first:
        raise ConfigError(f"the last frame {last} is before the first frame {first}", parameter="last")
    path = Path(spec)
    if path.is_dir():
        shot: Shot = open_folder(path)
    elif not path.exists():
        if path.is_symlink():  # a link to itself or to nothing: say so, not that nothing is there
            raise FrameError(f"{quoted(spec)} is {not_a_file(path)}")
        if not is_pattern(path):
            raise FrameError(f"{quoted(spec)} does not exist")
        shot = open_pattern(path)
    elif (kind := not_a_file(path)) is not None:  # a FIFO named like a video would block its decoder
        raise FrameError(f"{quoted(spec)} is {kind}, not a folder of frames, a frame pattern or a video file")
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        shot = VideoShot(path)
    else:
        _refuse_file(path)
    if first is not None or last is not None:
        held = shot.frames
        shot.limit(first, last)
        if not shot.frames:
            shot.close()
            raise FrameError(f"{quoted(display_path(path))} has no {frames_span(first, last)} "
                             f"(it holds frames {held[0]}-{held[-1]})")
    return shot


def _refuse_file(path: Path) -> NoReturn:
    spec, suffix = str(path), path.suffix.lower()
    if canonical_ext(path) is not None:
        raise FrameError(
            f"{quoted(spec)} is a single image; give its folder or a pattern like 'plate.####{suffix}' instead"
        )
    raise FrameError(
        f"{quoted(spec)} is neither a folder of frames, a frame pattern nor a video ({', '.join(VIDEO_EXTENSIONS)})"
    )


open_shot.__doc__ = (open_shot.__doc__ or "").format(images=supported_list(), videos=", ".join(VIDEO_EXTENSIONS))
