"""Which frames to paint, from the frames' appearance distances alone (numpy; no network).

A keyframe teaches the network about the frames that look like it, so the chosen set should leave no
frame far from a painted one. Every cut segment first gets its most typical frame (a keyframe never
teaches across a cut); each further frame is the one that lowers the shot's mean distance to the nearest
painted frame the most, and then single swaps improve the set while one does (the k-medoids objective;
a farthest-point k-center is the ``"farthest"`` strategy). Frames already painted start the set and stay.
Ties go to the earlier frame, so the same shot always gives the same answer.
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
    """One chosen frame: its index in the shot's frame list, why, how much worse the cover would be without it
    (inf: the only frame of its segment), and the cover's mean (or largest) distance with every pick."""

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
        strategy: ``"cover"`` (lowest mean distance to a painted frame: greedy, then single swaps while
            one lowers it, as k-medoids does) or ``"farthest"`` (lowest largest distance: greedy k-center).
        labels: Frame numbers for the reasons (default: the indices).

    Returns:
        The picks, the one whose loss would cost the most first, each with its reason.
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
    for number in _uncovered_segments(segments, segment_of, chosen)[:count]:
        segment = segments[number]
        block = distances[segment.start:segment.stop, segment.start:segment.stop]
        chosen.append(segment.start + int(np.argmin(_settled(block.sum(axis=0)))))
    while len(chosen) < len(have) + count:
        chosen.append(_best_addition(cover, _nearest(cover, chosen), chosen, strategy))
    picks = chosen[len(have):]
    if strategy == "cover":
        picks = _swap_until_settled(cover, segment_of, list(have), picks)
    return _explain(cover, segment_of, segments, list(have), picks, labels, strategy)


def _nearest(cover: np.ndarray, chosen: Sequence[int]) -> np.ndarray:
    return cover[:, list(chosen)].min(axis=1) if chosen else np.full(len(cover), np.inf)


def _swap_until_settled(cover: np.ndarray, segment_of: np.ndarray, have: list[int], picks: list[int],
                        rounds: int = 20) -> list[int]:
    """Replace one pick at a time by the frame that lowers the total distance most, while one does (k-medoids'
    swap step); a swap never leaves a segment bare that was covered. Greedy alone clusters its picks."""
    for _ in range(rounds):
        improved = False
        for slot in range(len(picks)):
            others = have + picks[:slot] + picks[slot + 1:]
            without = _nearest(cover, others)
            totals = np.minimum(without[:, None], cover).sum(axis=0)
            if _bare_if_moved(segment_of, others, picks[slot]):
                totals = np.where(segment_of == segment_of[picks[slot]], totals, np.inf)
            totals[others] = np.inf
            best = int(np.argmin(_settled(totals)))
            if _settled(totals[best]) < _settled(totals[picks[slot]]):
                picks[slot], improved = best, True
        if not improved:
            break
    return picks


def _bare_if_moved(segment_of: np.ndarray, others: Sequence[int], index: int) -> bool:
    return int(segment_of[index]) not in {int(segment_of[i]) for i in others}


def _explain(cover: np.ndarray, segment_of: np.ndarray, segments: Sequence[Segment], have: list[int],
             picks: list[int], labels: Sequence[int], strategy: str) -> list[Pick]:
    """Each pick's reason and what losing it would cost; the costliest first (earlier frame among equals)."""
    everything = have + picks
    final = _nearest(cover, everything)
    score = (lambda values: float(values.max())) if strategy == "farthest" else (lambda values: float(values.mean()))
    explained = []
    for index in picks:
        others = [i for i in everything if i != index]
        without = _nearest(cover, others)
        served = np.flatnonzero(cover[:, index] <= final) if others else np.arange(len(cover))
        served = served[segment_of[served] == segment_of[index]]
        number = int(segment_of[index])
        if _bare_if_moved(segment_of, others, index):
            where = "" if len(segments) == 1 else f" of cut segment {number + 1} ({_span(labels, segments[number])})"
            reason = f"the most typical frame{where}, which no other painted frame covers"
            loss = float("inf")
        else:
            what = "largest" if strategy == "farthest" else "mean"
            reason = (f"nearest painted frame for {len(served)} frames ({_frames_text(labels, served)}); without it "
                      f"the {what} distance to a painted frame rises {score(final):.3f} -> {score(without):.3f}")
            loss = score(without) - score(final)
        explained.append((loss, index, reason))
    explained.sort(key=lambda item: (-_settled(np.array(item[0])), item[1]))
    return [Pick(index, reason, loss, score(final)) for loss, index, reason in explained]


def _uncovered_segments(segments: Sequence[Segment], segment_of: np.ndarray, chosen: Sequence[int]) -> list[int]:
    """Segments holding no chosen frame, the longest first (earlier first among equals)."""
    covered = {int(segment_of[i]) for i in chosen}
    open_ = [n for n in range(len(segments)) if n not in covered]
    return sorted(open_, key=lambda n: (-len(segments[n]), n))


def _best_addition(cover: np.ndarray, nearest: np.ndarray, chosen: Sequence[int], strategy: str) -> int:
    candidates = np.ones(len(cover), dtype=bool)
    candidates[list(chosen)] = False
    if strategy == "farthest":
        return int(np.argmax(np.where(candidates, _settled(nearest), -np.inf)))
    gains = np.maximum(nearest[:, None] - cover, 0.0).sum(axis=0)
    return int(np.argmax(np.where(candidates, _settled(gains), -np.inf)))


def _settled(values: np.ndarray) -> np.ndarray:
    """Values rounded to 1e-9, so sums equal but for rounding tie, and the earlier frame wins everywhere."""
    return np.round(values, 9)


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
