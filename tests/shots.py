"""Tiny shots for the tests, and tiny runs trained on them.

Two shots of 40x48, each with an edit known as a function of its source, so every frame's ground truth is known:

- the command-line shot, written with OpenCV, OpenEXR and PyAV (not shotfit's writers): frames 1001-1006 of
  a horizontal ramp with a bright blob moving 3 px a frame (so optical flow has something to follow);
  ``edit`` swaps red and blue and lowers contrast, and 3 keyframes stand for what an artist fixed by hand
  (``plate``, ``write_shot``, ``train_args``, ``succeeds``, ``fails``);
- the graded shot for the engine, render and export tests, written with ``shotfit.io.write_image`` in any
  pixel format: frames 1-6 of gradients, a moving sine and a hard-edged disc, edited by a colour gain
  (``disc_plate``, ``grade``, ``write_graded_shot``, ``train_tiny``, ``render_tiny``).

Imported by name (``from shots import ...``): the tests folder is on sys.path through its conftest.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import av
import cv2
import numpy as np
import OpenEXR
import pytest
import torch
from typer.testing import CliRunner, Result

from shotfit import api
from shotfit.cli import app
from shotfit.io import PixelFormat, write_image

FRAMES = tuple(range(1001, 1007))
KEYFRAMES = (1001, 1004, 1006)
HEIGHT, WIDTH = 40, 48
# A network small enough to train a few steps in well under a second. One thread: on a shared
# machine, torch's threads wait on each other and 2 threads make these tiny steps ~50x slower.
TINY_FLAGS = ("--set", "model.width=4", "--set", "model.depth=2", "--set", "augment.patch_size=32",
              "--set", "data.batch_size=2", "--set", "loss.lpips=0", "--set", "train.threads=1")
# The same kind of network for api.train: a 4-wide, 2-level U-Net on 32-pixel patches, about 0.02 s a step
# on one thread, with a learning rate that teaches the colour gain in 20 steps.
TINY = ("model.width=4", "model.depth=2", "augment.patch_size=32", "data.batch_size=2", "loss.lpips=0",
        "train.warmup_steps=0", "train.lr=0.01", "train.threads=1")

PNG8 = PixelFormat(".png", "uint8", 3)
PNG16 = PixelFormat(".png", "uint16", 3)
EXR_HALF = PixelFormat(".exr", "half", 3)

runner = CliRunner()


def plate(frame: int, channels: int = 3) -> np.ndarray:
    """Source frame ``frame`` as float32 (H, W, C) in [0, 1]."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    t = frame - FRAMES[0]
    blob = np.exp(-((x - 10 - 3 * t) ** 2 + (y - 20) ** 2) / 40.0)
    ramp = 0.15 + 0.5 * x / WIDTH + 0.1 * y / HEIGHT
    rgb = np.stack([ramp + 0.3 * blob, 0.8 * ramp + 0.2 * blob, 0.6 - 0.4 * ramp + 0.3 * blob], axis=-1)
    rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32)
    return rgb.mean(axis=-1, keepdims=True) if channels == 1 else rgb


def edit(pixels: np.ndarray) -> np.ndarray:
    """The artist's edit: red and blue swapped, contrast lowered around mid-grey."""
    swapped = pixels[..., ::-1] if pixels.shape[-1] == 3 else pixels
    return (0.5 + 0.7 * (swapped - 0.5)).astype(np.float32)


def write_png(path: Path, pixels: np.ndarray, bits: int = 8) -> None:
    """float (H, W, C) in [0, 1] -> an 8- or 16-bit PNG, written with OpenCV."""
    scale, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    codes = np.rint(np.clip(pixels, 0, 1) * scale).astype(dtype)
    codes = codes[..., 0] if codes.shape[-1] == 1 else cv2.cvtColor(codes, cv2.COLOR_RGB2BGR)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), codes)


def read_png(path: Path) -> np.ndarray:
    """Codes as stored (uint8 or uint16), RGB order."""
    codes = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert codes is not None, path
    return cv2.cvtColor(codes, cv2.COLOR_BGR2RGB) if codes.ndim == 3 else codes


def write_exr(path: Path, pixels: np.ndarray, dtype: type = np.float16) -> None:
    """float (H, W, 3) -> a half (or float) RGB EXR, written with OpenEXR."""
    channels = {name: np.ascontiguousarray(pixels[..., i], dtype=dtype) for i, name in enumerate("RGB")}
    path.parent.mkdir(parents=True, exist_ok=True)
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))


def read_exr(path: Path) -> np.ndarray:
    """An EXR's R, G, B channels as stored (their dtype kept), (H, W, 3)."""
    with OpenEXR.File(str(path), separate_channels=True) as exr:
        channels = exr.channels()
        return np.stack([channels[name].pixels for name in "RGB"], axis=-1)


def write_shot(folder: Path, frames: Iterable[int] = FRAMES, *, make: Callable[[int], np.ndarray] = plate,
               name: str = "plate.{:04d}.png", bits: int = 8) -> Path:
    """PNG frames ``make(frame)`` named ``name.format(frame)`` in ``folder``; returns the folder."""
    for frame in frames:
        write_png(folder / name.format(frame), make(frame), bits)
    return folder


