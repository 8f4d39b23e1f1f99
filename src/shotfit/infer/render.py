"""Rendering a shot: every frame (or a range) through the predictor, resumable and atomic."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotfit.errors import quoted
from shotfit.infer.predictor import Predictor
from shotfit.io import PixelFormat, Shot, write_image
from shotfit.io.masks import ALPHA, alpha_mask, composite_outside, read_mask

log = logging.getLogger(__name__)


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
    rendered: int
    skipped: int
    seconds: float
    out_dir: Path


def render_shot(predictor: Predictor, shot: Shot, out_dir: Path, frames: Iterable[int] | None = None,
                fmt: PixelFormat | None = None, on_frame: Callable[[FrameDone], None] | None = None,
                masks: Shot | str | None = None) -> RenderResult:
    """Render ``frames`` of ``shot`` (default: all) into ``out_dir``.

    With ``masks`` (a mask sequence, or ``"alpha"`` for the source's own alpha) the result replaces
    the source only inside the mask; outside it the source is kept as it was.

    Output files keep the source's names, frame numbers and padding, and by default its format and
    bit depth. A frame whose output already exists is skipped, so an interrupted render resumes where
    it stopped; each frame is written atomically, so a file that exists is always whole.
    """
    # ascending and once each, the order in which the shot reads them
    wanted = shot.frames if frames is None else sorted({f for f in frames if f in shot})
    fmt = fmt or shot.format
    todo = []
    for frame in wanted:
        path = out_dir / shot.output_name(frame)
        todo.append((frame, path, path.exists()))
    pending = [f for f, _, exists in todo if not exists]
    started = time.monotonic()
    rendered = 0
    done = 0
    reader = iter(shot.iter_frames(pending))
    for frame, path, exists in todo:
        done += 1
        if not exists:
            read_frame, pixels = next(reader)
            assert read_frame == frame
            result = predictor(pixels)
            if masks is not None:
                result = composite_outside(result, pixels, _mask(masks, shot, frame, pixels))
            write_image(path, result, fmt)
            rendered += 1
        if on_frame is not None:
            speed = rendered / max(time.monotonic() - started, 1e-9)
            on_frame(FrameDone(frame, path, done, len(todo), exists, speed))
    seconds = time.monotonic() - started
    log.info("rendered %d frames (%d already there) in %.1f s", rendered, len(todo) - len(pending), seconds)
    return RenderResult(rendered, len(todo) - len(pending), seconds, out_dir)


def _mask(masks: Shot | str, shot: Shot, frame: int, pixels: np.ndarray) -> np.ndarray:
    if masks == ALPHA:
        return alpha_mask(pixels, shot.describe(frame))
    assert isinstance(masks, Shot)
    return read_mask(masks, frame, pixels.shape[:2], f"source frame {quoted(shot.describe(frame))}")
