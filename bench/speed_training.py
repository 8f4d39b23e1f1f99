"""How fast shotfit trains, beside a naive loop: patches per second, the share of a step spent drawing
the batch, and the loss curves of both from the same start (the training part of ``bench/speed.py``;
:mod:`bench.speed_harness` has the rest)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shotfit.archs import build_network, resolve_network_args
from shotfit.compare.costs import median_seconds, sync
from shotfit.config import Config
from shotfit.data.augment import PairedAugment
from shotfit.data.keyframes import Keyframes
from shotfit.engine.trainer import Trainer, TrainHooks, step_seed
from shotfit.io import open_shot
from shotfit.losses import build_loss
from shotfit.losses.lpips import LPIPS
from shotfit.runs.folder import RunFolder
from shotfit.sample_footage import SAMPLE_KEYFRAMES as KEYFRAMES
from shotfit.sample_footage import sample_video


def training_pairs(device: torch.device, folders: tuple[Path, Path] | None = None):
    """Keyframe pairs as the trainer sees them: every frame of ``folders`` = (sources, edited frames)
    that has a source frame, or by default the built-in sample's four (compressed -> clean)."""

    def tensor(pixels: list[np.ndarray]) -> torch.Tensor:
        stacked = np.stack([p[..., :3] for p in pixels]).transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(stacked)).to(device) * 2 - 1

    if folders is not None:
        sources, targets = (open_shot(folder) for folder in folders)
        frames = tuple(f for f in targets.frames if f in sources)
        return Keyframes(frames, tensor([sources.read(f) for f in frames]), tensor([targets.read(f) for f in frames]))

    def clip(name: str) -> torch.Tensor:
        with open_shot(sample_video(name)) as video:
            return tensor([video.read(frame) for frame in KEYFRAMES])

    return Keyframes(KEYFRAMES, clip("carphone_distorted.mp4"), clip("carphone_pristine.mp4"))


