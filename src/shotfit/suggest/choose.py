"""Which frames to paint, from the frames' appearance distances alone (numpy; no network).

A keyframe teaches the network about the frames that look like it, so the chosen set should leave no
frame far from a painted one. The chooser is greedy on that cover: every cut segment first gets its most
typical frame (a keyframe never teaches across a cut), then each further frame is the one that lowers the
shot's mean distance to the nearest painted frame the most (the k-medoids objective; a farthest-point
k-center is the ``"farthest"`` strategy). Frames already painted start the set. Ties go to the earlier
frame, so the same shot always gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STRATEGIES = ("cover", "farthest")
#: A consecutive distance this many times the median of its neighbours' marks a cut ...
CUT_RATIO = 4.0
#: ... when it is also at least this fraction of the shot's median pairwise distance.
CUT_FLOOR = 0.5
_CUT_WINDOW = 8


@dataclass(frozen=True)
class Segment:
    """Frames between two cuts: ``start`` and ``stop`` index the shot's frame list (stop excluded)."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class Pick:
    """One chosen frame: its index in the shot's frame list, why, and the mean distance after it."""

    index: int
    reason: str
    gain: float
    mean_distance: float


def find_cuts(distances: np.ndarray, ratio: float = CUT_RATIO, floor: float = CUT_FLOOR) -> list[Segment]:
    """Split the shot where the appearance jumps between neighbouring frames.

    Args:
        distances: (N, N) appearance distances in shot order.
        ratio: A jump must be this many times the median of the jumps around it (8 frames each side).
        floor: ... and at least this fraction of the median distance between any two frames, so a
            static shot's small flickers never count.

    Returns:
        The segments, in order, covering every frame.
    """
    count = len(distances)
    if count < 2:
        return [Segment(0, count)]
    steps = np.array([distances[i, i + 1] for i in range(count - 1)])
    typical = float(np.median(distances[np.triu_indices(count, 1)]))
    starts = [0]
    for i, step in enumerate(steps):
        around = np.concatenate([steps[max(0, i - _CUT_WINDOW):i], steps[i + 1:i + 1 + _CUT_WINDOW]])
        local = float(np.median(around)) if len(around) else 0.0
        if step > ratio * local and step >= floor * typical and step > 0:
            starts.append(i + 1)
    return [Segment(a, b) for a, b in zip(starts, [*starts[1:], count])]


def choose_frames(distances: np.ndarray, segments: Sequence[Segment], count: int, have: Sequence[int] = (),
                  strategy: str = "cover", labels: Sequence[int] | None = None) -> list[Pick]:
    """Choose ``count`` more frames to paint, given the ones painted already.

    Args:
        distances: (N, N) appearance distances in shot order.
        segments: From :func:`find_cuts`.
        count: Frames to choose (at most the frames not in ``have``).
        have: Indices already painted.
        strategy: ``"cover"`` (lowest mean distance to a painted frame) or ``"farthest"`` (lowest
            largest distance).
        labels: Frame numbers for the reasons (default: the indices).

    Returns:
        The picks in the order chosen, each with its reason.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    labels = list(range(len(distances))) if labels is None else list(labels)
    segment_of = np.empty(len(distances), dtype=int)
    for number, segment in enumerate(segments):
        segment_of[segment.start:segment.stop] = number
    # a keyframe teaches nothing across a cut: covering another segment costs more than any distance within one
    cover = distances + (distances.max() + 1.0) * (segment_of[:, None] != segment_of[None, :])
    chosen = list(have)
    nearest = cover[:, chosen].min(axis=1) if chosen else np.full(len(distances), np.inf)
    picks: list[Pick] = []
    for number in _uncovered_segments(segments, segment_of, chosen)[:count]:
        segment = segments[number]
        block = distances[segment.start:segment.stop, segment.start:segment.stop]
        index = segment.start + int(np.argmin(_settled(block.sum(axis=0))))
        nearest = np.minimum(nearest, cover[:, index])
        chosen.append(index)
        where = "" if len(segments) == 1 else f" of cut segment {number + 1} ({_span(labels, segment)})"
        picks.append(Pick(index, f"the most typical frame{where}, which no painted frame covers", float("nan"),
                          _finite_mean(nearest)))
    while len(picks) < count:
        index, gain = _best_addition(cover, nearest, chosen, strategy)
        before = nearest
        nearest = np.minimum(nearest, cover[:, index])
        chosen.append(index)
        picks.append(Pick(index, _cover_reason(before, nearest, labels, strategy), gain, _finite_mean(nearest)))
    return picks


def _uncovered_segments(segments: Sequence[Segment], segment_of: np.ndarray, chosen: Sequence[int]) -> list[int]:
    """Segments holding no chosen frame, the longest first (earlier first among equals)."""
    covered = {int(segment_of[i]) for i in chosen}
    open_ = [n for n in range(len(segments)) if n not in covered]
    return sorted(open_, key=lambda n: (-len(segments[n]), n))


def _best_addition(cover: np.ndarray, nearest: np.ndarray, chosen: Sequence[int], strategy: str) -> tuple[int, float]:
    candidates = np.ones(len(cover), dtype=bool)
    candidates[list(chosen)] = False
    if strategy == "farthest":
        worst = np.where(candidates, _settled(nearest), -np.inf)
        index = int(np.argmax(worst))
        return index, float(nearest[index])
    gains = np.maximum(nearest[:, None] - cover, 0.0).sum(axis=0)
    gains = np.where(candidates, _settled(gains), -np.inf)
    index = int(np.argmax(gains))
    return index, float(gains[index] / len(cover))


def _settled(values: np.ndarray) -> np.ndarray:
    """Values rounded to 1e-9, so sums equal but for rounding tie, and the earlier frame wins everywhere."""
    return np.round(values, 9)


def _cover_reason(before: np.ndarray, after: np.ndarray, labels: Sequence[int], strategy: str) -> str:
    moved = np.flatnonzero(after < before)
    served = f"{len(moved)} frames ({_frames_text(labels, moved)})" if len(moved) else "no frame"
    if strategy == "farthest":
        return (f"the frame farthest from every painted frame; nearest for {served}; largest distance "
                f"{before.max():.3f} -> {after.max():.3f}")
    return (f"nearest painted frame for {served}; mean distance to a painted frame "
            f"{before.mean():.3f} -> {after.mean():.3f}")


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _span(labels: Sequence[int], segment: Segment) -> str:
    return f"frames {labels[segment.start]}-{labels[segment.stop - 1]}"


def _frames_text(labels: Sequence[int], indices: np.ndarray) -> str:
    """Indices as frame ranges: ``12-30, 44``; at most three ranges, then a count."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(int(i))
        else:
            runs.append([int(i)])
    text = [f"{labels[r[0]]}-{labels[r[-1]]}" if len(r) > 1 else f"{labels[r[0]]}" for r in runs[:3]]
    return ", ".join(text) + (f" and {len(runs) - 3} more runs" if len(runs) > 3 else "")


def largest_gap_middle(painted: Sequence[int], count: int) -> int:
    """The index in the middle of the longest run of unpainted indices in ``range(count)`` (the usual guess
    for the next keyframe, the baseline ``suggest`` is measured against)."""
    marks = sorted(set(painted))
    edges = [-1, *marks, count]
    best = max(range(len(edges) - 1), key=lambda i: (edges[i + 1] - edges[i] - 1, -i))
    low, high = edges[best] + 1, edges[best + 1] - 1
    return (low + high) // 2
