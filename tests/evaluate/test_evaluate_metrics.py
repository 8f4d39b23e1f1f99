"""PSNR, SSIM, LPIPS and the high-frequency error against hand values and reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from shotfit.evaluate import high_frequency_error, lpips, psnr, ssim


def pattern_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two deterministic 32x40 RGB frames in [0, 1]: a sine pattern and a distorted copy."""
    yy, xx = np.mgrid[0:32, 0:40].astype(np.float64)
    a = np.stack([0.5 + 0.4 * np.sin(xx / 3 + k) * np.cos(yy / 5 - k) for k in range(3)], axis=-1)
    b = np.clip(a**1.3 + 0.05 * np.cos(xx * yy / 7)[..., None], 0, 1)
    return a.astype(np.float32), b.astype(np.float32)


def test_psnr_matches_hand_value_and_is_inf_for_identical_frames():
    truth = np.zeros((4, 4, 3), np.float32)
    assert psnr(np.full_like(truth, 0.1), truth) == pytest.approx(20.0)  # MSE 0.01
    assert psnr(truth, truth) == math.inf


def test_metrics_name_both_shapes_when_frames_differ():
    with pytest.raises(ValueError, match=r"\(8, 8, 3\) and \(8, 9, 3\)"):
        psnr(np.zeros((8, 8, 3)), np.zeros((8, 9, 3)))
    with pytest.raises(ValueError, match="C = 1 or 3"):
        ssim(np.zeros((16, 16, 2)), np.zeros((16, 16, 2)))


# Reference values from scikit-image 0.26.0, structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False, data_range=1.0, channel_axis=-1) on float64 copies of the same frames.
def test_ssim_matches_scikit_image_gaussian_ssim():
    a, b = pattern_pair()
    assert ssim(a, b) == pytest.approx(0.9089014970853403, abs=1e-9)
    assert ssim(a[..., 0], b[..., 0]) == pytest.approx(0.9061983099995032, abs=1e-9)
    assert ssim(a[..., :1], b[..., :1]) == pytest.approx(0.9061983099995032, abs=1e-9)
    assert ssim(a, a) == 1.0


def test_ssim_refuses_frames_smaller_than_its_window():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((10, 32, 3)), np.zeros((10, 32, 3)))


def test_psnr_and_ssim_on_real_footage(carphone_clip):
    clean, compressed = carphone_clip
    # scikit-image 0.26.0 on frame 0 (float64 from the same uint8 frames): PSNR 23.637059669560614 dB.
    assert psnr(compressed[0], clean[0]) == pytest.approx(23.637059669560614, abs=1e-5)
    assert ssim(compressed[0], clean[0]) == pytest.approx(0.7029673432148332, abs=1e-6)


@pytest.fixture(scope="module")
def lpips_net():
    from shotfit.losses.lpips import LPIPS

    return LPIPS(input_range=(-1.0, 1.0))


def test_lpips_matches_the_reference_package(lpips_net):
    # Reference from stlpips-pytorch's own model (ENVIRONMENT.md): d(a, b) = 0.03784 for these draws.
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(1, 3, 64, 64, generator=generator)[0].permute(1, 2, 0).numpy() for _ in range(2))
    assert lpips(a, b, lpips_net) == pytest.approx(0.03784, abs=5e-5)
    assert lpips(a, a, lpips_net) == 0.0


def test_lpips_accepts_grey_frames_and_clips_overshoot(lpips_net):
    a, b = (frame[:24, :24] for frame in pattern_pair())  # LPIPS is slow on the CPU: the smallest it takes
    grey = lpips(a[..., :1], b[..., :1], lpips_net)
    assert grey == pytest.approx(lpips(np.repeat(a[..., :1], 3, 2), np.repeat(b[..., :1], 3, 2), lpips_net))
    assert lpips(a * 1.2, b, lpips_net) == pytest.approx(lpips(np.clip(a * 1.2, 0, 1), b, lpips_net))


def test_lpips_on_real_footage(lpips_net, carphone_clip):
    clean, compressed = carphone_clip
    assert lpips(compressed[0], clean[0], lpips_net) == pytest.approx(0.20860, abs=5e-5)


def test_high_frequency_error_tells_ringing_from_blur_and_ignores_a_grade():
    rng = np.random.default_rng(0)
    truth = np.clip(pattern_pair()[0] + rng.normal(0, 0.03, (32, 40, 3)), 0, 1).astype(np.float32)
    blurred = np.clip(truth.astype(np.float64) * 0 + truth.mean((0, 1)), 0, 1)  # every detail gone
    ringing = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)  # invented texture, 3x the truth's grain
    graded = np.clip(truth * 0.9 + 0.05, 0, 1)  # a smooth change: no new detail, a little less of it
    assert high_frequency_error(truth, truth) == 0.0
    assert high_frequency_error(blurred, truth) == pytest.approx(1.0, abs=0.02)
    assert high_frequency_error(ringing, truth) > 2.0
    assert high_frequency_error(graded, truth) == pytest.approx(0.01, abs=0.005)  # (1 - 0.9)**2
    # odd sides work and a grey frame is scored like one channel
    assert high_frequency_error(ringing[:31, :39, 0], truth[:31, :39, 0]) > 2.0
