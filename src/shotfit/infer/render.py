"""Rendering a shot: every frame (or a range) through a predictor, resumable and atomic.

Any predictor will do (a PyTorch network's, an onnxruntime session's), so this module imports no torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shotfit.io import PixelFormat, Shot, write_image

log = logging.getLogger(__name__)

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
    rendered: int
    skipped: int
    seconds: float
    out_dir: Path


def render_shot(predictor: FramePredictor, shot: Shot, out_dir: Path, frames: Iterable[int] | None = None,
                fmt: PixelFormat | None = None, on_frame: Callable[[FrameDone], None] | None = None
                ) -> RenderResult:
    """Render ``frames`` of ``shot`` (default: all) into ``out_dir``.

    ``predictor`` maps a frame as read, float32 (H, W, C), to the edited frame in the same value
    space and shape (:class:`shotfit.infer.predictor.Predictor` for a run's PyTorch network).
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
            write_image(path, predictor(pixels), fmt)
            rendered += 1
        if on_frame is not None:
            speed = rendered / max(time.monotonic() - started, 1e-9)
            on_frame(FrameDone(frame, path, done, len(todo), exists, speed))
    seconds = time.monotonic() - started
    log.info("rendered %d frames (%d already there) in %.1f s", rendered, len(todo) - len(pending), seconds)
    return RenderResult(rendered, len(todo) - len(pending), seconds, out_dir)
