"""HybridLoss: the weighted total, per-term values, zero-weight terms costing nothing, config errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import shotfit.losses.hybrid as hybrid_module
from shotfit.errors import ConfigError
from shotfit.losses import LPIPS, HybridLoss, l1_loss, laplacian_loss, ssim_loss


class MeanGap(nn.Module):
    """An extra term: the gap between mean brightnesses."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred.mean() - target.mean()).abs()


class MustNotRun(nn.Module):
    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise AssertionError("a zero-weight term was evaluated")


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    target = torch.rand(2, 3, 32, 32) * 2 - 1
    return (0.8 * target + 0.1).requires_grad_(), target


def test_default_is_l1_alone(pair):
    pred, target = pair
    total, values = HybridLoss()(pred, target)
    assert list(values) == ["l1"]
    assert total.item() == pytest.approx(l1_loss(pred, target).item())


def test_total_is_the_weighted_sum_of_the_unweighted_values(pair):
    pred, target = pair
    loss = HybridLoss(l1=1.0, lpips=0.5, laplacian=2.0, ssim=0.25, laplacian_levels=3, extra=[("age", MeanGap(), 4.0)])
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

    monkeypatch.setattr(hybrid_module, "LPIPS", no_lpips)
    loss = HybridLoss(l1=1.0, lpips=0.0, ssim=0.0, extra=[("age", MustNotRun(), 0.0)])
    _, values = loss(*pair)
    assert list(values) == ["l1"]
    assert len(list(loss.children())[0]) == 1


def test_weight_map_weights_lpips_through_its_spatial_map(pair):
    pred, target = pair
    pred = pred.detach().clone()
    pred[..., 16:] = target[..., 16:]
    left = torch.zeros(1, 1, 32, 32)
    left[..., :8] = 1.0
    loss = HybridLoss(l1=0.0, lpips=1.0)
    _, weighted = loss(pred, target, left)
    expected = (LPIPS(spatial=True)(pred, target) * left).sum() / (2 * left.sum())  # one map, two samples
    assert weighted["lpips"].item() == pytest.approx(expected.item(), rel=1e-5)
    _, plain = loss(pred, target)
    assert weighted["lpips"] > plain["lpips"]


def test_lpips_tolerates_overshooting_predictions_but_not_wrong_range_targets(pair):
    _, target = pair
    loss = HybridLoss(lpips=1.0)
    total, _ = loss(target * 1.05, target)
    assert torch.isfinite(total)
    with pytest.raises(ValueError, match="expects input_range"):
        loss(target, (target + 1) * 127.5)


def test_lpips_stays_frozen_in_eval_inside_a_training_parent(pair):
    loss = HybridLoss(lpips=1.0)
    loss.train()
    lpips = next(m for m in loss.modules() if isinstance(m, LPIPS))
    assert not lpips.training
    assert not any(p.requires_grad for p in loss.parameters())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lpips": -0.1}, "loss weight 'lpips' = -0.1 must be a finite number >= 0"),
    ({"ssim": float("nan")}, "loss weight 'ssim' = nan must be"),
    ({"l1": 0.0}, "every loss weight is 0 (l1, mse, lpips, laplacian, ssim)"),
    ({"extra": [("age", MeanGap(), -1.0)]}, "loss weight 'age' = -1.0"),
    ({"extra": [("ssim", MeanGap(), 1.0)]}, "extra loss name 'ssim' is used twice"),
    ({"extra": [("age", MeanGap(), 1.0), ("age", MeanGap(), 1.0)]}, "extra loss name 'age' is used twice"),
    ({"extra": [("my age", MeanGap(), 1.0)]}, "extra loss name 'my age' must be letters"),
    ({"extra": [("age", len, 1.0)]}, "extra loss 'age' must be an nn.Module"),
    ({"laplacian_levels": 0}, "loss laplacian_levels = 0 must be an integer >= 1"),
])
def test_bad_weights_are_one_line_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as caught:
        HybridLoss(**kwargs)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_extra_term_must_return_a_scalar(pair):
    class PerSample(nn.Module):
        def forward(self, pred, target):
            return (pred - target).abs().mean(dim=(1, 2, 3))

    with pytest.raises(ValueError, match=r"extra loss 'age' must return a scalar tensor, got \(2,\)"):
        HybridLoss(extra=[("age", PerSample(), 1.0)])(*pair)


def test_mse_term_is_the_mean_squared_error():
    pred, target = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    total, values = HybridLoss(l1=0.0, mse=2.0)(pred, target)
    assert set(values) == {"mse"}
    assert values["mse"].item() == pytest.approx(0.25)
    assert total.item() == pytest.approx(0.5)
