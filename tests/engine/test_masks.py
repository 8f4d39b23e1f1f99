"""Masks weight the loss towards the painted region: what the artist left unpainted does not teach."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from shotfit.io import PixelFormat, open_shot, write_image
from tiny_runs import HEIGHT, PNG8, WIDTH, grade, render_tiny, train_tiny

GREY8 = PixelFormat(".png", "uint8", 1)


def texture(frame: int) -> np.ndarray:
    """A stationary texture: both halves of the frame hold the same kinds of colours."""
    noise = np.random.default_rng(frame).random((HEIGHT, WIDTH, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return (0.1 + 0.8 * (smooth - smooth.min()) / (smooth.max() - smooth.min())).astype(np.float32)


def test_a_mask_keeps_the_unpainted_half_from_teaching(tmp_path: Path):
    # The artist graded the left half of keyframes 1 and 4 and exported them over black.
    painted = np.zeros((HEIGHT, WIDTH, 1), np.float32)
    painted[:, : WIDTH // 2] = 1.0
    for frame in range(1, 7):
        write_image(tmp_path / "plate" / f"plate.{frame:04d}.png", texture(frame), PNG8)
    for frame in (1, 4):
        write_image(tmp_path / "kf" / f"plate.{frame:04d}.png", grade(texture(frame)) * painted, PNG8)
        write_image(tmp_path / "masks" / f"plate.{frame:04d}.png", painted, GREY8)

    errors = {}
    for name, masks in {"masked": tmp_path / "masks", "unmasked": None}.items():
        run = tmp_path / f"run_{name}"
        train_tiny(tmp_path / "plate", tmp_path / "kf", run, "data.mask_outside_weight=0", steps=60, masks=masks)
        render_tiny(run, tmp_path / "plate", tmp_path / f"render_{name}", frames=[3])
        rendered = open_shot(tmp_path / f"render_{name}").read(3)
        # frame 3 was never a keyframe: all of it should carry the grade
        errors[name] = float(np.abs(rendered - grade(texture(3))).mean())

    assert errors["masked"] < 0.04, errors
    assert errors["unmasked"] > 2 * errors["masked"], errors
