"""Masks weight the loss towards the painted region: what the artist left unpainted does not teach."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from shots import HEIGHT, PNG8, WIDTH, grade, render_tiny, train_tiny
from shots import write_graded_shot as write_shot

from shotfit.errors import FrameError
from shotfit.io import PixelFormat, open_shot, write_image

GREY8 = PixelFormat(".png", "uint8", 1)
RGBA8 = PixelFormat(".png", "uint8", 4)


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


def test_the_keyframes_alpha_can_be_the_mask(tmp_path: Path):
    # The same painting, exported as RGBA keyframes whose alpha marks the painted half.
    painted = np.zeros((HEIGHT, WIDTH, 1), np.float32)
    painted[:, : WIDTH // 2] = 1.0
    for frame in range(1, 7):
        write_image(tmp_path / "plate" / f"plate.{frame:04d}.png", texture(frame), PNG8)
    for frame in (1, 4):
        keyframe = np.concatenate([grade(texture(frame)) * painted, painted], axis=2)
        write_image(tmp_path / "kf" / f"plate.{frame:04d}.png", keyframe, RGBA8)

    run = tmp_path / "run"
    train_tiny(tmp_path / "plate", tmp_path / "kf", run, "data.mask_outside_weight=0", steps=60, masks="alpha")
    render_tiny(run, tmp_path / "plate", tmp_path / "render", frames=[3])
    rendered = open_shot(tmp_path / "render").read(3)
    assert float(np.abs(rendered - grade(texture(3))).mean()) < 0.04


@pytest.fixture(scope="module")
def graded_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run that learnt the grade over whole keyframes."""
    folder = tmp_path_factory.mktemp("graded")
    source, keys = write_shot(folder)
    train_tiny(source, keys, folder / "run", steps=30)
    return folder / "run"


def test_render_changes_the_plate_only_inside_the_mask(tmp_path: Path, graded_run: Path):
    source, _ = write_shot(tmp_path)
    inside = np.zeros((HEIGHT, WIDTH, 1), np.float32)
    inside[10:30, 12:36] = 1.0
    inside[10:30, 24:36] = 0.5  # a soft part: half result, half plate
    for frame in (2, 3):
        write_image(tmp_path / "roto" / f"roto.{frame:04d}.png", inside, GREY8)

    render_tiny(graded_run, source, tmp_path / "whole", frames=[2, 3])
    render_tiny(graded_run, source, tmp_path / "comp", frames=[2, 3], mask=tmp_path / "roto")
    for frame in (2, 3):
        plate_pixels = open_shot(source).read(frame)
        whole = open_shot(tmp_path / "whole").read(frame)
        comp = open_shot(tmp_path / "comp").read(frame)
        outside = inside[..., 0] == 0
        np.testing.assert_array_equal(comp[outside], plate_pixels[outside])  # untouched, code for code
        np.testing.assert_allclose(comp[10:30, 12:24], whole[10:30, 12:24], atol=1 / 255)
        np.testing.assert_allclose(comp[10:30, 24:36], (whole + plate_pixels)[10:30, 24:36] / 2, atol=1 / 255)
        assert np.abs(whole - plate_pixels)[outside].mean() > 0.02  # the grade did change it there


def test_render_composites_through_the_sources_alpha(tmp_path: Path, graded_run: Path):
    source, _ = write_shot(tmp_path, fmt=RGBA8, keyframes=())
    render_tiny(graded_run, source, tmp_path / "whole", frames=[2])
    render_tiny(graded_run, source, tmp_path / "comp", frames=[2], mask="alpha")
    plate_pixels = open_shot(source).read(2)
    whole, comp = open_shot(tmp_path / "whole").read(2), open_shot(tmp_path / "comp").read(2)
    alpha = plate_pixels[..., 3:]
    np.testing.assert_allclose(comp[..., :3], alpha * whole[..., :3] + (1 - alpha) * plate_pixels[..., :3],
                               atol=1 / 255)
    np.testing.assert_array_equal(comp[..., 3], plate_pixels[..., 3])


def test_render_names_the_frames_a_mask_sequence_lacks(tmp_path: Path, graded_run: Path):
    source, _ = write_shot(tmp_path)
    write_image(tmp_path / "roto" / "roto.0002.png", np.ones((HEIGHT, WIDTH, 1), np.float32), GREY8)
    with pytest.raises(FrameError) as excinfo:
        render_tiny(graded_run, source, tmp_path / "comp", frames="2-4", mask=tmp_path / "roto")
    assert str(excinfo.value) == f"masks '{tmp_path / 'roto'}' lack frames 3, 4 of '{source}'"
    assert not (tmp_path / "comp").exists()


def test_alpha_mask_on_a_source_without_alpha_is_one_line(tmp_path: Path, graded_run: Path):
    source, _ = write_shot(tmp_path)
    with pytest.raises(FrameError) as excinfo:
        render_tiny(graded_run, source, tmp_path / "comp", mask="alpha")
    assert str(excinfo.value) == (f"source '{source}' has no alpha channel to use as the mask (3 channels); "
                                  "give a mask sequence instead")
