"""What ``suggest`` is asked and what it answers, as frozen objects (no PyTorch needed to build them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PathLike = str | Path

BEFORE, AFTER = "before", "after"


@dataclass(frozen=True)
class SuggestRequest:
    """Which frames of ``source`` to paint next.

    Without ``run`` (before painting): choose ``count`` frames that, painted, cover the shot's
    appearance, every cut segment first; frames in ``have`` are painted already. With ``run``: rank the
    frames the run was not trained on by predicted error, worst first (``count`` of them, or all), and
    draw the worst in a contact sheet.

    Args:
        source: The shot: a folder of frames, a pattern or a video file.
        count: Frames to suggest (needed before painting; after a run, None ranks every unpainted frame).
        have: A folder (or pattern) of frames painted already, by frame number.
        run: A run folder made by training on this shot.
        json_path: Also write the answer as JSON there.
        sheet: The contact sheet of the worst frames (PNG; after a run only; default ``RUN/suggest.png``).
        sheet_frames: Rows of the contact sheet.
        strategy: ``"cover"`` (lowest mean distance from any frame to a painted one) or ``"farthest"``
            (lowest largest distance).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    """

    source: PathLike
    count: int | None = None
    have: PathLike | None = None
    run: PathLike | None = None
    json_path: PathLike | None = None
    sheet: PathLike | None = None
    sheet_frames: int = 6
    strategy: str = "cover"
    device: str = "auto"

    @property
    def mode(self) -> str:
        """``"before"`` painting (no run) or ``"after"`` a run."""
        return BEFORE if self.run is None else AFTER


@dataclass(frozen=True)
class SuggestedFrame:
    """One frame to paint, best first.

    Attributes:
        frame: Its frame number.
        rank: 1 for the first to paint.
        reason: Why, in a line.
        segment: The cut segment it lies in (1 for the first).
        distance: Its appearance distance to the nearest painted frame (before painting: painted or
            suggested before it; None when there was none).
        predicted_error: After a run: its predicted error as a score, 0 for the shot's typical unpainted
            frame, 1 for an interquartile range worse (see :func:`~shotfit.suggest.confidence.predicted_error`).
        disagreement: After a run: the mean LPIPS between its render and its mirrored render mirrored back.
    """

    frame: int
    rank: int
    reason: str
    segment: int
    distance: float | None = None
    predicted_error: float | None = None
    disagreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "rank": self.rank, "reason": self.reason, "segment": self.segment,
                "distance": _number(self.distance), "predicted_error": _number(self.predicted_error),
                "disagreement": _number(self.disagreement)}


@dataclass(frozen=True)
class SuggestResult:
    """What ``suggest`` found.

    Attributes:
        mode: ``"before"`` painting or ``"after"`` a run.
        source: The shot, as given.
        frames: The suggestions, first to paint first.
        painted: Frames painted already (``have``, and after a run its keyframes).
        segments: Each cut segment's first and last frame number, in order.
        uncovered: Segments (numbered from 1) left without a painted frame, or before painting without a
            painted or suggested one (the count too small).
        mean_distance: Mean appearance distance from a frame to the nearest painted or suggested frame
            (before painting), or to the nearest painted frame (after a run).
        json_path, sheet: What was written.
    """

    mode: str
    source: str
    frames: tuple[SuggestedFrame, ...]
    painted: tuple[int, ...]
    segments: tuple[tuple[int, int], ...]
    uncovered: tuple[int, ...] = ()
    mean_distance: float | None = None
    json_path: Path | None = None
    sheet: Path | None = None

    @property
    def cuts(self) -> tuple[int, ...]:
        """The first frame of every segment after the first: where the shot cuts."""
        return tuple(first for first, _ in self.segments[1:])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``suggest --json``): the settings, the cuts and segments, the frames."""
        return {"suggest": {"mode": self.mode, "source": self.source, "count": len(self.frames),
                            "painted": list(self.painted), "mean_distance": _number(self.mean_distance),
                            "uncovered_segments": list(self.uncovered)},
                "cuts": list(self.cuts), "segments": [list(s) for s in self.segments],
                "frames": [f.to_dict() for f in self.frames]}


def frames_text(frames: Sequence[int]) -> str:
    """Frame numbers in a message: at most eight, then a count."""
    shown = ", ".join(map(str, frames[:8]))
    return shown + (f" and {len(frames) - 8} more" if len(frames) > 8 else "")


def _number(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)
