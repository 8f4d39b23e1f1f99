"""The predicted-error score: the typical frame scores 0, a sign that merely varies more does not drown the
other, and frames worse on both signs come first."""

from __future__ import annotations

import numpy as np

from shotfit.suggest.confidence import DISAGREEMENT_WEIGHT, predicted_error, relative


def test_the_median_frame_scores_zero_and_worse_on_both_signs_ranks_first():
    disagreement = [1.0, 1.1, 1.2, 1.3, 1.4, 2.0]
    distance = [0.1, 0.5, 0.3, 0.2, 0.4, 0.6]
    score = predicted_error(disagreement, distance)
    assert np.argmax(score) == 5
    assert abs(predicted_error([1.0, 2.0, 3.0], [5.0, 6.0, 7.0])[1]) < 1e-12


def test_a_sign_with_a_wider_spread_does_not_drown_the_other():
    # the distance varies 100x more, but each sign is put on its own scale: the flips decide between
    # two frames that differ by a quartile on each
    disagreement = [1.0, 1.1, 1.2, 1.3, 1.4]
    distance = [10.0, 20.0, 30.0, 40.0, 50.0]
    score = predicted_error(disagreement[::-1], distance)
    assert DISAGREEMENT_WEIGHT > 0.5
    assert score[0] > score[-1]  # most disagreement, least distance beats the reverse


def test_relative_is_a_multiple_of_the_median():
    assert relative(4.0, [1.0, 2.0, 3.0]) == 2.0
    assert np.isnan(relative(1.0, [0.0, 0.0, 1.0]))
