"""L1 and MSE, plain and weighted towards a painted region."""

from __future__ import annotations

import pytest
import torch

from shotfit.losses import L1Loss, MSELoss, l1_loss, mse_loss


def left_half_differs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    pred = torch.zeros(2, 3, 8, 8)
    target = pred.clone()
    target[..., :4] = 0.5
    left = torch.zeros(1, 1, 8, 8)
    left[..., :4] = 1.0
    return pred, target, left, 1.0 - left


def test_plain_values():
    pred, target, _, _ = left_half_differs()
    assert l1_loss(pred, target).item() == pytest.approx(0.25)
    assert mse_loss(pred, target).item() == pytest.approx(0.125)
    assert L1Loss()(pred, target).item() == pytest.approx(0.25)
    assert MSELoss()(pred, target).item() == pytest.approx(0.125)


@pytest.mark.parametrize("loss", [l1_loss, mse_loss])
def test_weight_map_steers_the_loss_to_the_painted_region(loss):
    pred, target, left, right = left_half_differs()
    assert loss(pred, target, left).item() == pytest.approx(loss(pred[..., :4], target[..., :4]).item())
    assert loss(pred, target, right).item() == 0.0
    # Only relative weights matter, and a per-sample map equals a broadcast one.
    assert loss(pred, target, 3 * left.expand(2, 1, 8, 8)).item() == pytest.approx(loss(pred, target, left).item())
    assert loss(pred, target, torch.ones(1, 1, 8, 8)).item() == pytest.approx(loss(pred, target).item())


def test_all_zero_weight_map_gives_zero_not_nan():
    pred, target, _, _ = left_half_differs()
    assert l1_loss(pred, target, torch.zeros(1, 1, 8, 8)).item() == 0.0


def test_bad_inputs_are_refused_with_shapes():
    pred = torch.zeros(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\) vs \(1, 3, 8, 9\)"):
        l1_loss(pred, torch.zeros(1, 3, 8, 9))
    with pytest.raises(ValueError, match=r"weight map must be \(1, 1, 8, 8\).*got \(1, 3, 8, 8\)"):
        l1_loss(pred, pred, torch.ones(1, 3, 8, 8))
    with pytest.raises(ValueError, match="negative"):
        mse_loss(pred, pred, -torch.ones(1, 1, 8, 8))
