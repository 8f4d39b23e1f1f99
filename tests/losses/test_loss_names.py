"""One name per loss term from the config to the logs: HybridLoss's keys, the trainer's step values and
history rows, and the trackers' ``loss/<name>``, with ``total`` for the weighted sum."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from shotfit.config import DataConfig, ExtraLossConfig, LossConfig, TrainConfig
from shotfit.engine.trainer import Trainer, TrainHooks, loss_metrics
from shotfit.errors import ShotfitError
from shotfit.losses import TOTAL, build_loss


class Recorder:
    """A tracker that keeps what it is sent."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.metrics.append(dict(metrics))


def trainer_with(loss: nn.Module, tracker: Recorder | None = None) -> Trainer:
    # train_step and log_window need neither keyframes, sampler nor run folder
    return Trainer(nn.Conv2d(3, 3, 3, padding=1), {"arch": "conv", "args": {}}, loss, None, None, None,
                   TrainConfig(amp="off", warmup_steps=0), DataConfig(), torch.device("cpu"),
                   TrainHooks(tracker=tracker))


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, None]:
    generator = torch.Generator().manual_seed(0)
    sources = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    return sources, (0.5 * sources + 0.1).clamp(-1, 1), None


def test_a_term_keeps_its_config_name_from_the_loss_to_the_tracker(batch, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cfg = LossConfig(l1=1.0, mse=0.5, lpips=0.0, laplacian=0.25, ssim=0.1, laplacian_levels=3,
                     extra=(ExtraLossConfig(network="embedding_nets:tiny", weight=0.2, name="age"),))
    weighted = [name for name, weight in cfg.term_weights().items() if weight > 0]
    tracker = Recorder()
    trainer = trainer_with(build_loss(cfg, plugins={"embedding_nets:tiny"}), tracker)
    values = trainer.train_step(batch)
    assert list(values) == [*weighted, "age", TOTAL] == ["l1", "mse", "laplacian", "ssim", "age", "total"]
    trainer.step = 1
    trainer.log_window(values, steps_per_s=5.0)
    assert trainer.history[-1] == {"step": 1, "lr": trainer.lr(0), "steps_per_s": 5.0, **values}
    logged = {name: value for name, value in tracker.metrics[-1].items() if name.startswith("loss/")}
    assert logged == {f"loss/{name}": value for name, value in values.items()}
    assert loss_metrics(trainer.history[-1]) == logged


def test_loss_metrics_leave_out_the_history_columns_and_the_validation():
    row = {"step": 10, "lr": 2e-3, "steps_per_s": 4.0, "l1": 0.05, "age": 0.01, "total": 0.06, "val/psnr": 31.0}
    assert loss_metrics(row) == {"loss/l1": 0.05, "loss/age": 0.01, "loss/total": 0.06}


@pytest.mark.parametrize("name", ["total", "step", "lr", "steps_per_s", "val/psnr"])
def test_the_trainer_refuses_a_term_named_like_its_own_entries(name, batch):
    class Clashing(nn.Module):
        def forward(self, pred, target, weight=None):
            value = (pred - target).abs().mean()
            return value, {name: value.detach()}

    with pytest.raises(ShotfitError, match=f"the loss returned a term named '{name}'"):
        trainer_with(Clashing()).train_step(batch)

