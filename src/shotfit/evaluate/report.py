"""Evaluation of a rendered prediction against its ground truth: per-frame scores, temporal warping error.

Frames are paired by frame number. Per frame: PSNR, SSIM and (given a network) LPIPS. Per consecutive
pair of compared frames: the warping error (:mod:`shotfit.evaluate.warping`) of the prediction and of
the ground truth, both along the optical flow of the *source* plate when one is given, else along the
flow of the ground truth (``EvalReport.flow_from`` says which). Scoring the truth along the same flow
gives the floor a perfect prediction would reach.

Frames are display-referred float arrays in [0, 1], (H, W) or (H, W, C) with C = 1 or 3; scene-linear
shots are scored in a log view first (OCIO, scene_linear -> color_timing: ACEScg -> ACEScct). The source
may be at any scale (only its structure is used).
This module only computes; the CLI renders tables.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shotfit.errors import FrameError, quoted
from shotfit.evaluate.metrics import edited_region, high_frequency_error, lpips, lpips_skipped, psnr, psnr_in, ssim
from shotfit.evaluate.warping import flow_between, pair_warping_error
from shotfit.io.colour import ColourPipeline, ColourSettings, resolve_colour
from shotfit.io.sequence import display_path

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

# Display-referred frames may overshoot a little (a network's output); far outside means scene-linear data.
_DISPLAY_RANGE = (-0.5, 1.5)


class ShotLike(Protocol):
    """What :func:`evaluate_frames` needs of a shot (``shotfit.io.Shot`` provides it)."""

    @property
    def frames(self) -> list[int]: ...  # read-only: a shot's frames are what its files say

    def read(self, frame: int) -> np.ndarray: ...


Frames = ShotLike | Mapping[int, np.ndarray] | Iterable[tuple[int, np.ndarray]]


@dataclass(frozen=True)
class FrameScores:
    """Scores of one frame: PSNR in dB (``inf`` if identical), SSIM in [-1, 1], LPIPS >= 0 or None,
    the high-frequency error (>= 0; see :func:`~shotfit.evaluate.metrics.high_frequency_error`), and
    PSNR inside the edited region (where the truth differs from the source plate; None without a source
    or where the edit left the frame as it was) with that region's share of the frame."""

    frame: int
    psnr: float
    ssim: float
    lpips: float | None
    hf_error: float
    psnr_edited: float | None = None
    edited_fraction: float | None = None


@dataclass(frozen=True)
class PairScores:
    """Warping error (in [0, 1], NaN if nothing was visible) of frames ``frame`` -> ``next_frame``.

    ``coverage`` is the fraction of pixels the flow trusts (the mask of the error).
    """

    frame: int
    next_frame: int
    prediction: float
    truth: float | None
    coverage: float


