"""Restoration tasks on real footage: a plate spoilt frame by frame, and the clean clip as the truth.

- ``face-degrain``: film grain and a slight exposure flicker on the talking-head clip (410x412, 169
  frames; keyframes 0, 56, 112, 168): the artist degrains and deflickers the keyframes, and the clean
  clip is the truth on every frame.

Unlike the per-frame effects of :mod:`bench.face_effects`, whose truth flickers more than the plate,
this truth is as steady as the footage itself and the plate is the unsteady one: a lower warping error
of the output is then unambiguously better, which is what the temporal term (``loss.temporal``) must
be judged on.

The grain (:func:`film_grain`) is drawn afresh for every frame from a generator seeded by the frame's
number, so the same frame gets the same bytes every time and neighbouring frames share no grain, as on
scanned film. It is mostly luminance (the same on the three channels) with a little colour, softened
by a blur of :data:`GRAIN_SOFTNESS` pixels (film grain is larger than a pixel of a scan), and strongest
in the mid-tones (:func:`grain_amplitude`). The clip is third-party footage (see the shared data's
SOURCES.md): it is read where it lies, and only the plate, keyframes and truth are written, into the
benchmark's own folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.presets import footage
from shotfit.errors import ShotfitError, quoted
from shotfit.io import PixelFormat, open_shot, write_image

PNG8 = PixelFormat(".png", "uint8", 3)

# Standard deviation of the grain in the mid-tones, on [0, 1] values (0.03 is about 8 codes of 8 bits):
# plainly visible grain, as of fast 16 mm stock; the plate is about 31 dB from the clean clip.
GRAIN_STRENGTH = 0.03
GRAIN_SOFTNESS = 0.7  # Gaussian blur (pixels) of the grain before it is rescaled to its strength
GRAIN_COLOUR = 0.35  # share of independent per-channel (colour) grain beside the luminance grain
SHADOW_HIGHLIGHT = 0.55  # the grain's amplitude at black and at white, relative to the mid-tones
FLICKER = 0.01  # standard deviation of the per-frame exposure gain (clipped at 2.5 of them)


@dataclass(frozen=True)
class Restoration:
    """A clip in the shared footage, its keyframes, and how strongly its plate is spoilt."""

    clip: str  # under the shared data folder: a video file
    keyframes: tuple[int, ...]
    grain: float = GRAIN_STRENGTH
    flicker: float = FLICKER


RESTORATIONS = {
    "face-degrain": Restoration("tpsmm_driving_face/assets/driving.mp4", (0, 56, 112, 168)),
}


def grain_amplitude(luma: np.ndarray) -> np.ndarray:
    """The grain's relative amplitude at each luminance in [0, 1]: 1 in the mid-tones, falling to
    :data:`SHADOW_HIGHLIGHT` at black and white (where film's density curve flattens)."""
    return SHADOW_HIGHLIGHT + (1.0 - SHADOW_HIGHLIGHT) * 4.0 * luma * (1.0 - luma)


def film_grain(rgb: np.ndarray, frame: int, strength: float = GRAIN_STRENGTH, flicker: float = FLICKER,
               seed: int = 0) -> np.ndarray:
    """Frame number ``frame`` of a clean clip, (H, W, 3) uint8 RGB, with film grain and exposure flicker.

    The same ``frame`` and ``seed`` give the same bytes every time; different frames share no grain.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"film grain takes (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
    rng = np.random.default_rng([seed, frame])
    height, width = rgb.shape[:2]
    gain = 1.0 + flicker * float(np.clip(rng.standard_normal(), -2.5, 2.5))
    luma_grain = rng.standard_normal((height, width, 1), dtype=np.float32)
    colour_grain = rng.standard_normal((height, width, 3), dtype=np.float32)
    grain = (1.0 - GRAIN_COLOUR) * luma_grain + GRAIN_COLOUR * colour_grain
    grain = cv2.GaussianBlur(grain, (0, 0), GRAIN_SOFTNESS)
    grain /= grain.std()  # the blur lowers the spread; the strength is what the plate shows
    clean = rgb.astype(np.float32) / 255.0
    luma = cv2.cvtColor(clean, cv2.COLOR_RGB2GRAY)[..., None]
    spoilt = clean * gain + strength * grain_amplitude(luma) * grain
    return np.clip(np.rint(spoilt * 255.0), 0, 255).astype(np.uint8)


def write_restoration_shot(name: str, shared_data: Path, out: Path) -> tuple[Path, Path, Path, tuple[int, ...]]:
    """Write the task ``name``'s plate (``out/source``), keyframes and truth (the clean frames) as 8-bit
    PNGs named ``<clip stem>.NNNN.png``; frames already written are kept.

    Returns:
        The source, keyframes and truth folders, and the keyframe numbers.

    Raises:
        ShotfitError: unknown task, or the clip is not in the shared data or lacks a keyframe.
    """
    if name not in RESTORATIONS:
        raise ShotfitError(f"unknown restoration task {name!r} (known: {', '.join(RESTORATIONS)})")
    task = RESTORATIONS[name]
    clip = footage(shared_data / task.clip)
    folders = {kind: out / kind for kind in ("source", "keyframes", "truth")}
    with open_shot(clip) as video:
        missing = sorted(set(task.keyframes) - set(video.frames))
        if missing:
            raise ShotfitError(f"{quoted(clip)} has no frame {missing[0]} (it holds 0-{video.frames[-1]})")
        for frame, pixels in video.iter_frames(video.frames):
            write_frame(np.clip(np.rint(pixels[..., :3] * 255.0), 0, 255).astype(np.uint8), frame, task,
                        folders, clip.stem)
    return folders["source"], folders["keyframes"], folders["truth"], task.keyframes


def write_frame(clean: np.ndarray, frame: int, task: Restoration, folders: dict[str, Path], stem: str) -> None:
    """One frame's plate, truth and (on a keyframe) keyframe, each unless already written."""
    name = f"{stem}.{frame:04d}.png"
    kinds = ("source", "truth", "keyframes") if frame in task.keyframes else ("source", "truth")
    for kind in kinds:
        path = folders[kind] / name
        if not path.is_file():
            pixels = film_grain(clean, frame, task.grain, task.flicker) if kind == "source" else clean
            write_image(path, pixels.astype(np.float32) / 255.0, PNG8)
