"""Rendering a shot: every frame (or a range) through a predictor, resumable and atomic.

Each output carries what its source file held beside the picture (EXR windows, other channels and
attributes; DPX/TIFF metadata), so a rendered plate drops back into the pipeline as the plate did.
Any predictor will do (a PyTorch network's, an onnxruntime session's), so this module imports no torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotfit.errors import FrameError, quoted
from shotfit.files import remove_stale_partials
from shotfit.io import FrameExtras, PixelFormat, Shot, describe_gaps, read_with_extras, runs, write_image
from shotfit.io.masks import ALPHA, alpha_mask, composite_outside, read_mask

log = logging.getLogger(__name__)

DEFAULT_FPS = 24.0
# a frame as read, float32 (H, W, C) -> the edited frame, same space and shape
FramePredictor = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FrameDone:
    """Progress after one frame: how many of how many, and the speed so far."""

    frame: int
    path: Path
    done: int
    total: int
    skipped: bool
    frames_per_s: float


@dataclass(frozen=True)
class RenderResult:
    """What a render did. ``rendered``: frames written by this render; ``missing``: frames asked for
    (all, or the range) that the source lacks, as runs; ``frames``: the frames whose outputs now
    exist, ascending; ``stopped``: ``should_stop`` ended the render early (rendering again goes on)."""

    rendered: int
    skipped: int
    seconds: float
    out_dir: Path
    missing: tuple[range, ...] = ()
    frames: tuple[int, ...] = ()
    stopped: bool = False

    def missing_note(self) -> str | None:
        """``"frames 1011-1012 missing from the source"`` for the summary; None when nothing is missing."""
        return f"{describe_gaps(self.missing)} from the source" if self.missing else None


def render_shot(predictor: FramePredictor, shot: Shot, out_dir: Path, frames: Iterable[int] | None = None,
                fmt: PixelFormat | None = None, on_frame: Callable[[FrameDone], None] | None = None,
                masks: Shot | str | None = None, should_stop: Callable[[], bool] | None = None) -> RenderResult:
    """Render ``frames`` of ``shot`` (default: all) into ``out_dir``.

    ``predictor`` maps a frame as read, float32 (H, W, C), to the edited frame in the same value
    space and shape (:class:`shotfit.infer.predictor.Predictor` for a run's PyTorch network,
    :class:`shotfit.export.runtime.OnnxPredictor` for an exported file).
    Output files keep the source's names, frame numbers and padding, by default its format and bit
    depth, and each its source file's extras (EXR windows, other channels, attributes; DPX/TIFF
    metadata). A frame whose output already exists is skipped, so an interrupted render resumes where
    it stopped; each frame is written atomically, so a file that exists is always whole. Frames the
    source lacks within its span (holes in the numbering) are reported in the result, not rendered.

    With ``masks`` (a mask sequence, or ``"alpha"`` for the source's own alpha) the result replaces
    the source only inside the mask; outside it the source is kept as it was.

    ``should_stop`` is asked before each frame; True ends the render there (the frame before it is
    whole on disk) with ``stopped`` set in the result, and rendering again goes on from that frame.
    """
    wanted, missing = frames_wanted(shot, frames)
    fmt = fmt or shot.format
    for stale in remove_stale_partials(out_dir):
        log.info("removed %s, left by a render that was killed", quoted(stale))
    todo = []
    for frame in wanted:
        path = out_dir / shot.output_name(frame)
        todo.append((frame, path, frame_done(path)))
    pending = [f for f, _, exists in todo if not exists]
    started = time.monotonic()
    rendered = 0
    done = 0
    stopped = False
    with contextlib.closing(shot.iter_with_extras(pending)) as reader:  # a video decoder closes at a stop
        for frame, path, exists in todo:
            if should_stop is not None and should_stop():
                stopped = True
                break
            done += 1
            if not exists:
                read_frame, pixels, extras = next(reader)
                assert read_frame == frame
                _warn_of_depth(shot, frame, fmt)
                result = predictor(pixels)
                if masks is not None:
                    result = composite_outside(result, pixels, _mask(masks, shot, frame, pixels))
                write_image(path, result, fmt, extras)
                rendered += 1
            if on_frame is not None:
                speed = rendered / max(time.monotonic() - started, 1e-9)
                on_frame(FrameDone(frame, path, done, len(todo), exists, speed))
    seconds = time.monotonic() - started
    skipped = len(todo) - len(pending)
    if stopped:
        log.info("render stopped after %d frames (%d already there) in %.1f s", rendered, skipped, seconds)
        written = tuple(f for f, path, exists in todo if exists or path.exists())
        return RenderResult(rendered, skipped, seconds, out_dir, tuple(missing), written, stopped=True)
    log.info("rendered %d frames (%d already there) in %.1f s", rendered, skipped, seconds)
    return RenderResult(rendered, skipped, seconds, out_dir, tuple(missing), tuple(wanted))


def frames_wanted(shot: Shot, frames: Iterable[int] | None = None) -> tuple[list[int], list[range]]:
    """(the frames of ``shot`` to render, ascending and once each; the frames asked for that the shot
    lacks within its span, as runs). ``frames``: None for all; a range reaching past the shot's ends
    just renders less."""
    if frames is None:
        return list(shot.frames), list(shot.gaps)
    asked = sorted(set(frames))
    first, last = shot.frames[0], shot.frames[-1]
    return [f for f in asked if f in shot], list(runs(f for f in asked if first <= f <= last and f not in shot))


def frames_pending(shot: Shot, out_dir: Path, wanted: Iterable[int]) -> list[int]:
    """The frames of ``wanted`` whose output in ``out_dir`` is not there whole (see :func:`frame_done`)."""
    return [frame for frame in wanted if not frame_done(out_dir / shot.output_name(frame))]


def chunks(frames: Sequence[int], count: int) -> list[list[int]]:
    """``frames`` in ``count`` runs of neighbours, as even as can be: each chunk reads its frames in one pass
    (a video decodes it without seeking back), and fewer frames than ``count`` give fewer chunks."""
    count = max(1, min(count, len(frames)))
    size, extra = divmod(len(frames), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append(list(frames[start:end]))
        start = end
    return [chunk for chunk in out if chunk]


def frame_done(path: Path) -> bool:
    """Whether a frame's output is already there, whole: it decodes. One that does not (zero bytes, cut
    short by a copy or a full disk, not a frame file at all) is said and rendered again. Decoding costs
    a fraction of rendering the frame, and only frames already there pay it."""
    if not os.path.lexists(path):
        return False
    try:
        read_with_extras(path)
    except FrameError as err:
        log.warning("%s: rendering it again", err)
        return False
    return True


def _warn_of_depth(shot: Shot, frame: int, fmt: PixelFormat) -> None:
    """Say when a frame is stored at another depth than the shot's first (a 16-bit plate among 8-bit ones):
    the render writes every frame alike, so that one's depth changes."""
    stored = shot.stored_format(frame)
    if stored.dtype != shot.format.dtype:
        log.warning("source frame %s is %s but the shot's first frame is %s: rendered to %s like the rest",
                    quoted(shot.describe(frame)), stored.depth, shot.format.depth, fmt.depth)