def measure_training(cfg: Config, device: torch.device, repeats: int, curve_steps: int,
                     folders: tuple[Path, Path] | None = None) -> dict[str, Any]:
    """Patches/s of the naive loop and of shotfit's training step; batch-drawing share; loss curves.

    ``folders``: (sources, edited frames) to train on; default the built-in sample's keyframes.
    """
    keyframes = training_pairs(device, folders)
    sampler = PairedAugment(cfg.augment)
    batch = cfg.data.batch_size
    arch = cfg.model.arch
    channels = int(keyframes.sources.shape[1])
    args = resolve_network_args(arch, {"in_channels": channels, "out_channels": channels, **cfg.model.args})

    def fresh() -> nn.Module:
        torch.manual_seed(cfg.train.seed)
        return build_network(arch, **args)

    def draw(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(step_seed(cfg.train.seed, step))
        sources, targets, _ = sampler.sample(keyframes.sources, keyframes.targets, None, batch, generator)
        return sources, targets

    # naive: eager fp32, contiguous memory (the network and the LPIPS trunk), no mixed precision
    naive_net = fresh().to(device).train()
    naive_loss = build_loss(cfg.loss).to(device)
    _contiguous_lpips(naive_loss)
    naive_opt = torch.optim.AdamW(naive_net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    naive_state = {"step": 0}

    def naive_step() -> float:
        sources, targets = draw(naive_state["step"])
        naive_state["step"] += 1
        total, _ = naive_loss(naive_net(sources), targets)
        naive_opt.zero_grad(set_to_none=True)
        total.backward()
        if cfg.train.grad_clip > 0:
            nn.utils.clip_grad_norm_(naive_net.parameters(), cfg.train.grad_clip)
        naive_opt.step()
        return float(total.detach())

    with tempfile.TemporaryDirectory() as folder:
        trainer = Trainer(fresh(), {"arch": arch, "args": args}, build_loss(cfg.loss).to(device), sampler,
                          keyframes, RunFolder(Path(folder) / "run"), cfg.train, cfg.data, device)
        marks: list[tuple[float, float]] = []  # (time, seconds spent waiting for batches) after each step

        def mark(_: Any) -> None:
            sync(device)
            marks.append((time.perf_counter(), trainer.batch_wait_s))

        trainer.hooks = TrainHooks(on_step=mark)
        naive_s = median_seconds(naive_step, device, repeats)
        trainer.fit(repeats + 2)  # the training loop itself: batches drawn ahead on CUDA
        times, waits = (np.array(values) for values in zip(*marks))
        shotfit_s = float(np.median(np.diff(times)[1:]))
        wait_share = float((waits[-1] - waits[1]) / (times[-1] - times[1]))
        draw_s = median_seconds(lambda: draw(0), device, max(repeats, 5))
        result: dict[str, Any] = {
            "batch": batch, "patch": cfg.augment.patch_size, "arch": arch,
            "amp": str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype else "fp32",
            "batches_drawn_ahead": trainer.prefetch,
            "naive": {"seconds_per_step": round(naive_s, 4), "patches_per_s": round(batch / naive_s, 3)},
            "shotfit": {"seconds_per_step": round(shotfit_s, 4), "patches_per_s": round(batch / shotfit_s, 3)},
            "speedup": round(naive_s / shotfit_s, 3),
            "batch_drawing": {"seconds": round(draw_s, 5), "share_of_naive_step": round(draw_s / naive_s, 4),
                              "waited_share_of_shotfit_loop": round(wait_share, 4)},
        }
        if curve_steps > 0:
            result["curves"] = _loss_curves(cfg, device, fresh, draw, keyframes, sampler, args, curve_steps)
    return result


def _contiguous_lpips(loss: nn.Module) -> None:
    """Put the hybrid loss's LPIPS trunk back in contiguous memory, as it ran before channels-last."""
    for module in loss.modules():
        if isinstance(module, LPIPS):
            module.memory_format = torch.contiguous_format
            module.net.to(memory_format=torch.contiguous_format)


def _loss_curves(cfg: Config, device: torch.device, fresh: Callable[[], nn.Module], draw: Callable,
                 keyframes: Any, sampler: Any, args: dict[str, Any], steps: int) -> dict[str, Any]:
    """Total loss by step for the naive loop and for shotfit's step from the same weights and batches,
    and for the naive loop from another seed (the noise a difference is measured against)."""

    def trainer_curve(naive: bool, seed: int) -> list[float]:
        train_cfg = dataclasses.replace(cfg.train, amp="off" if naive else cfg.train.amp, seed=seed, steps=steps)
        torch.manual_seed(seed)
        network = build_network(cfg.model.arch, **args)
        loss = build_loss(cfg.loss).to(device)
        if naive:
            _contiguous_lpips(loss)
        with tempfile.TemporaryDirectory() as folder:
            trainer = Trainer(network, {"arch": cfg.model.arch, "args": args}, loss, sampler, keyframes,
                              RunFolder(Path(folder) / "run"), train_cfg, cfg.data, device)
            if naive:
                trainer.memory_format = torch.contiguous_format
                trainer.network.to(memory_format=torch.contiguous_format)
            trainer.horizon = steps
            totals = []
            for _ in range(steps):
                totals.append(trainer.train_step()["total"])
                trainer.step += 1
        return totals

    naive = trainer_curve(True, cfg.train.seed)
    shotfit = trainer_curve(False, cfg.train.seed)
    other_seed = trainer_curve(True, cfg.train.seed + 1)
    window = max(steps // 10, 1)

    def smooth(values: list[float]) -> np.ndarray:
        return np.array([np.mean(values[i:i + window]) for i in range(0, len(values) - window + 1, window)])

    a, b, c = smooth(naive), smooth(shotfit), smooth(other_seed)
    return {
        "steps": steps, "window": window,
        "naive": [round(v, 5) for v in a], "shotfit": [round(v, 5) for v in b],
        "naive_other_seed": [round(v, 5) for v in c],
        "max_relative_difference": round(float(np.max(np.abs(b - a) / np.abs(a))), 4),
        "seed_noise": round(float(np.max(np.abs(c - a) / np.abs(a))), 4),
    }
