"""What every peer baseline shares: keyframe crops, a budgeted training loop with timed snapshots,
and frame prediction for scoring.

A peer trains on the keyframes in network space ([-1, 1], NCHW: what shotfit's own network sees for
8-bit shots) and stops at a step budget or a wall-clock budget, exactly as ``shotfit train`` does:
the loop stops at the first step past the time. Snapshots of the generator are written with the step
and the training seconds spent so far (``elapsed_s``, counted from the loop's start as shotfit's
checkpoints count it), so quality can be plotted against time after training.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shotfit.compare.archs import BenchBudget
from shotfit.engine.trainer import step_seed
from shotfit.errors import ShotfitError
from shotfit.runs.folder import save_state

log = logging.getLogger(__name__)

LOG_EVERY = 10
SNAPSHOT_NAME = "step_{:06d}.pt"


class Peer(Protocol):
    """A baseline method: its generator, one optimiser step, and how it renders a frame."""

    name: str
    generator: nn.Module

    def recipe(self) -> dict[str, Any]:
        """What one step is (batch, patch, optimiser, loss weights), for the report."""

    def train_step(self, rng: torch.Generator, progress: float) -> dict[str, float]:
        """One optimiser step with crops drawn from ``rng``; ``progress`` in [0, 1] is the budget used."""

    def predict(self, x: torch.Tensor, frame: int) -> torch.Tensor:
        """(1, C, H, W) in [-1, 1] -> (1, C, H, W) in [-1, 1]; ``frame`` seeds any test-time noise."""


@dataclass
class PeerTrainResult:
    steps: int
    elapsed_s: float
    stopped_by: str  # "steps" or "time"
    history: list[dict[str, float]] = field(default_factory=list)


def random_crops(sources: torch.Tensor, targets: torch.Tensor, size: int, count: int, rng: torch.Generator,
                 flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` aligned ``size`` x ``size`` crops of random keyframes at random places.

    A keyframe smaller than ``size`` is reflect-padded up to it first (the sample is 176x144).

    Shape:
        sources, targets: (K, C, H, W). Returns two (count, C, size, size) tensors.
    """
    pairs = torch.cat([sources, targets], dim=1)
    height, width = pairs.shape[2:]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        pairs = F.pad(pairs, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode="reflect")
        height, width = pairs.shape[2:]
    picks = torch.randint(0, pairs.shape[0], (count,), generator=rng).tolist()
    ys = torch.randint(0, height - size + 1, (count,), generator=rng).tolist()
    xs = torch.randint(0, width - size + 1, (count,), generator=rng).tolist()
    flips = (torch.rand(count, generator=rng) < 0.5).tolist() if flip else [False] * count
    crops = []
    for k, y, x, mirrored in zip(picks, ys, xs, flips):
        crop = pairs[k, :, y:y + size, x:x + size]
        crops.append(crop.flip(-1) if mirrored else crop)
    batch = torch.stack(crops)
    channels = sources.shape[1]
    return batch[:, :channels].contiguous(), batch[:, channels:].contiguous()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflect-pad (B, C, H, W) so H and W are multiples of ``multiple``; returns the padding to crop back.

    Padding wider than the frame (reflection needs pad < size) is done in rounds.
    """
    height, width = x.shape[2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    left, right, top, bottom = padding
    while left or right or top or bottom:
        h, w = x.shape[2:]
        step = (min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1))
        x = F.pad(x, step, mode="reflect")
        left, right, top, bottom = (a - b for a, b in zip((left, right, top, bottom), step))
    return x, padding


def crop_padding(y: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = padding
    height, width = y.shape[2:]
    return y[:, :, top:height - bottom, left:width - right]


def init_normal(module: nn.Module) -> None:
    """pix2pix's initialisation, also Texler's default: conv weights N(0, 0.02), norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def train_peer(peer: Peer, budget: BenchBudget, folder: Path | None = None, seed: int = 0, snapshots: int = 16,
               on_step: Callable[[int, dict[str, float]], None] | None = None) -> PeerTrainResult:
    """Train ``peer`` until the budget is spent, writing ``snapshots`` timed snapshots and ``model.pt``.

    Snapshots fall every ``steps // snapshots`` steps under a step budget and every
    ``seconds / snapshots`` seconds under a wall-clock budget. Each step's crops come from a generator
    seeded by (seed, step), as in shotfit's trainer. The seconds spent writing snapshots are left out
    of the training clock (a pix2pix snapshot is 218 MB); shotfit's own checkpoints are counted, as
    its trainer counts them, so the comparison errs against shotfit.

    Args:
        folder: where ``snapshots/step_NNNNNN.pt`` and ``model.pt`` go; None writes nothing.
    """
    seconds = None if budget.minutes is None else budget.minutes * 60.0
    every_steps = max(1, (budget.steps or 0) // snapshots) if budget.steps else None
    every_seconds = seconds / snapshots if seconds else None
    next_time = every_seconds
    history: list[dict[str, float]] = []
    sums: dict[str, float] = {}
    step, stopped_by = 0, "steps"
    started, paused = time.monotonic(), 0.0

    def clock() -> float:  # training seconds: writing snapshots is not counted
        return time.monotonic() - started - paused

    while True:
        progress = step / budget.steps if budget.steps else min(1.0, clock() / seconds)
        terms = peer.train_step(torch.Generator().manual_seed(step_seed(seed, step)), progress)
        if not all(np.isfinite(v) for v in terms.values()):
            raise ShotfitError(f"{peer.name}: a loss became non-finite at step {step + 1} ({terms})")
        step += 1
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value
        if step % LOG_EVERY == 0:
            history.append({"step": step, **{k: v / LOG_EVERY for k, v in sums.items()}})
            sums = {}
        if on_step is not None:
            on_step(step, terms)
        elapsed = clock()
        out_of_steps = bool(budget.steps) and step >= budget.steps
        if out_of_steps or (seconds is not None and elapsed >= seconds):
            stopped_by = "steps" if out_of_steps else "time"
            break
        due = (every_steps and step % every_steps == 0) or (next_time is not None and elapsed >= next_time)
        if folder is not None and due:
            writing = time.monotonic()
            save_snapshot(peer, folder / "snapshots" / SNAPSHOT_NAME.format(step), step, elapsed)
            paused += time.monotonic() - writing
            while next_time is not None and next_time <= elapsed:
                next_time += every_seconds
    elapsed = clock()
    if sums:
        history.append({"step": step, **{k: v / (step % LOG_EVERY or LOG_EVERY) for k, v in sums.items()}})
    if folder is not None:
        save_snapshot(peer, folder / "model.pt", step, elapsed)
    return PeerTrainResult(step, elapsed, stopped_by, history)


def save_snapshot(peer: Peer, path: Path, step: int, elapsed_s: float) -> None:
    """The generator's weights with the step and the training seconds, in shotfit's checkpoint layout."""
    save_state({"kind": "snapshot", "arch": peer.name, "step": step, "elapsed_s": elapsed_s,
                "network": peer.generator.state_dict()}, path)


@torch.no_grad()
def predict_pixels(peer: Peer, pixels: np.ndarray, frame: int, device: torch.device) -> np.ndarray:
    """A frame as read ((H, W, 3) float in [0, 1], 8-bit sRGB) through the peer, back in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(pixels[..., :3].transpose(2, 0, 1)))[None].to(device) * 2 - 1
    y = peer.predict(x.float(), frame).clamp(-1, 1)
    return (y[0].permute(1, 2, 0).float().cpu().numpy() * 0.5 + 0.5).astype(np.float32)