@dataclass(frozen=True)
class EvalReport:
    """Scores of a prediction, per frame and per consecutive pair.

    Attributes:
        compared: the frame numbers compared (every prediction frame, or the chosen ones), sorted.
        frames: per-frame scores in frame order (empty when no ground truth was given).
        pairs: per-pair warping errors in frame order.
        flow_from: ``"source"`` or ``"truth"``: whose optical flow the warping errors follow.
        notes: what was not scored and why, in words (LPIPS on frames too small for it).
    """

    compared: tuple[int, ...]
    frames: tuple[FrameScores, ...]
    pairs: tuple[PairScores, ...]
    flow_from: str
    notes: tuple[str, ...] = ()

    def summary(self, frames: Iterable[int] | None = None) -> dict[str, Any]:
        """Means over all compared frames, or over the subset ``frames`` (e.g. the held-out frames).

        Frame numbers that were not compared are ignored. A pair counts when both of its frames are in
        the subset. Means may be ``inf`` (PSNR of an identical frame) or NaN (nothing to average, e.g.
        PSNR without a ground truth).

        Returns:
            ``{"frames": frames compared in the subset, "psnr", "ssim", "lpips" (None without LPIPS), "hf_error",
            "psnr_edited" (None without a source, or when no frame's truth differs from its source),
            "warping_error" (prediction), "warping_error_truth" (None without truth),
            "pairs": pairs averaged, "flow_from"}``.
        """
        chosen = None if frames is None else {int(f) for f in frames}
        rows = [r for r in self.frames if chosen is None or r.frame in chosen]
        pairs = [p for p in self.pairs if chosen is None or (p.frame in chosen and p.next_frame in chosen)]
        usable = [p for p in pairs if not math.isnan(p.prediction)]
        has_lpips = any(r.lpips is not None for r in self.frames)
        has_truth = any(p.truth is not None for p in self.pairs) or bool(self.frames)
        return {
            "frames": sum(1 for f in self.compared if chosen is None or f in chosen),
            "psnr": _mean(r.psnr for r in rows),
            "ssim": _mean(r.ssim for r in rows),
            "lpips": _mean(r.lpips for r in rows) if has_lpips else None,
            "hf_error": _mean(r.hf_error for r in rows),
            "psnr_edited": _mean(r.psnr_edited for r in rows if r.psnr_edited is not None)
            if any(r.psnr_edited is not None for r in rows) else None,
            "warping_error": _mean(p.prediction for p in usable),
            "warping_error_truth": _mean(p.truth for p in usable) if has_truth else None,
            "pairs": len(usable),
            "flow_from": self.flow_from,
        }

    def to_dict(self, subsets: Mapping[str, Iterable[int]] | None = None) -> dict[str, Any]:
        """Everything, ready for ``json.dumps``.

        Non-finite numbers are encoded so strict JSON parsers accept them: ``inf`` becomes the string
        ``"inf"`` (``"-inf"``) and NaN (undefined, e.g. a pair with no visible pixel) becomes ``null``.

        Args:
            subsets: named frame subsets to summarise as well, e.g. ``{"held_out": non_keyframes}``.

        Returns:
            ``{"compared": number of frames, "compared_frames": [their numbers], "flow_from", "summary",
            "subsets": {name: summary}, "frames": [per-frame scores], "pairs": [per-pair warping errors],
            "notes": [what was not scored]}``.
        """
        return _json_safe({
            "compared": len(self.compared),
            "compared_frames": list(self.compared),
            "flow_from": self.flow_from,
            "summary": self.summary(),
            "subsets": {name: self.summary(frames) for name, frames in (subsets or {}).items()},
            "frames": [asdict(r) for r in self.frames],
            "pairs": [asdict(p) for p in self.pairs],
            "notes": list(self.notes),
        })


