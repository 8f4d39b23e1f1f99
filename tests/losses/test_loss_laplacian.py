"""Laplacian-pyramid loss: kornia's band convention checked numerically, weighting, any image size, gradcheck."""

from __future__ import annotations

import pytest
import torch
from kornia.geometry.transform import build_laplacian_pyramid, pyrup
from torch.autograd import gradcheck

from shotfit.losses import LaplacianLoss, l1_loss, laplacian_loss, laplacian_pyramid


def test_bands_match_kornia_and_sum_back_to_the_image():
    torch.manual_seed(0)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    bands = laplacian_pyramid(image, 4)
    assert [band.shape[-1] for band in bands] == [32, 16, 8, 4]
    for ours, theirs in zip(bands, build_laplacian_pyramid(image, 4)):
        assert torch.allclose(ours, theirs, atol=1e-6)
    rebuilt = bands[-1]
    for band in reversed(bands[:-1]):
        rebuilt = band + pyrup(rebuilt)
    assert torch.allclose(rebuilt, image, atol=1e-5)
    # Only the residual band carries a flat colour; the band-pass bands of a constant are 0.
    flat = laplacian_pyramid(torch.full((1, 1, 16, 16), 0.3), 3)
    assert all(band.abs().max() < 1e-6 for band in flat[:-1]) and torch.allclose(flat[-1], torch.tensor(0.3))


@pytest.mark.parametrize("size", [(32, 32), (19, 23), (5, 7), (96, 40)])
def test_a_colour_offset_scores_the_offset_at_any_size(size):
    torch.manual_seed(1)
    pred = torch.rand(1, 3, *size) * 2 - 1
    assert laplacian_loss(pred, pred + 0.25).item() == pytest.approx(0.25, abs=1e-5)
    assert laplacian_loss(pred, pred).item() == 0.0


def test_one_level_is_l1():
    torch.manual_seed(2)
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    assert laplacian_loss(pred, target, levels=1).item() == pytest.approx(l1_loss(pred, target).item())


def test_grain_lands_in_the_fine_band_and_halving_favours_it():
    torch.manual_seed(3)
    target = torch.zeros(1, 1, 64, 64)
    grain = 0.1 * torch.randn(1, 1, 64, 64)
    equal = laplacian_loss(target + grain, target, levels=4)
    halving = laplacian_loss(target + grain, target, levels=4, band_weights="halving")
    fine_only = laplacian_loss(target + grain, target, levels=4, band_weights=[1.0, 0.0, 0.0, 0.0])
    assert fine_only > 0.5 * equal  # most of white noise's energy is in the finest octave
    assert halving < equal
    assert LaplacianLoss(levels=4, band_weights="halving")(target + grain, target) == halving


def test_weight_map_steers_the_loss():
    torch.manual_seed(4)
    target = torch.rand(1, 3, 64, 64) * 2 - 1
    pred = target.clone()
    pred[..., :16] += 0.3
    left, right = torch.zeros(1, 1, 64, 64), torch.zeros(1, 1, 64, 64)
    left[..., :16] = 1.0
    right[..., 48:] = 1.0
    assert laplacian_loss(pred, target, right) < 0.1 * laplacian_loss(pred, target, left)
    assert laplacian_loss(pred, target, torch.full((1, 1, 64, 64), 2.0)).item() == pytest.approx(
        laplacian_loss(pred, target).item(), rel=1e-5)


def test_bad_arguments_are_refused():
    pred = torch.zeros(1, 3, 16, 16)
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        laplacian_loss(pred, pred, levels=0)
    with pytest.raises(ValueError, match="band_weights must be 3 non-negative numbers"):
        LaplacianLoss(levels=3, band_weights=[1.0, 1.0])
    with pytest.raises(ValueError, match="'octave' is not one of"):
        LaplacianLoss(band_weights="octave")
    with pytest.raises(ValueError, match=r"\(1, 3, 16, 16\) vs \(1, 1, 16, 16\)"):
        laplacian_loss(pred, torch.zeros(1, 1, 16, 16))


def test_gradcheck_float64():
    torch.manual_seed(5)
    pred = torch.rand(1, 2, 7, 9, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 2, 7, 9, dtype=torch.float64)
    weight = torch.rand(1, 1, 7, 9, dtype=torch.float64)
    assert gradcheck(lambda p: laplacian_loss(p, target, weight, levels=3), (pred,), fast_mode=True)
