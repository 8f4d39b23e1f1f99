"""The predicted-error score: the typical frame scores 0, the flips rank ordinary frames (their distance to a
keyframe does not), and a frame unlike anything painted comes first however its flips agree."""

from __future__ import annotations

import numpy as np

from shotfit.suggest.confidence import ALIEN_DISTANCE, predicted_error, relative


def test_the_median_frame_scores_zero_and_the_flips_rank_ordinary_frames():
    disagreement = [1.0, 1.1, 1.2, 1.3, 1.4, 2.0]
    distance = [0.6, 0.5, 0.3, 0.2, 0.4, 0.1]  # the frame nearest a keyframe disagrees most
    score = predicted_error(disagreement, distance)
    assert np.argmax(score) == 5 and list(np.argsort(score)) == [0, 1, 2, 3, 4, 5]
    assert abs(predicted_error([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])[1]) < 1e-12
    assert np.allclose(predicted_error([1.0, 2.0, 3.0, 4.0, 5.0], [9.0, 1.0, 5.0, 2.0, 3.0]),
                       [-1.0, -0.5, 0.0, 0.5, 1.0])


def test_a_frame_unlike_anything_painted_ranks_first_by_what_it_lies_beyond():
    disagreement = [1.0, 1.1, 1.2, 1.3, 1.4, 1.2]
    distance = [0.2, 0.3, 0.4, 0.5, 0.6, 5.0]  # the last: far beyond every other frame
    score = predicted_error(disagreement, distance)
    assert np.argmax(score) == 5
    z = (5.0 - 0.45) / (0.575 - 0.325)  # its distance on the shot's scale (median 0.45, quartiles 0.325, 0.575)
    assert abs(score[5] - (0.0 + z - ALIEN_DISTANCE)) < 1e-9


def test_relative_is_a_multiple_of_the_median():
    assert relative(4.0, [1.0, 2.0, 3.0]) == 2.0
    assert np.isnan(relative(1.0, [0.0, 0.0, 1.0]))
