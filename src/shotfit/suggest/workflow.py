"""The two suggest passes over a shot: choosing frames before painting, ranking them after a run.

Each reads the frames once for their appearance (:func:`~shotfit.suggest.features.shot_features`); after a
run, each unpainted frame is also rendered twice (itself and its mirror image) by the run's network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from shotfit.errors import FrameError, quoted
from shotfit.infer.predictor import Predictor, load_network
from shotfit.io import ColourPipeline, Shot, colour_of_run, resolve_colour
from shotfit.losses.lpips import load_lpips
from shotfit.runs.folder import RunFolder
from shotfit.suggest.choose import Segment, choose_frames, find_cuts
from shotfit.suggest.confidence import flip_check, predicted_error, relative
from shotfit.suggest.features import pairwise_distances, shot_features
from shotfit.suggest.request import SuggestedFrame
from shotfit.suggest.sheet import SheetRow, save_heat_sheet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuggestProgress:
    """Where a suggest pass is: ``stage`` (``"features"``, ``"flips"``, ``"sheet"``), frames done of ``total``."""

    stage: str
    done: int
    total: int


Progress = Callable[[SuggestProgress], None]


@dataclass(frozen=True)
class Appearance:
    """The shot's frames, their distances and cut segments."""

    frames: list[int]
    distances: np.ndarray
    segments: list[Segment]

    def segment_of(self, index: int) -> int:
        return next(n for n, s in enumerate(self.segments, start=1) if s.start <= index < s.stop)

    def spans(self) -> tuple[tuple[int, int], ...]:
        return tuple((self.frames[s.start], self.frames[s.stop - 1]) for s in self.segments)


def read_appearance(shot: Shot, colour: ColourPipeline, device: torch.device,
                    on_progress: Progress | None = None) -> Appearance:
    """Every frame's appearance vector, the distances between them, and the cuts they show."""
    frames = shot.frames
    trunk = load_lpips(input_range=(-1.0, 1.0)).to(device)

    def tick(done: int) -> None:
        if on_progress is not None:
            on_progress(SuggestProgress("features", done, len(frames)))

    distances = pairwise_distances(shot_features(shot, frames, colour, trunk, device, tick))
    return Appearance(frames, distances, find_cuts(distances))


def plate_colour(shot: Shot) -> ColourPipeline:
    """Before any run: the colour handling training would pick for this shot by default."""
    return ColourPipeline(resolve_colour(shot.format))


def choose_before(appearance: Appearance, painted: Sequence[int], count: int,
                  strategy: str) -> tuple[list[SuggestedFrame], float]:
    """``count`` frames to paint besides ``painted`` (frame numbers), and the mean distance left after them."""
    index_of = {frame: i for i, frame in enumerate(appearance.frames)}
    have = [index_of[f] for f in painted]
    picks = choose_frames(appearance.distances, appearance.segments, count, have, strategy, appearance.frames)
    chosen = list(have)
    suggestions = []
    for rank, pick in enumerate(picks, start=1):
        distance = float(appearance.distances[pick.index, chosen].min()) if chosen else None
        if chosen and appearance.segment_of(pick.index) not in {appearance.segment_of(i) for i in chosen}:
            distance = None  # nothing painted in its segment yet: no distance to a frame it could learn from
        chosen.append(pick.index)
        suggestions.append(SuggestedFrame(appearance.frames[pick.index], rank, pick.reason,
                                          appearance.segment_of(pick.index), distance))
    return suggestions, _mean_nearest(appearance, chosen)


def _mean_nearest(appearance: Appearance, painted: Sequence[int]) -> float:
    return float(appearance.distances[:, list(painted)].min(axis=1).mean()) if painted else float("nan")


@dataclass(frozen=True)
class TrainedRun:
    """A run's predictor for this shot and what it was painted on."""

    predictor: Predictor
    colour: ColourPipeline
    painted: tuple[int, ...]


