"""Tiny shots and tiny training runs for the engine and render tests (seconds on two CPU cores).

Imported by name (``from tiny_runs import ...``): the tests folder is on sys.path through its conftest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from shotfit import api
from shotfit.io import PixelFormat, write_image

PNG8 = PixelFormat(".png", "uint8", 3)
PNG16 = PixelFormat(".png", "uint16", 3)
EXR_HALF = PixelFormat(".exr", "half", 3)

HEIGHT, WIDTH = 40, 48

# A 4-wide, 2-level U-Net on 32-pixel patches: about 0.02 s a step on one thread. One thread because
# the test machine's two cores are shared, where two torch threads spin and run ten times slower.
TINY = ("model.width=4", "model.depth=2", "augment.patch_size=32", "data.batch_size=2", "loss.lpips=0",
        "train.warmup_steps=0", "train.lr=0.01", "train.threads=1")


def plate(frame: int, height: int = HEIGHT, width: int = WIDTH, channels: int = 3) -> np.ndarray:
    """(H, W, C) float32 in [0.05, 0.95]: gradients, a sine that moves with the frame, a hard-edged disc."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    yy, xx = yy / max(height - 1, 1), xx / max(width - 1, 1)
    disc = ((xx - 0.3 - 0.02 * frame) ** 2 + (yy - 0.5) ** 2 < 0.04).astype(np.float32)
    layers = [xx, yy, 0.5 + 0.5 * np.sin(9 * xx + 5 * yy + frame), disc, 1 - xx]
    image = np.stack(layers[:channels], axis=-1)
    return (0.05 + 0.9 * image).astype(np.float32)


GAIN = np.array([1.15, 0.9, 0.6], np.float32)


def grade(pixels: np.ndarray) -> np.ndarray:
    """The edit the tests teach: a colour gain (warmer, less blue), which a tiny net learns in 20 steps."""
    gain = GAIN[: pixels.shape[2]] if pixels.shape[2] <= 3 else np.append(GAIN, 1.0)  # alpha unchanged
    return np.clip(pixels * gain, 0.0, 1.0).astype(np.float32)


def write_shot(folder: Path, frames: Iterable[int] = range(1, 7), keyframes: Iterable[int] = (1, 4), *,
               fmt: PixelFormat = PNG8, name: str = "plate.{:04d}", size: tuple[int, int] = (HEIGHT, WIDTH),
               edit: Callable[[np.ndarray], np.ndarray] = grade, scale: float = 1.0) -> tuple[Path, Path]:
    """Write ``folder/plate/`` (the shot) and ``folder/kf/`` (edited keyframes, same names).

    ``scale`` multiplies the pixel values (scene-linear EXR shots go above 1).
    """
    source, keys = folder / "plate", folder / "kf"
    for frame in frames:
        pixels = plate(frame, *size, channels=fmt.channels) * scale
        write_image(source / f"{name.format(frame)}{fmt.ext}", pixels, fmt)
        if frame in keyframes:
            write_image(keys / f"{name.format(frame)}{fmt.ext}", edit(pixels / scale) * scale, fmt)
    return source, keys


def train_tiny(source: Path, keys: Path, out: Path, *overrides: str, **kwargs) -> api.TrainSummary:
    """``api.train`` on the CPU with the tiny network; torch's thread count is put back afterwards."""
    threads = torch.get_num_threads()
    try:
        kwargs.setdefault("tracking", api.TrackingOptions(enabled=False))  # tracking has tests of its own
        return api.train(source, keys, out, overrides=(*TINY, *overrides), device="cpu", **kwargs)
    finally:
        torch.set_num_threads(threads)


def render_tiny(run: Path, source: Path, out: Path, **kwargs) -> api.RenderResult:
    """``api.render`` on the CPU; torch's thread count is put back afterwards."""
    threads = torch.get_num_threads()
    try:
        return api.render(run, source, out, device="cpu", **kwargs)
    finally:
        torch.set_num_threads(threads)


def weights(path: Path) -> dict[str, torch.Tensor]:
    """The network state dict saved in a model.pt or checkpoint."""
    return torch.load(path, map_location="cpu", weights_only=True)["network"]


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit-identical state dicts: same names, same dtypes, same bits (running statistics included)."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)
