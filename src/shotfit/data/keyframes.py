"""Keyframe pairs: each edited frame beside the source frame of the same number (and its mask).

Everything a user can get wrong about the pairing is checked here, before any training starts:
a keyframe with no source frame, a size or channel-count mismatch, a keyframe in another kind of
data than the source (float EXR against 8-bit PNG), a mask without a keyframe or of the wrong size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from shotfit.errors import FrameError, quoted
from shotfit.io import FrameExtras, Shot, Window
from shotfit.io.masks import ALPHA, alpha_mask, read_mask, unpremultiply

if TYPE_CHECKING:
    from shotfit.io import ColourPipeline


@dataclass(frozen=True)
class KeyframePair:
    """One fixed frame. Images are float32 (H, W, C) as read; the mask is (H, W, 1) in [0, 1]."""

    frame: int
    source: np.ndarray
    target: np.ndarray
    mask: np.ndarray | None = None


@dataclass(frozen=True)
class Keyframes:
    """Keyframe pairs as network tensors on the training device.

    Shape:
        sources, targets: (N, C, H, W) in [-1, 1]; masks: (N, 1, H, W) in [0, 1] or None.
    """

    frames: tuple[int, ...]
    sources: torch.Tensor
    targets: torch.Tensor
    masks: torch.Tensor | None = None


def model_channels(channels: int) -> int:
    """Channels the network sees: RGB for RGB and RGBA frames (alpha passes through), else grey."""
    return 3 if channels >= 3 else 1


def pair_keyframes(shot: Shot, keyframes: Shot, masks: Shot | str | None = None) -> list[KeyframePair]:
    """Read and check every keyframe with its source frame (and mask).

    Args:
        masks: A mask sequence (one mask per keyframe), ``"alpha"`` (each keyframe's own alpha is its
            mask; float keyframes are premultiplied by convention, so their colour is divided by it),
            or None.

    Raises:
        FrameError: one line naming the file for every pairing problem.
    """
    if keyframes.format.is_float != shot.format.is_float:
        kind = {True: "float (scene-linear)", False: "integer (display)"}
        raise FrameError(f"keyframes in {quoted(keyframes.path)} are {kind[keyframes.format.is_float]} "
                         f"data but the source {quoted(shot.path)} is {kind[shot.format.is_float]}: "
                         "export the keyframes in the source's format")
    if isinstance(masks, Shot):
        for frame in masks.frames:
            if frame not in keyframes:
                raise FrameError(f"mask {quoted(masks.describe(frame))} has no keyframe {frame} "
                                 f"in {quoted(keyframes.path)}")
    pairs = []
    for frame in keyframes.frames:
        key_name = quoted(keyframes.describe(frame))
        if frame not in shot:
            raise FrameError(f"keyframe {key_name} has no source frame {frame} in {quoted(shot.path)}")
        target, target_extras = keyframes.read_with_extras(frame)
        source, source_extras = shot.read_with_extras(frame)
        src_name = quoted(shot.describe(frame))
        # EXRs pair by their windows: same overscan, same format (the pixels are the data window)
        both_exr = target_extras.data_window is not None and source_extras.data_window is not None
        if both_exr and _windows(target_extras) != _windows(source_extras):
            raise FrameError(f"keyframe {key_name} has {target_extras.windows()} but source frame {src_name} "
                             f"has {source_extras.windows()}")
        if target.shape[:2] != source.shape[:2]:
            raise FrameError(f"keyframe {key_name} is {_size(target)} but source frame {src_name} "
                             f"is {_size(source)}")
        if model_channels(target.shape[2]) != model_channels(source.shape[2]):
            raise FrameError(f"keyframe {key_name} has {target.shape[2]} channels but source frame "
                             f"{src_name} has {source.shape[2]}")
        mask = None
        if masks == ALPHA:
            mask = alpha_mask(target, keyframes.describe(frame))
            if keyframes.format.is_float:
                target = unpremultiply(target)
        elif isinstance(masks, Shot):
            mask = read_mask(masks, frame, target.shape[:2], f"keyframe {key_name}")
        pairs.append(KeyframePair(frame, source, target, mask))
    if not pairs:
        raise FrameError(f"no keyframes in {quoted(keyframes.path)}")
    return pairs


def keyframes_to_tensors(pairs: list[KeyframePair], colour: ColourPipeline, device: torch.device) -> Keyframes:
    """Stack the pairs in network space ([-1, 1], NCHW) on ``device``; alpha is dropped.

    Sources and keyframes are both converted from the source space by ``colour`` (on numpy, first).
    """
    channels = model_channels(pairs[0].source.shape[2])

    def stack(images: list[np.ndarray]) -> torch.Tensor:
        batch = colour.to_network(np.stack([image[..., :channels] for image in images]))
        return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2))).to(device)

    masks = None
    if pairs[0].mask is not None:
        masks = torch.from_numpy(np.stack([p.mask for p in pairs]).transpose(0, 3, 1, 2).copy()).to(device)
    return Keyframes(tuple(p.frame for p in pairs), stack([p.source for p in pairs]),
                     stack([p.target for p in pairs]), masks)


def _windows(extras: FrameExtras) -> tuple[Window | None, Window | None]:
    return extras.data_window, extras.display_window


def _size(image: np.ndarray) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"