def evaluate_frames(
    pred: Frames,
    truth: Frames | None,
    source: Frames | None = None,
    *,
    lpips_net: nn.Module | None = None,
    flow_preset: str = "medium",
    occlusion: str = "lai",
    colour: ColourSettings | None = None,
    frames: Iterable[int] | None = None,
) -> EvalReport:
    """Score a prediction against its ground truth, frame by frame and over time.

    Every prediction frame compared (all, or those in ``frames``) must have a ground-truth frame (and a
    source frame, when a source is given); extra truth or source frames are ignored. Frames are read one
    at a time from shots, so a long shot holds only two frames of each input in memory.

    Args:
        pred: the prediction: a shot (``.frames`` and ``.read(frame)``, e.g. ``shotfit.io.open_shot``), a
            mapping frame -> array or an iterable of (frame, array); arrays (H, W) or (H, W, C), C = 1 or 3,
            display-referred floats in [0, 1]. A shot's frames are shaped for you: scene-linear (float)
            shots are scored in the working space of ``colour`` (a log encoding), and alpha is dropped.
        truth: the ground truth, same kinds and shapes; None to measure only the prediction's warping
            error (then a source is needed for the flow).
        source: the plate the prediction was made from, any scale, same (H, W); its flow drives the warping
            error. Without it the flow comes from the ground truth.
        lpips_net: an LPIPS module (``shotfit.losses.lpips.load_lpips()``); None skips LPIPS. Frames too
            small for LPIPS (:func:`~shotfit.evaluate.metrics.lpips_skipped`) are scored without it, with
            a warning and a note in the report.
        flow_preset, occlusion: passed to :func:`shotfit.evaluate.warping.flow_between`.
        colour: how float shots are brought to [0, 1]: their source space and the working space they
            are scored in; default ``resolve_colour(format)`` (the OCIO config's scene_linear ->
            color_timing, ACEScg -> ACEScct). Integer shots are scored as they are.
        frames: compare only these prediction frames (e.g. those a truth was made for); None: all. A pair
            is scored only when its two frames are neighbours in the prediction, so leaving frames out
            never makes a pair across the gap.

    Returns:
        An :class:`EvalReport`.

    Raises:
        FrameError: a prediction frame compared has no truth or source frame, ``frames`` names a frame the
            prediction lacks, sizes differ, a frame is not in
            [0, 1], or one of prediction and truth is scene-linear and the other not (one line naming the
            frame or shot).
    """
    pred_frames = _FrameAccess(pred, "prediction", colour)
    truth_frames = None if truth is None else _FrameAccess(truth, "ground truth", colour)
    source_frames = None if source is None else _FrameAccess(source, "source", colour)
    if truth_frames is None and source_frames is None:
        raise ValueError("evaluate_frames needs a ground truth or a source to compute the flow from")
    flow_from = "source" if source_frames is not None else "truth"
    if not pred_frames.numbers:
        raise FrameError(f"{pred_frames.name} has no frames to evaluate")
    following = dict(zip(pred_frames.numbers, pred_frames.numbers[1:]))  # each frame's neighbour in the prediction
    compared = pred_frames.numbers if frames is None else _chosen(pred_frames, frames)
    if truth_frames is not None and truth_frames.scene_linear != pred_frames.scene_linear:
        kinds = {False: "display-referred", True: "scene-linear"}
        raise FrameError(f"{pred_frames.name} is {kinds[pred_frames.scene_linear]} but "
                         f"{truth_frames.name} is {kinds[truth_frames.scene_linear]}; "
                         "compare frames of the same kind")
    for other in (truth_frames, source_frames):
        if other is not None:
            missing = next((f for f in compared if f not in other), None)
            if missing is not None:
                raise FrameError(f"{pred_frames.where(missing)} has no {other.label} frame ({other.span()})")

    rows: list[FrameScores] = []
    pairs: list[PairScores] = []
    notes: list[str] = []
    previous = None
    for frame in compared:
        predicted = pred_frames.read(frame, check_range=True)
        target = None if truth_frames is None else truth_frames.read(frame, check_range=True)
        if target is not None and target.shape != predicted.shape:
            raise FrameError(f"{truth_frames.where(frame)} has shape {target.shape}, "
                             f"{pred_frames.where(frame)} has {predicted.shape}")
        plate = target if source_frames is None else source_frames.read(frame)
        if plate.shape[:2] != predicted.shape[:2]:
            raise FrameError(f"{source_frames.where(frame)} has shape {plate.shape}, "
                             f"{pred_frames.where(frame)} has {predicted.shape}")
        if target is not None:
            skipped = None if lpips_net is None else lpips_skipped(predicted.shape)
            if skipped is not None and f"LPIPS is not scored: {skipped}" not in notes:
                notes.append(f"LPIPS is not scored: {skipped}")
                logger.warning("%s", notes[-1])
            distance = None if lpips_net is None or skipped else lpips(predicted, target, lpips_net)
            region = None if source_frames is None else edited_region(target, plate)
            rows.append(FrameScores(frame, psnr(predicted, target), ssim(predicted, target), distance,
                                    high_frequency_error(predicted, target),
                                    None if region is None else psnr_in(predicted, target, region),
                                    None if region is None else float(region.mean())))
        if previous is not None and following.get(previous[0]) == frame:
            pairs.append(_score_pair(previous, (frame, predicted, target, plate), flow_preset, occlusion))
        previous = (frame, predicted, target, plate)

    logger.info("compared %d frames; warping error along the %s's flow over %d pairs",
                len(compared), flow_from, len(pairs))
    return EvalReport(compared=tuple(compared), frames=tuple(rows), pairs=tuple(pairs),
                      flow_from=flow_from, notes=tuple(notes))


def _chosen(pred: _FrameAccess, frames: Iterable[int]) -> list[int]:
    """The prediction's frames that are in ``frames``, sorted; a frame it lacks, or none at all, is an error."""
    wanted = sorted({int(f) for f in frames})
    missing = [f for f in wanted if f not in pred]
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise FrameError(f"{pred.name} has no frame {shown} to compare ({pred.span()})")
    if not wanted:
        raise FrameError(f"no frames of {pred.name} were chosen to compare")
    return wanted


