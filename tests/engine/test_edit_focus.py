"""Training on a paint-out: with data.edit_focus the markers are gone sooner from the frames the artist did
not paint, a grade trains bit-identically with or without data.edit_focus and data.edit_weight, and a run
with both resumes bit-identical.

The shot: 6 frames of 96x128 (gradients, a moving sine, a disc) with three dark tracking markers of 2.5 pixels'
radius moving a pixel a frame; keyframes 1, 3, 5 and 6 are the clean plate (the markers painted out), and
frames 2 and 4, never painted, are scored inside the region the paint-out changes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from shots import PNG8, disc_plate, render_tiny, same_weights, train_tiny, weights, write_graded_shot

from shotfit.evaluate.metrics import edited_region, psnr_in
from shotfit.io import read_image, write_image

HEIGHT, WIDTH = 96, 128
MARKERS = ((30, 40), (60, 70), (45, 100))  # (y, x) on frame 0
KEYFRAMES = (1, 3, 5, 6)
HELD_OUT = (2, 4)
QUIET = ("train.preview_every=1000", "train.checkpoint_every=1000")


def clean(frame: int) -> np.ndarray:
    return disc_plate(frame, HEIGHT, WIDTH)


def marked(frame: int) -> np.ndarray:
    """The plate: the clean frame with dark markers that move a pixel a frame."""
    image = clean(frame).copy()
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    for y, x in MARKERS:
        image[(yy - y) ** 2 + (xx - x - frame) ** 2 <= 2.5**2] = 0.08
    return image


@pytest.fixture(scope="module")
def marker_shot(module_dir: Path) -> tuple[Path, Path]:
    for frame in range(1, 7):
        write_image(module_dir / "plate" / f"p.{frame:04d}.png", marked(frame), PNG8)
        if frame in KEYFRAMES:
            write_image(module_dir / "kf" / f"p.{frame:04d}.png", clean(frame), PNG8)
    return module_dir / "plate", module_dir / "kf"


def psnr_at_markers(run: Path, plate: Path, out: Path) -> float:
    """Mean PSNR (dB) of the held-out frames' render inside the region the paint-out changes."""
    render_tiny(run, plate, out, frames=list(HELD_OUT))
    scores = []
    for frame in HELD_OUT:
        pred = read_image(out / f"p.{frame:04d}.png")[0][..., :3]
        truth = clean(frame)
        scores.append(psnr_in(pred, truth, edited_region(truth, marked(frame))))
    return float(np.mean(scores))


@pytest.mark.slow
def test_edit_focus_paints_out_the_markers_better_in_the_same_steps(module_dir, marker_shot):
    scores = {}
    for name, settings in {"plain": (), "focused": ("data.edit_focus=0.5",)}.items():
        run = module_dir / f"run-{name}"
        train_tiny(*marker_shot, run, *QUIET, *settings, steps=40)
        scores[name] = psnr_at_markers(run, marker_shot[0], module_dir / f"render-{name}")
    assert scores["focused"] > scores["plain"] + 1.0, scores


def warmer(pixels: np.ndarray) -> np.ndarray:
    """A grade: red up by 8%, which moves the darker reds by less than the edit threshold, so about two thirds
    of the pixels count as edited: a global edit, yet one the weight would tilt the loss on."""
    return np.clip(pixels * np.array([1.08, 1.0, 1.0], np.float32), 0.0, 1.0)


def test_a_grade_trains_bit_identically_with_edit_focus_and_weight(tmp_path):
    shot = write_graded_shot(tmp_path, edit=warmer)
    train_tiny(*shot, tmp_path / "plain", *QUIET, steps=6)
    train_tiny(*shot, tmp_path / "local", *QUIET, "data.edit_focus=0.5", "data.edit_weight=100", steps=6)
    assert same_weights(weights(tmp_path / "plain" / "model.pt"), weights(tmp_path / "local" / "model.pt"))


def test_a_run_with_edit_focus_and_weight_resumes_bit_identical(module_dir, marker_shot):
    settings = ("data.edit_focus=0.5", "data.edit_weight=10", "train.preview_every=1000")
    reference = module_dir / "reference"
    train_tiny(*marker_shot, reference, *settings, "train.checkpoint_every=1000", steps=8)

    def ctrl_c_at_step_5(report):
        if report.step == 5:
            raise KeyboardInterrupt  # steps 4 and 5 are lost: the newest checkpoint is step 3

    out = module_dir / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train_tiny(*marker_shot, out, *settings, "train.checkpoint_every=3", steps=8, on_step=ctrl_c_at_step_5)
    train_tiny(*marker_shot, out, *settings, "train.checkpoint_every=3", steps=8, resume=True)
    assert same_weights(weights(out / "model.pt"), weights(reference / "model.pt"))
    plain = module_dir / "plain"
    train_tiny(*marker_shot, plain, "train.preview_every=1000", "train.checkpoint_every=1000", steps=8)
    assert not same_weights(weights(plain / "model.pt"), weights(reference / "model.pt"))  # the settings act