def write_review(shot: Shot, result: RenderResult, path: Path, fps: float | None = None,
                 display: Callable[[np.ndarray], np.ndarray] | None = None) -> int:
    """An H.264 MP4 of a render's frames (every frame whose output exists, skipped ones too), in order.

    Each frame goes through ``review_frame`` (display-referred [0, 1] RGB in the display window;
    ``display`` maps values to the display, e.g. ``ColourPipeline.to_display``).
    ``fps``: default the source's (a video's rate, an EXR's ``framesPerSecond``, a DPX's
    ``dpx:FrameRate``), else 24. Returns the number of frames written.
    """
    from shotfit.io.video import review_frame, write_review_movie  # PyAV is only needed for movies

    def frames() -> Iterator[np.ndarray]:  # one at a time: a long 4K shot does not fit in memory
        for frame in result.frames:
            pixels, fmt, extras = read_with_extras(result.out_dir / shot.output_name(frame))
            yield review_frame(pixels, fmt, extras, display)

    if fps is None and result.frames:
        fps = shot.fps or _frame_rate(read_with_extras(result.out_dir / shot.output_name(result.frames[0]))[2])
    return write_review_movie(frames(), path, fps or DEFAULT_FPS)


def _frame_rate(extras: FrameExtras) -> float | None:
    value = extras.attributes.get("framesPerSecond") or extras.attributes.get("dpx:FrameRate")
    return float(value) if value else None


def _mask(masks: Shot | str, shot: Shot, frame: int, pixels: np.ndarray) -> np.ndarray:
    if masks == ALPHA:
        return alpha_mask(pixels, shot.describe(frame))
    assert isinstance(masks, Shot)
    return read_mask(masks, frame, pixels.shape[:2], f"source frame {quoted(shot.describe(frame))}")
