"""Temporal warping error: zero when consistent, large when flickering, occlusions left out."""

from __future__ import annotations

import numpy as np
import pytest

from shotfit.evaluate import FlowPair, compute_flows, pair_warping_error, warping_error


def test_a_static_shot_has_zero_error(texture):
    frames = [texture(48, 48)] * 3
    flows = compute_flows(frames)
    assert len(flows) == 2
    assert all(flow.coverage == 1.0 for flow in flows)
    assert warping_error(frames, flows) == pytest.approx(0.0, abs=1e-12)


def test_error_is_the_mean_squared_difference_per_channel_value():
    # Flat static source: zero flow, every pixel visible, so E is a plain mean over pixels and channels.
    flows = compute_flows([np.full((32, 32), 0.5, np.float32)] * 2)
    grey = [np.full((32, 32, 1), 0.2, np.float32), np.full((32, 32, 1), 0.5, np.float32)]
    assert warping_error(grey, flows) == pytest.approx(0.09)
    one_channel_moves = [np.full((32, 32, 3), 0.2, np.float32), np.full((32, 32, 3), 0.2, np.float32)]
    one_channel_moves[1][..., 0] = 0.5
    assert warping_error(one_channel_moves, flows) == pytest.approx(0.09 / 3)


def test_a_panning_shot_is_consistent_and_a_flickering_copy_is_not(pan):
    source = pan(5, size=64, step=(2, 1))
    flows = compute_flows(source)
    median_flow = np.median(flows[0].forward.reshape(-1, 2), axis=0)
    assert median_flow == pytest.approx([-2.0, -1.0], abs=0.05)  # content moves against the window
    steady = warping_error(source, flows)
    gains = np.random.default_rng(0).uniform(0.7, 1.3, len(source))
    flicker = warping_error([frame * gain for frame, gain in zip(source, gains)], flows)
    assert steady < 1e-4
    assert flicker > 1e-3
    assert flicker > 100 * steady


def test_the_background_a_moving_square_covers_is_left_out(texture):
    background = texture(64, 64, seed=1) * 0.5
    square = texture(16, 16, seed=2) * 0.5 + 0.5
    frames = []
    for t in range(2):
        frame = background.copy()
        frame[24:40, 10 + 4 * t: 26 + 4 * t] = square  # 4 pixels to the right per frame
        frames.append(frame)
    (flow,) = compute_flows(frames)
    covered_next = flow.visible[24:40, 26:30]  # background at t, under the square at t+1
    assert covered_next.mean() < 0.1
    assert flow.visible[:, 44:].mean() > 0.9  # static background far from the square
    # DIS smears the square's motion a few pixels into the background behind it, so some error stays.
    everywhere = FlowPair(forward=flow.forward, visible=np.ones_like(flow.visible))
    assert pair_warping_error(*frames, flow) < 0.6 * pair_warping_error(*frames, everywhere)


def test_flow_ignores_the_value_scale_of_the_source(pan):
    source = pan(2, size=48)
    (unit,) = compute_flows(source)
    (linear,) = compute_flows([frame * 40.0 + 3.0 for frame in source])  # e.g. scene-linear plate values
    np.testing.assert_array_equal(unit.forward, linear.forward)
    np.testing.assert_array_equal(unit.visible, linear.visible)


def test_compressed_footage_has_a_larger_error_than_clean_along_the_clean_flow(carphone_clip):
    clean, compressed = carphone_clip
    flows = compute_flows(clean)  # computed once, used for both outputs
    assert all(0.7 < flow.coverage < 1.0 for flow in flows)
    clean_error = warping_error(clean, flows)
    compressed_error = warping_error(compressed, flows)
    # Measured: 4.05e-4 (clean) and 5.22e-4 (compressed) on these 10 frames.
    assert 1e-5 < clean_error < 1e-2
    assert 1e-5 < compressed_error < 1e-2
    assert compressed_error > 1.15 * clean_error


def test_mismatched_frames_and_flows_are_refused_with_both_shapes(texture):
    frames = [texture(32, 32)] * 3
    flows = compute_flows(frames)
    with pytest.raises(ValueError, match="2 frames need 1 flows, got 2"):
        warping_error(frames[:2], flows)
    with pytest.raises(ValueError, match=r"\(32, 40, 3\).*\(32, 32\)"):
        warping_error([texture(32, 40)] * 3, flows)
    with pytest.raises(ValueError, match=r"\(32, 40, 3\).*\(32, 32, 3\)"):
        compute_flows([texture(32, 32), texture(32, 40)])
