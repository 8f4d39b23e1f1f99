"""Frame pairs for the temporal term: the flow's visibility mask leaves occlusions out, the flow is cached in
the run folder and measured again when a plate changes, and patches keep only what stays inside them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from shotfit.data.flow import flow_between
from shotfit.data.temporal import (
    FramePairs,
    flow_cache_path,
    load_frame_pairs,
    sample_pair_patches,
    spread_pairs,
)
from shotfit.errors import ConfigError
from shotfit.io import ColourPipeline, PixelFormat, open_shot, resolve_colour, write_image
from shotfit.losses import temporal_loss

PNG8 = PixelFormat(".png", "uint8", 3)


def square_frames(shift: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A textured square moving ``shift`` px right over a still textured background (96 x 128, grey)."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.random((96, 128)).astype(np.float32), (0, 0), 1.5)
    texture = cv2.GaussianBlur(rng.random((32, 32)).astype(np.float32), (0, 0), 1.5) * 0.5 + 0.5

    def frame(left: int) -> np.ndarray:
        pixels = background.copy()
        pixels[32:64, left:left + 32] = texture
        return pixels

    return frame(40), frame(40 + shift)


def test_the_forward_backward_check_leaves_out_what_the_moving_square_covers():
    frame, next_frame = square_frames(shift=6)
    flow = flow_between(frame, next_frame)
    visible = flow.visible
    # the background strip right of the square at t is under the square at t+1: occluded
    assert visible[34:62, 72:78].mean() <= 0.2
    # the square itself and the background far from it are seen again
    assert visible[34:62, 42:70].mean() >= 0.95 and visible[5:25, 5:120].mean() >= 0.95
    assert np.allclose(flow.forward[40:56, 48:64].mean(axis=(0, 1)), (6, 0), atol=0.5)
    # the plate follows its own motion: with the mask the temporal term sees almost nothing to fix;
    # counting the occluded strip it would see ten times more
    tensors = [torch.from_numpy(image)[None, None] for image in (frame, next_frame)]
    forward = torch.from_numpy(flow.forward).permute(2, 0, 1)[None]
    mask = torch.from_numpy(visible.astype(np.float32))[None, None]
    masked = temporal_loss(*tensors, forward, mask).item()
    assert masked < temporal_loss(*tensors, forward, torch.ones_like(mask)).item() / 4


@pytest.mark.parametrize(("frames", "count", "pairs"), [
    (range(1, 11), 3, [(1, 2), (5, 6), (9, 10)]),
    (range(1, 11), 50, [(f, f + 1) for f in range(1, 10)]),
    ([1, 2, 3, 7, 8], 10, [(1, 2), (2, 3), (7, 8)]),  # no pair across the gap
    (range(0, 20, 2), 2, [(0, 2), (16, 18)]),  # a shot kept on every other frame
    ([5], 4, []),
])
def test_pairs_are_consecutive_frames_spread_over_the_shot(frames, count, pairs):
    assert spread_pairs(list(frames), count) == pairs


# --- the cache in the run folder -----------------------------------------------------------------

def write_plates(folder: Path, count: int = 4, shift: int = 2) -> Path:
    rng = np.random.default_rng(1)
    texture = cv2.GaussianBlur(rng.random((48, 96, 3)).astype(np.float32), (0, 0), 1.2)
    for frame in range(1, count + 1):
        write_image(folder / f"plate.{frame:04d}.png", np.roll(texture, shift * frame, axis=1)[:, :64], PNG8)
    return folder


def files(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_the_flow_is_measured_once_then_read_back_and_measured_again_for_a_changed_plate(tmp_path):
    plates = write_plates(tmp_path / "plate")
    shot = open_shot(plates)
    colour = ColourPipeline(resolve_colour(shot.format))
    cache = tmp_path / "run" / "flow"
    first = load_frame_pairs(shot, 8, colour, torch.device("cpu"), cache)
    assert first.frames == ((1, 2), (2, 3), (3, 4))
    written = files(cache)
    assert sorted(written) == ["1-2.npz", "2-3.npz", "3-4.npz"]
    # the cached flow is the flow, and the pairs hold the plates as network values
    expected = flow_between(shot.read(2), shot.read(3))
    assert np.array_equal(first.flows[1].permute(1, 2, 0).numpy(), expected.forward)
    assert np.array_equal(first.visible[1, 0].numpy(), expected.visible.astype(np.float32))
    assert torch.allclose(first.next_sources[0], torch.from_numpy(shot.read(2)).permute(2, 0, 1) * 2 - 1)

    again = load_frame_pairs(open_shot(plates), 8, colour, torch.device("cpu"), cache)
    assert files(cache) == written  # read back: not one byte nor time changed
    assert torch.equal(again.flows, first.flows) and torch.equal(again.visible, first.visible)

    write_image(plates / "plate.0003.png", np.flip(shot.read(3), axis=1).copy(), PNG8)  # the plate is redone
    changed = load_frame_pairs(open_shot(plates), 8, colour, torch.device("cpu"), cache)
    now = files(cache)
    assert now["1-2.npz"] == written["1-2.npz"]
    for name in ("2-3.npz", "3-4.npz"):  # both pairs that hold frame 3
        assert now[name][0] != written[name][0]
    assert not torch.equal(changed.flows[1:], first.flows[1:]) and torch.equal(changed.flows[0], first.flows[0])


def test_a_damaged_cache_file_is_measured_again(tmp_path):
    plates = write_plates(tmp_path / "plate", count=2)
    colour = ColourPipeline(resolve_colour(open_shot(plates).format))
    cache = tmp_path / "flow"
    first = load_frame_pairs(open_shot(plates), 4, colour, torch.device("cpu"), cache)
    flow_cache_path(cache, 1, 2).write_bytes(b"not a flow")
    again = load_frame_pairs(open_shot(plates), 4, colour, torch.device("cpu"), cache)
    assert torch.equal(again.flows, first.flows)
    assert flow_cache_path(cache, 1, 2).read_bytes()[:2] == b"PK"  # rewritten as a real .npz


def test_a_single_frame_has_no_pair_to_learn_from(tmp_path):
    plates = write_plates(tmp_path / "plate", count=1)
    shot = open_shot(plates)
    with pytest.raises(ConfigError, match=r"loss.temporal needs two consecutive frames of the source, but "
                                          r"'.*plate/' has 1; set loss.temporal to 0"):
        load_frame_pairs(shot, 4, ColourPipeline(resolve_colour(shot.format)), torch.device("cpu"))


# --- patches -----------------------------------------------------------------------------------------

def test_patches_cut_one_window_of_both_frames_and_drop_flow_that_leaves_it():
    sources = torch.arange(2 * 3 * 40 * 40, dtype=torch.float32).reshape(2, 3, 40, 40)
    flows = torch.zeros(2, 2, 40, 40)
    flows[:, 0] = 5.0  # everything moves 5 px right
    flows[:, 1] = -2.0  # and 2 px up
    pairs = FramePairs(((1, 2), (2, 3)), sources, sources + 1, flows, torch.ones(2, 1, 40, 40))
    patches = sample_pair_patches(pairs, 16, 16, 6, torch.Generator().manual_seed(0))
    assert patches.sources.shape == (6, 3, 16, 16) and patches.flows.shape == (6, 2, 16, 16)
    assert torch.equal(patches.next_sources, patches.sources + 1)  # the same window in t and t+1
    for patch in patches.sources:  # each an exact window of one frame
        k, y, x = np.unravel_index(int(patch[0, 0, 0]), (2 * 3, 40, 40))
        assert torch.equal(patch, sources[k // 3, :, y:y + 16, x:x + 16])
    expected = torch.zeros(16, 16)
    expected[2:, :11] = 1  # x + 5 <= 15 and y - 2 >= 0
    assert all(torch.equal(mask[0], expected) for mask in patches.visible)


def test_patches_are_the_same_for_the_same_seed():
    pairs = FramePairs(((1, 2),), torch.rand(1, 3, 30, 30), torch.rand(1, 3, 30, 30), torch.rand(1, 2, 30, 30),
                       torch.ones(1, 1, 30, 30))
    first, second = (sample_pair_patches(pairs, 16, 16, 3, torch.Generator().manual_seed(7)) for _ in range(2))
    assert all(torch.equal(a, b) for a, b in zip(vars(first).values(), vars(second).values()))
