"""The learning-rate factor: linear warm-up, cosine to the floor at the horizon, capped warm-up on short plans."""

from __future__ import annotations

import math

import pytest

from shotfit.engine.schedule import warmup_cosine


def test_warmup_rises_linearly_to_full_rate():
    factors = [warmup_cosine(step, warmup=100, horizon=2000) for step in range(100)]
    assert factors[0] == pytest.approx(0.01)
    assert factors[49] == pytest.approx(0.5)
    assert factors[99] == pytest.approx(1.0)
    steps = [b - a for a, b in zip(factors, factors[1:])]
    assert steps == pytest.approx([0.01] * 99)  # equal increments: a straight line


def test_cosine_starts_at_full_rate_and_reaches_the_floor_at_the_horizon():
    assert warmup_cosine(100, warmup=100, horizon=2000) == pytest.approx(1.0)
    middle = 100 + (2000 - 100) // 2
    assert warmup_cosine(middle, warmup=100, horizon=2000) == pytest.approx(0.505, abs=1e-3)
    assert warmup_cosine(2000, warmup=100, horizon=2000) == pytest.approx(0.01)
    assert warmup_cosine(2000, warmup=100, horizon=2000, floor=0.1) == pytest.approx(0.1)


def test_the_factor_never_rises_after_warmup_and_stays_at_the_floor_past_the_horizon():
    factors = [warmup_cosine(step, warmup=10, horizon=200) for step in range(10, 400)]
    assert all(b <= a for a, b in zip(factors, factors[1:]))
    assert min(factors) == pytest.approx(0.01)
    assert factors[-1] == pytest.approx(0.01)
    assert all(0.01 - 1e-12 <= f <= 1.0 for f in factors)


def test_cosine_shape_between_warmup_and_horizon():
    warmup, horizon = 20, 120
    for step in (20, 45, 70, 95, 120):
        progress = (step - warmup) / (horizon - warmup)
        expected = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress))
        assert warmup_cosine(step, warmup, horizon) == pytest.approx(expected)


@pytest.mark.parametrize(("warmup", "horizon", "capped"), [(100, 50, 10), (100, 200, 40), (1000, 5, 1)])
def test_short_plans_cap_warmup_at_a_fifth(warmup, horizon, capped):
    assert warmup_cosine(capped - 1, warmup, horizon) == pytest.approx(1.0)  # full rate after a fifth
    if capped > 1:
        assert warmup_cosine(0, warmup, horizon) == pytest.approx(1 / capped)
    assert warmup_cosine(horizon, warmup, horizon) == pytest.approx(0.01)


def test_no_warmup_starts_at_full_rate():
    assert warmup_cosine(0, warmup=0, horizon=100) == pytest.approx(1.0)


@pytest.mark.parametrize("horizon", [1, 2, 4])
def test_plans_too_short_for_any_warmup_still_give_a_finite_rate(horizon):
    for step in range(horizon + 2):
        factor = warmup_cosine(step, warmup=100, horizon=horizon)
        assert 0.01 - 1e-12 <= factor <= 1.0
    assert warmup_cosine(0, warmup=100, horizon=horizon) == pytest.approx(1.0)
