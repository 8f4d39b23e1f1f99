"""Deterministic per-frame effects on real face footage: edits with a ground truth on every frame.

An effect made frame by frame stands in for an artist's keyframe edit: shotfit (and its peers) see
the effect on a few keyframes, and every other frame's effect is the truth they are scored against.

- ``stylise``: OpenCV's edge-preserving stylisation (``cv2.stylization``: a domain-transform filter
  that flattens textures into painterly regions and keeps strong edges).
- ``smooth``: a beauty pass: a bilateral filter blended in inside a soft skin-colour mask (YCrCb
  range), then a gentle warm grade on the whole frame.

Both take and return (H, W, 3) uint8 RGB, and give the same bytes for the same frame every time.
The face clips are third-party footage (see the shared data's SOURCES.md): they are read where they
lie, and only the effect's frames are written, into the benchmark's own folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.presets import footage
from shotfit.errors import ShotfitError, quoted
from shotfit.io import PixelFormat, open_shot, write_image

PNG8 = PixelFormat(".png", "uint8", 3)

# A warm grade: a little more red, a little less blue, a slight lift of the shadows.
WARM_GAIN = np.array([1.06, 1.01, 0.92], np.float32)
WARM_LIFT = 0.02
# Skin in YCrCb (the classic Chai & Ngan range), softened by a blur so the blend has no edge.
SKIN_LOW, SKIN_HIGH = (0, 133, 77), (255, 173, 127)


def stylise(rgb: np.ndarray) -> np.ndarray:
    """Edge-preserving stylisation: (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB."""
    bgr = cv2.cvtColor(_checked(rgb), cv2.COLOR_RGB2BGR)
    return cv2.cvtColor(cv2.stylization(bgr, sigma_s=60, sigma_r=0.45), cv2.COLOR_BGR2RGB)


def smooth(rgb: np.ndarray) -> np.ndarray:
    """Skin smoothing inside a skin-colour mask plus a warm grade: (H, W, 3) uint8 -> (H, W, 3) uint8."""
    rgb = _checked(rgb)
    mask = cv2.inRange(cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb), SKIN_LOW, SKIN_HIGH).astype(np.float32) / 255.0
    mask = cv2.GaussianBlur(mask, (0, 0), 3.0)[..., None]
    smoothed = cv2.bilateralFilter(rgb, 9, 40, 7).astype(np.float32)
    blended = rgb.astype(np.float32) * (1.0 - mask) + smoothed * mask
    graded = (blended / 255.0 * WARM_GAIN) * (1.0 - WARM_LIFT) + WARM_LIFT
    return np.clip(np.rint(graded * 255.0), 0, 255).astype(np.uint8)


EFFECTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"stylise": stylise, "smooth": smooth}


@dataclass(frozen=True)
class FaceClip:
    """A face clip in the shared footage and the keyframes its SOURCES.md entry suggests."""

    path: str  # under the shared data folder
    keyframes: tuple[int, ...]


FACE_CLIPS = {
    "driving": FaceClip("tpsmm_driving_face/assets/driving.mp4", (0, 56, 112, 168)),
    "pexels": FaceClip("rerender_pexels_people/videos/pexels-antoni-shkraba-8048492-540x960-25fps.mp4",
                       (0, 98, 183, 264, 345)),
}


def apply_effect(effect: str, pixels: np.ndarray) -> np.ndarray:
    """``effect`` on a frame as shotfit reads it ((H, W, 3) float in [0, 1]); returns float in [0, 1]."""
    if effect not in EFFECTS:
        raise ShotfitError(f"unknown face effect {effect!r} (known: {', '.join(EFFECTS)})")
    codes = np.clip(np.rint(pixels[..., :3] * 255.0), 0, 255).astype(np.uint8)
    return EFFECTS[effect](codes).astype(np.float32) / 255.0


def write_face_shot(effect: str, clip: Path, keyframes: Iterable[int], truth_frames: Iterable[int], out: Path,
                    what: str = "face clip") -> tuple[Path, Path]:
    """Write the effect on the clip's keyframes (``out/keyframes``) and on ``truth_frames`` (``out/truth``).

    Frames already written are kept (an interrupted benchmark picks up where it stopped). Files are
    named ``<clip stem>.NNNN.png`` after the frame number, as a render of the clip is.

    Args:
        what: What the clip is, for the message when it is missing.

    Returns:
        The keyframes folder and the truth folder.

    Raises:
        ShotfitError: the clip is missing or unreadable, or a keyframe is not in it.
    """
    footage(clip, what)
    keys, truths = set(keyframes), set(truth_frames)
    folders = {"keyframes": out / "keyframes", "truth": out / "truth"}
    with open_shot(clip) as video:
        missing = sorted((keys | truths) - set(video.frames))
        if missing:
            raise ShotfitError(f"{quoted(clip)} has no frame {missing[0]} (it holds 0-{video.frames[-1]})")
        for frame, pixels in video.iter_frames(sorted(keys | truths)):
            name = f"{clip.stem}.{frame:04d}.png"
            wanted = [folders[kind] / name for kind, frames in (("keyframes", keys), ("truth", truths))
                      if frame in frames]
            if all(path.is_file() for path in wanted):
                continue
            edited = apply_effect(effect, pixels)
            for path in wanted:
                write_image(path, edited, PNG8)
    return folders["keyframes"], folders["truth"]


def _checked(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"face effects take (H, W, 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
    return np.ascontiguousarray(rgb)