def open_run(run: Path, shot: Shot, device: torch.device) -> TrainedRun:
    """The run's network as a render would run it (fp32, so the ranking is repeatable), and its keyframes."""
    folder = RunFolder(run)
    cfg, info = folder.read_config(), folder.read_info()
    if (3 if shot.channels >= 3 else 1) != info.channels:
        raise FrameError(f"source {quoted(shot.path)} has {shot.channels} channels but run {quoted(run)} was "
                         f"trained on {info.channels}", parameter="source")
    colour = ColourPipeline(colour_of_run(info.colour_record(), f"run {quoted(run)}"))
    network, _ = load_network(folder)
    predictor = Predictor(network, colour, device, cfg.render.tile, cfg.render.tile_overlap, cfg.render.blend,
                          "fp32", shot.format)
    return TrainedRun(predictor, colour, (*info.keyframe_frames, *info.validation_frames))


def rank_after(appearance: Appearance, shot: Shot, trained: TrainedRun, painted: Sequence[int],
               count: int | None, device: torch.device, on_progress: Progress | None = None
               ) -> tuple[list[SuggestedFrame], float]:
    """The unpainted frames ranked by predicted error, worst first (``count`` of them, or all), and the mean
    appearance distance from a frame to the nearest painted one."""
    lpips = load_lpips(input_range=(0.0, 1.0)).to(device)
    index_of = {frame: i for i, frame in enumerate(appearance.frames)}
    painted_idx = [index_of[f] for f in painted]
    unpainted = [i for i in range(len(appearance.frames)) if i not in set(painted_idx)]
    distance = appearance.distances[np.ix_(unpainted, painted_idx)].min(axis=1)
    disagreement = []
    for done, index in enumerate(unpainted, start=1):
        disagreement.append(flip_check(trained.predictor, shot.read(appearance.frames[index]), lpips).score)
        if on_progress is not None:
            on_progress(SuggestProgress("flips", done, len(unpainted)))
    predicted = predicted_error(disagreement, distance)
    order = sorted(range(len(unpainted)), key=lambda k: (-round(float(predicted[k]), 9), unpainted[k]))
    order = _spread_out(order, unpainted, appearance.distances, distance)
    ranked = []
    for rank, k in enumerate(order[:count], start=1):
        index = unpainted[k]
        reason = (f"its flips disagree {relative(disagreement[k], disagreement):.2f}x as much as the typical "
                  f"unpainted frame's; it lies {relative(float(distance[k]), distance):.2f}x as far from a keyframe")
        ranked.append(SuggestedFrame(appearance.frames[index], rank, reason, appearance.segment_of(index),
                                     float(distance[k]), float(predicted[k]), disagreement[k]))
    return ranked, _mean_nearest(appearance, painted_idx)


def _spread_out(order: list[int], indices: list[int], distances: np.ndarray, to_keyframe: np.ndarray) -> list[int]:
    """``order`` with each frame that a frame taken before it would teach (it lies nearer to that frame than to
    its nearest keyframe, so painting that frame would teach it too) moved behind those no taken frame would."""
    first: list[int] = []
    later: list[int] = []
    for k in order:
        near = any(distances[indices[k], indices[j]] < to_keyframe[k] for j in first)
        (later if near else first).append(k)
    return first + later


def write_sheet(shot: Shot, trained: TrainedRun, ranked: Sequence[SuggestedFrame], rows: int, path: Path,
                device: torch.device, on_progress: Progress | None = None) -> Path:
    """Render the ``rows`` worst frames again with their flip maps, and lay them out in ``path``."""
    lpips = load_lpips(input_range=(0.0, 1.0)).to(device)
    sheet_rows = []
    worst = ranked[:rows]
    for done, item in enumerate(worst, start=1):
        check = flip_check(trained.predictor, shot.read(item.frame), lpips)
        label = f"#{item.rank}  frame {item.frame}  score {item.predicted_error or 0:+.2f}"
        sheet_rows.append(SheetRow(label, check.source, check.render, check.disagreement))
        if on_progress is not None:
            on_progress(SuggestProgress("sheet", done, len(worst)))
    return save_heat_sheet(sheet_rows, path)