class _FrameAccess:
    """One input's frames behind a single interface: sorted numbers, lazy checked reads, names for messages.

    Frames of a shot are brought to [0, 1] as the network sees them: scene-linear (float) shots into the
    working space of ``colour`` (default: the OCIO config's color_timing role, ACEScct); an alpha channel
    is dropped (not scored). Arrays given directly are used as they are.
    """

    def __init__(self, frames: Frames, label: str, colour: ColourSettings | None = None) -> None:
        self.label = label
        self._arrays: dict[int, np.ndarray] = {}
        if hasattr(frames, "frames") and hasattr(frames, "read"):
            self._shot = frames
            self.numbers = sorted(int(f) for f in frames.frames)
            fmt = getattr(frames, "format", None) if self.numbers else None
            self.scene_linear = fmt is not None and fmt.is_float
            self.colour = ColourPipeline(colour or resolve_colour(fmt)) if self.scene_linear else None
            path = getattr(frames, "path", None)
            self.name = f"the {label} {quoted(display_path(Path(path)))}" if path is not None else f"the {label}"
        else:
            self._shot = None
            self.scene_linear, self.colour = False, None
            self.name = f"the {label}"
            for number, array in frames.items() if isinstance(frames, Mapping) else frames:
                if int(number) in self._arrays:
                    raise ValueError(f"{label} has frame {int(number)} twice")
                self._arrays[int(number)] = array
            self.numbers = sorted(self._arrays)
        self._known = set(self.numbers)

    def __contains__(self, frame: int) -> bool:
        return frame in self._known

    def where(self, frame: int) -> str:
        """``prediction frame 42 ('render/0042.exr')`` when the shot can name its file."""
        describe = getattr(self._shot, "describe", None)
        return f"{self.label} frame {frame}" + (f" ({quoted(describe(frame))})" if describe else "")

    def span(self) -> str:
        if not self.numbers:
            return f"{self.name} has no frames"
        return f"{self.name} has {len(self.numbers)} frames, {self.numbers[0]}-{self.numbers[-1]}"

    def read(self, frame: int, check_range: bool = False) -> np.ndarray:
        if self._shot is None:
            array = np.asarray(self._arrays[frame])
        else:
            array = np.asarray(self._shot.read(frame))
            if array.ndim == 3 and array.shape[2] == 4:
                array = array[..., :3]
            if self.colour is not None:
                array = self.colour.to_working(array)
        if array.ndim not in (2, 3):
            raise FrameError(f"{self.where(frame)} has shape {array.shape}, expected (H, W) or (H, W, C)")
        if check_range:
            low, high = float(np.min(array)), float(np.max(array))
            if not (math.isfinite(low) and math.isfinite(high)):
                raise FrameError(f"{self.where(frame)} has NaN or infinite values")
            if low < _DISPLAY_RANGE[0] or high > _DISPLAY_RANGE[1]:
                raise FrameError(f"{self.where(frame)} has values in [{low:.3g}, {high:.3g}]; evaluation needs "
                                 f"display-referred frames in [0, 1] (map scene-linear frames into a log space first)")
        return array


def _score_pair(previous: tuple, current: tuple, preset: str, occlusion: str) -> PairScores:
    """Warping errors of one consecutive pair of compared frames along the plate's flow."""
    frame, predicted, target, plate = previous
    next_frame, next_predicted, next_target, next_plate = current
    if next_frame - frame > 1:
        logger.warning("frames %d and %d are compared as a pair across a gap; flow over a gap is less reliable",
                       frame, next_frame)
    flow = flow_between(plate, next_plate, preset=preset, occlusion=occlusion)
    truth_error = None if target is None else pair_warping_error(target, next_target, flow)
    return PairScores(frame, next_frame, pair_warping_error(predicted, next_predicted, flow), truth_error,
                      flow.coverage)


def _mean(values: Iterable[float | None]) -> float:
    """Mean of the defined values; NaN when there are none. ``inf`` propagates."""
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(kept)) if kept else math.nan


def _json_safe(value: Any) -> Any:
    """Replace inf by "inf"/"-inf" and NaN by None, recursively."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value
