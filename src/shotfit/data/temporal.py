"""Consecutive frames of the shot for the temporal loss term: the plates, the flow between them, and
patches drawn from them.

The frames nobody painted have no target, but they do have motion: the temporal term
(:mod:`shotfit.losses.temporal`) asks the network's output on frame t to match its output on frame
t+1 pulled back along the source's optical flow. A bounded number of pairs, spread over the shot, is
held in memory as network tensors beside its flow and visibility mask.

The flow is measured once per shot and kept in the run folder (``RUN/flow/<t>-<t+1>.npz``, written
atomically), keyed by the two plates' pixels and the flow settings: a resumed run reads it back (so it
trains on exactly the flow it started with), and a changed plate is measured again.
"""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from shotfit.data.flow import FlowPair, flow_between
from shotfit.data.keyframes import model_channels
from shotfit.errors import ConfigError, quoted
from shotfit.files import atomic_path
from shotfit.io import Shot

if TYPE_CHECKING:
    from shotfit.io import ColourPipeline

log = logging.getLogger(__name__)

# Part of every cache key: raise it when flow_between's results change, so cached flows are measured again.
FLOW_VERSION = 1
FLOW_PRESET, OCCLUSION = "medium", "lai"  # the warping error's own settings (shotfit.evaluate.warping)


@dataclass(frozen=True)
class FramePairs:
    """Consecutive source frames as network tensors, with the source's flow between them.

    Shape:
        sources, next_sources: (P, C, H, W) in [-1, 1], frames t and t+1 of each pair.
        flows: (P, 2, H, W) float32 pixels, (dx, dy) from frame t to frame t+1.
        visible: (P, 1, H, W) float32 in {0, 1}: where the flow can be trusted (:func:`~shotfit.data.flow.
            visibility_mask`).
    """

    frames: tuple[tuple[int, int], ...]
    sources: Tensor
    next_sources: Tensor
    flows: Tensor
    visible: Tensor


@dataclass(frozen=True)
class PairPatches:
    """One step's patches of frame pairs: the same window of frames t and t+1, and the flow inside it.

    Shape:
        sources, next_sources: (B, C, h, w) in [-1, 1]; flows: (B, 2, h, w) pixels; visible:
        (B, 1, h, w) in {0, 1}, 0 also where the flow leaves the window.
    """

    sources: Tensor
    next_sources: Tensor
    flows: Tensor
    visible: Tensor


def spread_pairs(frames: Sequence[int], count: int) -> list[tuple[int, int]]:
    """Up to ``count`` pairs of consecutive frames, evenly spread over the shot.

    Consecutive means neighbours one step of the shot's own numbering apart (a shot kept on every other
    frame steps by 2); neighbours across a gap in the numbering are no pair.
    """
    frames = sorted(frames)
    if len(frames) < 2 or count < 1:
        return []
    step = min(b - a for a, b in zip(frames, frames[1:]))
    pairs = [(a, b) for a, b in zip(frames, frames[1:]) if b - a == step]
    if count >= len(pairs):
        return pairs
    if count == 1:
        return [pairs[len(pairs) // 2]]
    return [pairs[round(i * (len(pairs) - 1) / (count - 1))] for i in range(count)]


def load_frame_pairs(shot: Shot, count: int, colour: ColourPipeline, device: torch.device,
                     cache: Path | None = None) -> FramePairs:
    """Read ``count`` pairs of consecutive frames spread over ``shot`` with their flow, as network tensors.

    Args:
        shot: the plates (already limited to the frames trained on).
        count: how many pairs (``data.temporal_pairs``); fewer when the shot has fewer.
        colour: the run's colour pipeline (plates to network values, as the keyframes).
        device: where the tensors go.
        cache: the folder that keeps the flows (the run's ``flow/``); None measures them every time.

    Raises:
        ConfigError: the shot has no two consecutive frames.
    """
    chosen = spread_pairs(shot.frames, count)
    if not chosen:
        raise ConfigError(f"loss.temporal needs two consecutive frames of the source, but {shot.label} has "
                          f"{len(shot.frames)}; set loss.temporal to 0")
    needed = sorted({frame for pair in chosen for frame in pair})
    pixels = dict(shot.iter_frames(needed))
    channels = model_channels(pixels[needed[0]].shape[2])
    flows = [cached_flow(cache, a, b, pixels[a], pixels[b]) for a, b in chosen]

    def stack(frames: list[int]) -> Tensor:
        batch = colour.to_network(np.stack([pixels[f][..., :channels] for f in frames]))
        return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)).to(device)

    forward = np.stack([flow.forward for flow in flows]).transpose(0, 3, 1, 2)
    visible = np.stack([flow.visible for flow in flows])[:, None].astype(np.float32)
    coverage = float(visible.mean())
    log.info("temporal term: %d frame pairs of %s, flow visible on %.0f%% of their pixels", len(chosen),
             shot.label, 100 * coverage)
    return FramePairs(tuple(chosen), stack([a for a, _ in chosen]), stack([b for _, b in chosen]),
                      torch.from_numpy(np.ascontiguousarray(forward)).to(device),
                      torch.from_numpy(visible).to(device))


