"""The chooser on distances made by hand: cuts where the appearance jumps, a frame per segment first,
painted frames never chosen again, the cover's gain and the largest gap."""

from __future__ import annotations

import numpy as np
import pytest

from shotfit.suggest.choose import Segment, choose_frames, find_cuts, largest_gap_middle


def line_distances(positions: list[float]) -> np.ndarray:
    """Frames as points on a line: distance = |a - b|."""
    p = np.asarray(positions, float)
    return np.abs(p[:, None] - p[None, :])


def two_scenes() -> np.ndarray:
    # a slow drift, a jump of 10, another slow drift
    return line_distances([0.1 * i for i in range(12)] + [20 + 0.1 * i for i in range(8)])


def test_a_jump_is_a_cut_and_a_drift_is_not():
    assert find_cuts(two_scenes()) == [Segment(0, 12), Segment(12, 20)]
    assert find_cuts(line_distances([0.1 * i for i in range(20)])) == [Segment(0, 20)]


def test_a_static_shot_with_flicker_has_no_cut():
    flicker = [0.001 * (i % 2) for i in range(30)]
    flicker[15] = 0.004  # four times its neighbours but tiny against the shot: no cut
    assert find_cuts(line_distances(flicker)) == [Segment(0, 30)]


def test_every_segment_gets_its_most_typical_frame_first():
    distances = two_scenes()
    picks = choose_frames(distances, find_cuts(distances), 2)
    # a segment's only frame would cost the most to lose: each at its segment's middle
    assert [p.index for p in picks] == [5, 15]
    assert "cut segment 1 (frames 0-11)" in picks[0].reason and "cut segment 2 (frames 12-19)" in picks[1].reason
    assert picks[0].gain == picks[1].gain == float("inf")


def test_a_segment_with_two_frames_has_them_spread():
    distances = two_scenes()
    picks = choose_frames(distances, find_cuts(distances), 3)
    assert picks[0].index == 15 and "cut segment 2" in picks[0].reason
    first, second = sorted(p.index for p in picks[1:])
    assert first in (2, 3) and second in (8, 9)  # the drift split in halves, one frame in the middle of each
    assert all(0 < p.gain < 1 and "without it the mean distance to a painted frame rises" in p.reason
               for p in picks[1:])


def test_swaps_spread_what_greedy_clusters():
    # two equal clumps and a lone frame between: greedy takes the middle first and keeps it; the swap moves
    # it into a clump, and the two picks sit one in each clump
    positions = [0.0, 0.05, 0.1, 0.15, 0.2, 1.0, 1.8, 1.85, 1.9, 1.95, 2.0]
    picks = choose_frames(line_distances(positions), [Segment(0, 11)], 2)
    assert sorted(p.index for p in picks) == [2, 7]  # each clump's median (the lone frame joins the nearer)


def test_painted_frames_are_never_chosen_and_count_as_cover():
    distances = two_scenes()
    picks = choose_frames(distances, find_cuts(distances), 2, have=[3])
    assert picks[0].index == 15  # scene one is covered by frame 3; scene two's middle comes first
    assert 3 not in [p.index for p in picks]


@pytest.mark.parametrize("strategy", ["cover", "farthest"])
def test_choosing_every_frame_leaves_no_distance(strategy: str):
    distances = line_distances([0.0, 0.3, 0.9, 1.0, 4.0])
    picks = choose_frames(distances, [Segment(0, 5)], 5, strategy=strategy)
    assert sorted(p.index for p in picks) == [0, 1, 2, 3, 4]
    assert picks[-1].mean_distance == 0.0


def test_farthest_takes_the_outlier_and_cover_the_crowd():
    distances = line_distances([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 5.0])
    assert choose_frames(distances, [Segment(0, 7)], 2, strategy="farthest")[1].index == 6
    assert choose_frames(distances, [Segment(0, 7)], 2, strategy="cover")[1].index == 6  # 4.7 saved on one frame
    crowd = line_distances([0.0, 0.1, 0.2, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 2.1])
    assert choose_frames(crowd, [Segment(0, 10)], 1)[0].index == 4  # the medoid, not the centre of the range


def test_largest_gap_middle():
    assert largest_gap_middle([0, 40, 80, 119], 120) == 20  # the first of the equal gaps
    assert largest_gap_middle([10], 20) == 4
