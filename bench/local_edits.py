"""Local edits on real footage, with a truth on every frame: the paint-outs and the hard stylisation that
frame averages hide.

- ``face-markers``: tracking markers on the talking-head clip, carried frame to frame along the clip's own
  optical flow (so they stick to the skin as real markers do); the artist paints them out, and the clean
  clip is the truth. The region that matters is a few percent of the frame.
- ``bedroom-wire``: a rig wire across the bedroom clip (two children jumping on a bed: fast motion and
  occlusion), swaying a little from frame to frame, painted out; the clean clip is the truth.
- ``bedroom-cartoon``: a posterised cartoon with ink lines (flat colour bands from a bilateral smoothing
  and lightness in 5 bands, black lines on the strong edges) on the same fast clip: the flat bands, not
  only the lines, must be learnt.

Each writes the plate (``source``), the edited keyframes and the truth of every frame as 8-bit PNGs under
its own folder of the benchmark (the third-party clips are read where they lie, never copied into the
repository); frames already written are kept. Every function is deterministic: the same bytes every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from bench.presets import footage
from shotfit.errors import ShotfitError
from shotfit.io import PixelFormat, open_shot, write_image

PNG8 = PixelFormat(".png", "uint8", 3)

MARKERS = 14
MARKER_RADIUS = 3.5
MARKER_RGB = (22, 26, 30)  # near-black dots, as on a face-capture actor
WIRE_RGB = (38, 38, 42)
WIRE_WIDTH = 2
CARTOON_LEVELS = 5
SUBPIXEL = 4  # OpenCV drawing at 1/16 pixel for smooth, anti-aliased shapes


@dataclass(frozen=True)
class LocalEdit:
    """A clip in the shared footage, its keyframes, and what is drawn on it or done to it."""

    clip: str  # under the shared data folder: a video file or a folder of frames
    keyframes: tuple[int, ...]
    kind: str  # "markers", "wire" or "cartoon"


LOCAL_EDITS = {
    "face-markers": LocalEdit("tpsmm_driving_face/assets/driving.mp4", (0, 56, 112, 168), "markers"),
    "bedroom-wire": LocalEdit("sam2_bedroom/notebooks/videos/bedroom", (0, 50, 100, 150, 199), "wire"),
    "bedroom-cartoon": LocalEdit("sam2_bedroom/notebooks/videos/bedroom", (0, 50, 100, 150, 199), "cartoon"),
}


def cartoon(rgb: np.ndarray) -> np.ndarray:
    """Posterised cartoon with ink lines: (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB."""
    flat = cv2.cvtColor(cv2.bilateralFilter(cv2.bilateralFilter(rgb, 9, 60, 9), 9, 60, 9), cv2.COLOR_RGB2LAB)
    step = 256 // CARTOON_LEVELS
    flat[..., 0] = np.minimum((flat[..., 0] // step) * step + step // 2, 255)  # bands of lightness, colour kept
    bands = cv2.cvtColor(flat, cv2.COLOR_LAB2RGB)
    grey = cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 5)
    ink = cv2.dilate(cv2.Canny(grey, 60, 140), np.ones((2, 2), np.uint8)) > 0
    bands[ink] = (18, 16, 20)
    return bands


def marker_tracks(frames: list[np.ndarray], count: int = MARKERS, seed: int = 0) -> np.ndarray:
    """Positions (frames, count, 2) of markers placed on a jittered grid over the middle of the first frame
    and carried along DIS optical flow from each frame to the next."""
    height, width = frames[0].shape[:2]
    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    grid = [((0.3 + 0.4 * (c + 0.5) / cols) * width, (0.28 + 0.5 * (r + 0.5) / rows) * height)
            for r in range(rows) for c in range(cols)][:count]
    points = np.array(grid, np.float32) + rng.uniform(-0.03, 0.03, (count, 2)).astype(np.float32) * (width, height)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    tracks = [points]
    greys = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    for previous, current in zip(greys, greys[1:]):
        motion = flow.calc(previous, current, None)
        x = np.clip(np.rint(points[:, 0]).astype(int), 0, width - 1)
        y = np.clip(np.rint(points[:, 1]).astype(int), 0, height - 1)
        points = points + motion[y, x]
        tracks.append(points)
    return np.stack(tracks)


def draw_markers(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Dots of :data:`MARKER_RADIUS` pixels at ``points`` ((count, 2) x, y), anti-aliased."""
    out = rgb.copy()
    scale = 1 << SUBPIXEL
    for x, y in points:
        cv2.circle(out, (round(x * scale), round(y * scale)), round(MARKER_RADIUS * scale), MARKER_RGB, -1,
                   cv2.LINE_AA, SUBPIXEL)
    return out


def draw_wire(rgb: np.ndarray, frame_index: int) -> np.ndarray:
    """A sagging wire from the left edge to the right one, swaying slowly with the frame index."""
    height, width = rgb.shape[:2]
    x = np.linspace(-2, width + 1, 64)
    sway = 0.04 * height * np.sin(frame_index * 0.13)
    y = 0.3 * height + sway + 0.12 * height * ((x / width - 0.55) ** 2 - 0.2) + 0.02 * x
    scale = 1 << SUBPIXEL
    points = np.rint(np.stack([x, y], axis=-1) * scale).astype(np.int32)
    out = rgb.copy()
    cv2.polylines(out, [points], False, WIRE_RGB, WIRE_WIDTH, cv2.LINE_AA, SUBPIXEL)
    return out


def write_local_edit_shot(name: str, shared_data: Path, out: Path) -> tuple[Path, Path, Path, tuple[int, ...]]:
    """Write the task ``name``'s plate, keyframes and truth under ``out``.

    Returns:
        The source, keyframes and truth folders, and the keyframe numbers.

    Raises:
        ShotfitError: unknown task, or the clip is not in the shared data.
    """
    if name not in LOCAL_EDITS:
        raise ShotfitError(f"unknown local-edit task {name!r} (known: {', '.join(LOCAL_EDITS)})")
    edit = LOCAL_EDITS[name]
    clip = footage(shared_data / edit.clip, folder=True)
    folders = {kind: out / kind for kind in ("source", "keyframes", "truth")}
    numbers, clean = _read_clip(clip)
    write_edit(edit.kind, numbers, clean, edit.keyframes, folders, stem=clip.stem if clip.is_file() else name)
    return folders["source"], folders["keyframes"], folders["truth"], edit.keyframes


def write_edit(kind: str, numbers: list[int], clean: list[np.ndarray], keyframes: tuple[int, ...],
               folders: dict[str, Path], stem: str) -> None:
    """The plate, keyframes and truth of an edit ``kind`` of the clean frames ``clean`` (uint8 RGB)."""
    plate_of, truth_of = _edit(kind, clean)
    for index, frame in enumerate(numbers):
        name = f"{stem}.{frame:04d}.png"
        wanted = {"source": plate_of, "truth": truth_of, **({"keyframes": truth_of} if frame in keyframes else {})}
        for kind_, make in wanted.items():
            path = folders[kind_] / name
            if not path.is_file():
                write_image(path, make(index).astype(np.float32) / 255.0, PNG8)


def _edit(kind: str, clean: list[np.ndarray]) -> tuple[Callable[[int], np.ndarray], Callable[[int], np.ndarray]]:
    """(plate of frame i, truth of frame i) for an edit kind."""
    if kind == "markers":
        tracks = marker_tracks(clean)
        return (lambda i: draw_markers(clean[i], tracks[i])), (lambda i: clean[i])
    if kind == "wire":
        return (lambda i: draw_wire(clean[i], i)), (lambda i: clean[i])
    if kind == "cartoon":
        return (lambda i: clean[i]), (lambda i: cartoon(clean[i]))
    raise ShotfitError(f"unknown local edit {kind!r}")


def _read_clip(clip: Path) -> tuple[list[int], list[np.ndarray]]:
    """The clip's frame numbers and frames as uint8 RGB."""
    numbers, frames = [], []
    with open_shot(clip) as shot:
        for frame, pixels in _frames(shot):
            numbers.append(frame)
            frames.append(np.clip(np.rint(pixels[..., :3] * 255.0), 0, 255).astype(np.uint8))
    return numbers, frames


def _frames(shot) -> Iterator[tuple[int, np.ndarray]]:
    yield from shot.iter_frames(shot.frames)