def cached_flow(cache: Path | None, frame: int, next_frame: int, pixels: np.ndarray, next_pixels: np.ndarray
                ) -> FlowPair:
    """The flow from ``frame`` to ``next_frame``: read from ``cache`` when it was measured on these very
    pixels with these settings, else measured and written there (atomically)."""
    if cache is None:
        return flow_between(pixels, next_pixels, preset=FLOW_PRESET, occlusion=OCCLUSION)
    path = flow_cache_path(cache, frame, next_frame)
    key = flow_key(pixels, next_pixels)
    cached = _read_flow(path, key, pixels.shape[:2])
    if cached is not None:
        return cached
    flow = flow_between(pixels, next_pixels, preset=FLOW_PRESET, occlusion=OCCLUSION)
    with atomic_path(path) as temp, temp.open("wb") as file:
        np.savez(file, key=np.array(key), forward=flow.forward, visible=flow.visible)
    return flow


def flow_cache_path(cache: Path, frame: int, next_frame: int) -> Path:
    return cache / f"{frame}-{next_frame}.npz"


def flow_key(pixels: np.ndarray, next_pixels: np.ndarray) -> str:
    """What a cached flow was measured from: both plates' pixels, and the flow's version and settings."""
    digest = hashlib.sha256(f"shotfit flow {FLOW_VERSION} {FLOW_PRESET} {OCCLUSION}".encode())
    for image in (pixels, next_pixels):
        digest.update(f"{image.shape} {image.dtype}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def _read_flow(path: Path, key: str, shape: tuple[int, ...]) -> FlowPair | None:
    """The flow cached at ``path`` if it was measured for ``key``; None (measure again) otherwise."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                log.info("%s was measured on other plates: measuring the flow again", quoted(path))
                return None
            forward, visible = data["forward"], data["visible"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        log.warning("cannot read the cached flow %s: measuring it again", quoted(path))
        return None
    if forward.shape != (*shape, 2) or visible.shape != shape or forward.dtype != np.float32 or visible.dtype != bool:
        return None
    return FlowPair(forward=forward, visible=visible)


def sample_pair_patches(pairs: FramePairs, patch_h: int, patch_w: int, batch_size: int,
                        generator: torch.Generator) -> PairPatches:
    """Draw ``batch_size`` windows of ``patch_h`` x ``patch_w``, each from one frame pair, uniformly.

    The window is the same in frames t and t+1 and the flow is cut to it; a pixel whose flow points
    outside the window has nothing to be compared with there, so it leaves the mask. No augmentation:
    these are the very frames the network will render.
    """
    count, _, height, width = pairs.sources.shape
    patch_h, patch_w = min(patch_h, height), min(patch_w, width)
    device = generator.device
    index = torch.randint(count, (batch_size,), generator=generator, device=device).tolist()
    tops = torch.randint(height - patch_h + 1, (batch_size,), generator=generator, device=device).tolist()
    lefts = torch.randint(width - patch_w + 1, (batch_size,), generator=generator, device=device).tolist()
    windows = [(k, slice(y, y + patch_h), slice(x, x + patch_w)) for k, y, x in zip(index, tops, lefts)]

    def cut(frames: Tensor) -> Tensor:
        return torch.stack([frames[k, :, rows, cols] for k, rows, cols in windows])

    flows = cut(pairs.flows)
    rows = torch.arange(patch_h, device=flows.device, dtype=flows.dtype).view(1, patch_h, 1)
    cols = torch.arange(patch_w, device=flows.device, dtype=flows.dtype).view(1, 1, patch_w)
    x, y = cols + flows[:, 0], rows + flows[:, 1]
    inside = (x >= 0) & (x <= patch_w - 1) & (y >= 0) & (y <= patch_h - 1)
    visible = cut(pairs.visible) * inside.unsqueeze(1).to(flows.dtype)
    return PairPatches(cut(pairs.sources), cut(pairs.next_sources), flows, visible)
