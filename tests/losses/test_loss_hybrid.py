"""HybridLoss and build_loss: the weighted total, per-term values, zero-weight terms costing nothing, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from shotfit.config import ExtraLossConfig, LossConfig
from shotfit.errors import ConfigError
from shotfit.losses import LPIPS, HybridLoss, build_loss, l1_loss, laplacian_loss, ssim_loss


class MeanGap(nn.Module):
    """An extra term: the gap between mean brightnesses."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred.mean() - target.mean()).abs()


class MustNotRun(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a zero-weight term was evaluated")


def only(**weights: float) -> LossConfig:
    """A loss config with every term off but those given (options such as laplacian_levels pass through)."""
    return LossConfig(**{**dict.fromkeys(LossConfig().term_weights(), 0.0), **weights})


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    return (0.8 * target + 0.1).requires_grad_(), target


def test_l1_alone(pair):
    pred, target = pair
    total, values = HybridLoss(only(l1=1.0))(pred, target)
    assert list(values) == ["l1"]
    assert total.item() == pytest.approx(l1_loss(pred, target).item())


def test_the_default_config_builds_its_four_terms_in_config_order(pair):
    _, values = HybridLoss(LossConfig())(*pair)
    assert list(values) == ["l1", "lpips", "laplacian", "ssim"]


def test_total_is_the_weighted_sum_of_the_unweighted_values(pair):
    pred, target = pair
    loss = HybridLoss(only(l1=1.0, lpips=0.5, laplacian=2.0, ssim=0.25, laplacian_levels=3),
                      extra=[("age", MeanGap(), 4.0)])
    total, values = loss(pred, target)
    assert list(values) == ["l1", "lpips", "laplacian", "ssim", "age"]
    assert values["laplacian"].item() == pytest.approx(laplacian_loss(pred, target, levels=3).item())
    assert values["ssim"].item() == pytest.approx(ssim_loss(pred, target).item())
    assert values["lpips"].item() == pytest.approx(LPIPS()(pred, target).mean().item())
    weights = {"l1": 1.0, "lpips": 0.5, "laplacian": 2.0, "ssim": 0.25, "age": 4.0}
    expected = sum(weight * values[name] for name, weight in weights.items())
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(not value.requires_grad for value in values.values())
    total.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_zero_weight_terms_are_neither_built_nor_run(pair, monkeypatch):
    def no_lpips(*args, **kwargs):
        raise AssertionError("LPIPS was built for a zero weight")

    monkeypatch.setattr(LPIPS, "__init__", no_lpips)
    loss = HybridLoss(only(l1=1.0, laplacian=1.0), extra=[("age", MustNotRun(), 0.0)])
    _, values = loss(*pair)
    assert list(values) == ["l1", "laplacian"]
    assert len(loss.terms) == 2


def test_build_loss_adds_the_weighted_embedding_terms_under_their_names(pair, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    cfg = dataclasses.replace(only(l1=1.0), extra=(
        ExtraLossConfig(network="embedding_nets:tiny", weight=0.5),
        ExtraLossConfig(network="embedding_nets:two_level", weight=0.25, distance="l2", name="age"),
        # never imported: a zero weight costs nothing
        ExtraLossConfig(network="no_such_studio_package.nets:identity", weight=0.0),
    ))
    total, values = build_loss(cfg, plugins={"embedding_nets:tiny", "embedding_nets:two_level"})(*pair)
    assert list(values) == ["l1", "tiny", "age"]
    expected = pair[0].new_zeros(()) + 1.0 * values["l1"] + 0.5 * values["tiny"] + 0.25 * values["age"]
    assert torch.equal(total.detach(), expected)


def test_weight_map_weights_lpips_through_its_spatial_map(pair):
    pred, target = pair
    pred = pred.detach().clone()
    pred[..., 16:] = target[..., 16:]
    left = torch.zeros(1, 1, 32, 32)
    left[..., :8] = 1.0
    loss = HybridLoss(only(lpips=1.0))
    _, weighted = loss(pred, target, left)
    expected = (LPIPS(spatial=True)(pred, target) * left).sum() / (2 * left.sum())  # one map, two samples
    assert weighted["lpips"].item() == pytest.approx(expected.item(), rel=1e-5)
    _, plain = loss(pred, target)
    assert weighted["lpips"] > plain["lpips"]


def test_lpips_tolerates_overshooting_predictions_but_not_wrong_range_targets(pair):
    _, target = pair
    loss = HybridLoss(only(lpips=1.0))
    total, _ = loss(target * 1.05, target)
    assert torch.isfinite(total)
    with pytest.raises(ValueError, match="expects input_range"):
        loss(target, (target + 1) * 127.5)


def test_lpips_stays_frozen_in_eval_inside_a_training_parent(pair):
    loss = HybridLoss(only(lpips=1.0))
    loss.train()
    lpips = next(m for m in loss.modules() if isinstance(m, LPIPS))
    assert not lpips.training
    assert not any(p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize(("cfg", "extra", "message"), [
    (only(), (), "every loss weight is 0 (l1, mse, lpips, laplacian, ssim, temporal)"),
    (only(), [("age", MeanGap(), 0.0)], "every loss weight is 0 (l1, mse, lpips, laplacian, ssim, temporal, age)"),
    (only(l1=1.0), [("age", MeanGap(), -1.0)], "loss weight 'age' = -1.0"),
    (only(l1=1.0), [("ssim", MeanGap(), 1.0)], "extra loss name 'ssim' is used twice"),
    (only(l1=1.0), [("total", MeanGap(), 1.0)], "extra loss name 'total' is used twice"),
    (only(l1=1.0), [("age", MeanGap(), 1.0), ("age", MeanGap(), 1.0)], "extra loss name 'age' is used twice"),
    (only(l1=1.0), [("my age", MeanGap(), 1.0)], "extra loss name 'my age' must be letters"),
    (only(l1=1.0), [("age", len, 1.0)], "extra loss 'age' must be an nn.Module"),
])
def test_bad_weights_are_one_line_config_errors(cfg, extra, message):
    with pytest.raises(ConfigError) as caught:
        HybridLoss(cfg, extra=extra)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("weights", "message"), [
    ({"lpips": -0.1}, "loss.lpips = -0.1 is out of range (must be >= 0.0)"),
    ({"ssim": float("nan")}, "loss.ssim = nan must be a finite number"),
    ({"ssim": float("inf")}, "loss.ssim = inf must be a finite number"),
    ({"laplacian_levels": 0}, "loss.laplacian_levels = 0 is out of range (must be >= 1)"),
])
def test_the_config_refuses_negative_weights_before_any_loss_is_built(weights, message):
    with pytest.raises(ConfigError) as caught:
        only(l1=1.0, **weights)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_extra_term_must_return_a_scalar(pair):
    class PerSample(nn.Module):
        def forward(self, pred, target):
            return (pred - target).abs().mean(dim=(1, 2, 3))

    with pytest.raises(ValueError, match=r"loss term 'age' must return a scalar tensor, got \(2,\)"):
        HybridLoss(only(), extra=[("age", PerSample(), 1.0)])(*pair)


def test_mse_term_is_the_mean_squared_error():
    pred, target = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    total, values = HybridLoss(only(mse=2.0))(pred, target)
    assert set(values) == {"mse"}
    assert values["mse"].item() == pytest.approx(0.25)
    assert total.item() == pytest.approx(0.5)
