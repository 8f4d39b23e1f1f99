"""Learning-rate schedule: linear warm-up, then cosine decay to a floor."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, horizon: int, floor: float = 0.01) -> float:
    """The learning-rate factor at ``step`` (0-based) of a run planned for ``horizon`` steps.

    Rises linearly over ``warmup`` steps, then follows a half cosine from 1 down to ``floor`` at
    ``horizon``; past the horizon it stays at ``floor``. Warm-up never takes more than a fifth of the
    plan, so short runs still spend most of their steps learning.

    Returns:
        A factor in [floor, 1] to multiply the base learning rate with.
    """
    warmup = min(warmup, horizon // 5)
    if step < warmup:
        return (step + 1) / warmup
    span = max(horizon - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
