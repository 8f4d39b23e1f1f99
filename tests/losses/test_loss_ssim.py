"""SSIM loss: kornia's SSIM checked against the textbook formula, the [-1, 1] luminance trap, weighting."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kornia.metrics import ssim as kornia_ssim
from torch.autograd import gradcheck

from shotfit.losses import SSIMLoss, ssim_loss


def textbook_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float) -> torch.Tensor:
    """Wang et al. 2004 mean SSIM: 11-tap Gaussian (sigma 1.5), valid window, c = (0.01 L)^2, (0.03 L)^2."""
    taps = torch.exp(-((torch.arange(11, dtype=a.dtype) - 5) ** 2) / (2 * 1.5**2))
    taps = taps / taps.sum()
    window = (taps[:, None] * taps[None, :]).expand(a.shape[1], 1, 11, 11)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, window, groups=a.shape[1])

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return (((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))).mean()


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two related images in [0, 1], (2, 3, 32, 32)."""
    torch.manual_seed(0)
    a = torch.rand(2, 3, 32, 32)
    return a, (0.7 * a + 0.3 * torch.rand(2, 3, 32, 32)).clamp(0, 1)


def test_kornia_ssim_is_the_textbook_ssim(pair):
    a, b = pair
    ours = kornia_ssim(a, b, 11, max_val=1.0, eps=0.0, padding="valid").mean()
    assert ours.item() == pytest.approx(textbook_ssim(a, b, 1.0).item(), abs=1e-5)


def test_loss_on_network_range_is_one_minus_ssim_of_the_images(pair):
    a, b = pair
    expected = 1 - kornia_ssim(a, b, 11, max_val=1.0, eps=0.0).mean()
    assert ssim_loss(a * 2 - 1, b * 2 - 1).item() == pytest.approx(expected.item(), abs=1e-5)
    assert SSIMLoss(input_range=(0.0, 1.0))(a, b).item() == pytest.approx(expected.item(), abs=1e-5)
    assert ssim_loss(a * 2 - 1, a * 2 - 1).item() == pytest.approx(0.0, abs=1e-6)


def test_a_small_change_near_mid_grey_is_a_small_loss():
    # Naive SSIM on [-1, 1] with data range 2 scores this pair 0.33 (a loss of 0.67); see ssim.py.
    grey = torch.zeros(1, 1, 16, 16)
    assert kornia_ssim(grey - 0.01, grey + 0.01, 11, max_val=2.0).mean() < 0.5
    assert ssim_loss(grey - 0.01, grey + 0.01).item() < 1e-3


def test_weight_map_steers_the_loss(pair):
    a, b = pair
    pred, target = a * 2 - 1, a * 2 - 1
    pred[..., :16] = b[..., :16] * 2 - 1
    left, right = torch.zeros(1, 1, 32, 32), torch.zeros(1, 1, 32, 32)
    left[..., :12] = 1.0
    right[..., 22:] = 1.0
    assert ssim_loss(pred, target, right).item() == pytest.approx(0.0, abs=1e-6)
    assert ssim_loss(pred, target, left) > 0.05
    assert ssim_loss(pred, target, torch.ones(1, 1, 32, 32)).item() == pytest.approx(ssim_loss(pred, target).item())


def test_greyscale_and_bad_sizes():
    grey = torch.rand(1, 1, 12, 12) * 2 - 1
    assert ssim_loss(grey, grey).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"larger than 5 pixels a side.*\(1, 1, 5, 12\)"):
        ssim_loss(grey[..., :5, :], grey[..., :5, :])
    with pytest.raises(ValueError, match="positive odd"):
        ssim_loss(grey, grey, window_size=10)


def test_gradcheck_float64():
    torch.manual_seed(1)
    pred = (torch.rand(1, 2, 8, 8, dtype=torch.float64) * 2 - 1).requires_grad_()
    target = torch.rand(1, 2, 8, 8, dtype=torch.float64) * 2 - 1
    weight = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    assert gradcheck(lambda p: ssim_loss(p, target, weight, window_size=5), (pred,), fast_mode=True)