def write_video(path: Path, count: int = len(FRAMES)) -> Path:
    """An H.264 video of the plate: frames 0..count-1 are plate(1001), plate(1002), ..."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv444p"
        for frame in range(count):
            codes = np.rint(plate(FRAMES[0] + frame) * 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(codes, format="rgb24")))
        container.mux(stream.encode())
    return path


def shotfit(*args: str | Path) -> Result:
    """Run the command in this process, stdout and stderr kept apart."""
    return runner.invoke(app, [str(a) for a in args])


def succeeds(*args: str | Path) -> Result:
    result = shotfit(*args)
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{result.exception!r}"
    return result


def fails(*args: str | Path) -> str:
    """Run a command that must fail as a user error: exit 1, one 'shotfit: ...' line on stderr, no traceback."""
    result = shotfit(*args)
    assert isinstance(result.exception, SystemExit), f"not a clean exit: {result.exception!r}\n{result.stderr}"
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{result.stderr}"
    assert lines[0].startswith("shotfit: "), lines[0]
    return lines[0]


def train_args(source: str | Path, keys: str | Path, out: str | Path, *extra: str | Path,
               steps: int | None = 3) -> list[str | Path]:
    """``shotfit train`` of the tiny network on the CPU for ``steps`` steps (None: no --steps), untracked
    (tracking has tests of its own)."""
    budget = [] if steps is None else ["--steps", str(steps)]
    return ["train", "--source", source, "--target", keys, "--out", out, *TINY_FLAGS, *budget, "--device", "cpu",
            "--no-track", *extra]


# --- a run trained once per session, copied for each test that needs one ------------------------

_trained: dict[str, tuple[Path, Result]] = {}


def trained_run(factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    """One shot (``src/``, ``keys/``, ``truth/``) and a 3-step run (``run/``), made once per session.

    Tests copy it (``copy_trained``) rather than touch it. Returns the folder holding all four and
    the result of the ``shotfit train`` that made the run.
    """
    if "run" not in _trained:
        root = factory.mktemp("trained")
        write_shot(root / "src")
        write_shot(root / "keys", KEYFRAMES, make=lambda f: edit(plate(f)))
        write_shot(root / "truth", make=lambda f: edit(plate(f)))
        result = succeeds(*train_args(root / "src", root / "keys", root / "run"))
        _trained["run"] = (root, result)
    return _trained["run"]


def copy_trained(factory: pytest.TempPathFactory, into: Path) -> Path:
    """Copies of the trained shot and run in ``into`` (src/, keys/, truth/, run/); returns ``into``."""
    root, _ = trained_run(factory)
    for name in ("src", "keys", "truth", "run"):
        shutil.copytree(root / name, into / name)
    return into


# --- what a failing command must leave alone ---------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (relative path -> sha256 of its bytes)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_unchanged(before: dict[str, str], root: Path, allowed_new: Sequence[str] = ()) -> None:
    """Every file of ``before`` is still there with the same bytes, and nothing new appeared."""
    after = snapshot(root)
    lost = {name for name in before if after.get(name) != before[name]}
    assert not lost, f"files lost or changed: {sorted(lost)}"
    new = set(after) - set(before) - set(allowed_new)
    assert not new, f"a failing command wrote files: {sorted(new)}"


def isolated_process_state() -> Iterator[None]:
    """For an autouse fixture: one torch thread during the test (tiny frames are fastest so, and
    CPU-time is shared); afterwards torch's threads and the root logger, which the CLI reconfigures,
    are put back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        torch.set_num_threads(threads)


# --- the graded shot and tiny runs trained on it through the API ---------------------------------

def local_ray(cpus: int = 2) -> Iterator[None]:
    """A local Ray of ``cpus`` CPUs, as an entry point starts one, in a short temporary folder removed afterwards
    (for a module fixture: ``yield from shots.local_ray()``). Started after any variable its workers must
    inherit (``AWS_*``) is set."""
    import ray  # only the tests of Ray renders and of the service's jobs start it

    folder = tempfile.mkdtemp(prefix="sf-ray-", dir="/tmp")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=cpus, include_dashboard=False, _temp_dir=folder, log_to_driver=False,
             object_store_memory=128 * 2**20)
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


def disc_plate(frame: int, height: int = HEIGHT, width: int = WIDTH, channels: int = 3) -> np.ndarray:
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


def write_graded_shot(folder: Path, frames: Iterable[int] = range(1, 7), keyframes: Iterable[int] = (1, 4), *,
                      fmt: PixelFormat = PNG8, name: str = "plate.{:04d}", size: tuple[int, int] = (HEIGHT, WIDTH),
                      edit: Callable[[np.ndarray], np.ndarray] = grade, scale: float = 1.0) -> tuple[Path, Path]:
    """Write ``folder/plate/`` (the shot) and ``folder/kf/`` (edited keyframes, same names).

    ``scale`` multiplies the pixel values (scene-linear EXR shots go above 1).
    """
    source, keys = folder / "plate", folder / "kf"
    for frame in frames:
        pixels = disc_plate(frame, *size, channels=fmt.channels) * scale
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
