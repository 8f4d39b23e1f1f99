"""The temporal term: zero for a still shot rendered unchanged, positive for flicker, blind where the flow
fails, and summed into the hybrid loss only on steps that drew frame pairs."""

from __future__ import annotations

import pytest
import torch

from shotfit.config import LossConfig
from shotfit.errors import ConfigError
from shotfit.losses import HybridLoss, PairOutputs, build_loss, temporal_loss
from shotfit.losses.temporal import warp_back


def frames(batch: int = 2, size: int = 24) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def still(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """No motion, every pixel trusted."""
    b, _, h, w = output.shape
    return torch.zeros(b, 2, h, w), torch.ones(b, 1, h, w)


def test_a_still_shot_rendered_unchanged_costs_nothing():
    output = frames()
    # zero to float precision (grid_sample's coordinate round trip)
    assert temporal_loss(output, output.clone(), *still(output)).item() == pytest.approx(0.0, abs=1e-6)


def test_flicker_costs_its_size():
    output = frames()
    brighter = output + 0.1  # the next frame flickers brighter everywhere
    assert temporal_loss(output, brighter, *still(output)).item() == pytest.approx(0.1, abs=1e-6)


def test_content_that_follows_the_flow_costs_nothing_where_it_stays_in_view():
    output = frames(1, 32)
    moved = torch.roll(output, shifts=3, dims=-1)  # the next frame: everything 3 px to the right
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 3.0
    visible = torch.ones(1, 1, 32, 32)
    visible[..., 29:] = 0  # the last 3 columns leave the frame
    assert temporal_loss(output, moved, flow, visible).item() == pytest.approx(0.0, abs=1e-6)
    assert temporal_loss(output, moved, *still(output)).item() > 0.1  # without the flow it would be flicker
    assert torch.allclose(warp_back(moved, flow)[..., :29], output[..., :29], atol=1e-6)


def test_pixels_outside_the_mask_do_not_count():
    output = frames(1)
    next_output = output.clone()
    next_output[..., :12] += 0.5  # changes only where the flow is not trusted
    flow, visible = still(output)
    visible[..., :12] = 0
    assert temporal_loss(output, next_output, flow, visible).item() == pytest.approx(0.0, abs=1e-6)
    assert temporal_loss(output, next_output, flow, torch.zeros_like(visible)).item() == 0.0  # nothing to compare


def test_gradients_reach_both_frames():
    output, next_output = frames().requires_grad_(), (frames() + 0.2).requires_grad_()
    temporal_loss(output, next_output, *still(output)).backward()
    assert output.grad.abs().sum() > 0 and next_output.grad.abs().sum() > 0


def test_shapes_are_checked_with_the_shapes_received():
    output = frames()
    with pytest.raises(ValueError, match=r"the flow must be \(2, 2, 24, 24\).*got \(2, 2, 12, 12\)"):
        temporal_loss(output, output, torch.zeros(2, 2, 12, 12), torch.ones(2, 1, 24, 24))


# --- in the hybrid loss ---------------------------------------------------------------------------

def pair_outputs(flicker: float) -> PairOutputs:
    output = frames()
    return PairOutputs(output, output + flicker, *still(output))


def test_the_hybrid_loss_adds_the_weighted_term_on_steps_with_frame_pairs():
    loss = build_loss(LossConfig(l1=1.0, lpips=0.0, laplacian=0.0, ssim=0.0, temporal=2.0))
    pred, target = frames(), frames() * 0.5
    assert loss.needs_frame_pairs
    total, values = loss(pred, target, frame_pairs=pair_outputs(0.1))
    assert list(values) == ["l1", "temporal"]
    assert values["temporal"].item() == pytest.approx(0.1, abs=1e-6)
    assert torch.equal(total, pred.new_zeros(()) + values["l1"] + 2.0 * values["temporal"])
    total_alone, alone = loss(pred, target)  # a step without frame pairs (a speed harness) has no such term
    assert list(alone) == ["l1"] and torch.equal(total_alone, pred.new_zeros(()) + alone["l1"])


def test_the_term_is_off_by_default_and_never_built_at_zero():
    loss = build_loss(LossConfig())
    assert LossConfig().temporal == 0.0 and not loss.needs_frame_pairs and len(loss.pair_terms) == 0


def test_the_temporal_term_alone_is_a_config_error():
    with pytest.raises(ConfigError, match="only temporal is weighted, which compares frames with each other"):
        HybridLoss(LossConfig(l1=0.0, lpips=0.0, laplacian=0.0, ssim=0.0, temporal=1.0))
