"""Appearance vectors: a frame is nearer to itself moved a little than to another scene, at any size, and
data outside the trunk's range is refused rather than read wrongly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shotfit.losses.lpips import CHANNELS, load_lpips
from shotfit.suggest.features import frame_features, pairwise_distances


def scene(shift: int, seed: int, size: tuple[int, int] = (90, 120)) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    base = rng.random((3, size[0] // 6 + 4, size[1] // 6 + 4)).astype(np.float32)
    big = torch.nn.functional.interpolate(torch.from_numpy(base)[None], scale_factor=6, mode="bilinear")
    return (big[..., shift:shift + size[0], shift:shift + size[1]] * 2 - 1).clamp(-1, 1)


@pytest.mark.parametrize("size", [(90, 120), (400, 520)])
def test_a_moved_frame_is_nearer_than_another_scene(size: tuple[int, int]):
    trunk = load_lpips()
    vectors = torch.cat([frame_features(scene(s, seed, size), trunk) for s, seed in ((0, 0), (3, 0), (0, 1))])
    distances = pairwise_distances(vectors.double().numpy())
    assert distances[0, 1] < 0.5 * distances[0, 2]
    again = frame_features(scene(0, 0, size), trunk)
    assert torch.equal(again[0], vectors[0])


def test_the_trunk_refuses_data_outside_its_range():
    trunk = load_lpips(input_range=(-1.0, 1.0))
    stacks = trunk.features(torch.zeros(1, 3, 32, 32))
    assert [s.shape[1] for s in stacks] == list(CHANNELS)
    with pytest.raises(ValueError, match=r"values in \[0, 255\]"):
        trunk.features(torch.full((1, 3, 32, 32), 255.0).index_fill_(1, torch.tensor([0]), 0.0))
