"""Artists' masks: where a keyframe was painted (training) and where a render may change the plate.

A mask comes from a separate sequence (grey, or RGB(A) frames: see :func:`as_mask`) or from an alpha
channel: the keyframes' own alpha when training, the source's alpha when rendering. The keyword
``"alpha"`` names the second kind wherever a mask path is accepted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shotfit.errors import ConfigError, FrameError, quoted
from shotfit.io.sequence import Shot
from shotfit.io.shots import open_shot

ALPHA = "alpha"


def as_mask(pixels: np.ndarray) -> np.ndarray:
    """A frame read from a mask sequence -> (H, W, 1) float32 in [0, 1].

    Grey frames are the mask; RGBA frames give their alpha; RGB frames the mean of their channels
    (a white-on-black matte saved as RGB).
    """
    if pixels.shape[2] == 4:
        mask = pixels[..., 3:]
    elif pixels.shape[2] == 3:
        mask = pixels.mean(axis=2, keepdims=True)
    else:
        mask = pixels[..., :1]
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def open_masks(spec: str | Path | None) -> Shot | str | None:
    """What the user gave as a mask: None, :data:`ALPHA` (an alpha channel), or a mask sequence.

    Raises:
        ConfigError: ``alpha`` is also the name of a file or folder here (ambiguous).
        FrameError: the sequence cannot be opened (one line naming it).
    """
    if spec is None:
        return None
    if str(spec) == ALPHA:
        if Path(ALPHA).exists():
            raise ConfigError(f"mask {ALPHA!r} is ambiguous: it names the alpha channel, but {quoted(ALPHA)} "
                              f"is also a path here; write ./{ALPHA} for the path")
        return ALPHA
    return open_shot(spec)


def alpha_mask(pixels: np.ndarray, where: str) -> np.ndarray:
    """The alpha channel of an RGBA frame as a mask; FrameError naming ``where`` if it has none."""
    if pixels.shape[2] != 4:
        raise FrameError(f"{quoted(where)} has no alpha channel to use as the mask "
                         f"({pixels.shape[2]} channels); give a mask sequence instead")
    return np.clip(pixels[..., 3:], 0.0, 1.0).astype(np.float32)


def read_mask(masks: Shot, frame: int, size: tuple[int, int], owner: str) -> np.ndarray:
    """Frame ``frame`` of a mask sequence as (H, W, 1), checked against ``size`` (H, W) of ``owner``.

    ``owner`` says in messages whose mask it is: ``"keyframe 'kf/0004.png'"``.

    Raises:
        FrameError: no such frame in the sequence, or a mask of another size (naming both files).
    """
    if frame not in masks:
        raise FrameError(f"{owner} has no mask {frame} in {quoted(masks.path)}")
    pixels = masks.read(frame)
    if pixels.shape[:2] != size:
        raise FrameError(f"mask {quoted(masks.describe(frame))} is {pixels.shape[1]}x{pixels.shape[0]} but "
                         f"{owner} is {size[1]}x{size[0]}")
    return as_mask(pixels)


def unpremultiply(pixels: np.ndarray) -> np.ndarray:
    """RGB divided by alpha where alpha > 0 (EXR colour is premultiplied by convention); alpha kept."""
    alpha = pixels[..., 3:]
    colour = np.divide(pixels[..., :3], alpha, out=pixels[..., :3].copy(), where=alpha > 0)
    return np.concatenate([colour, alpha], axis=2)


def composite_outside(result: np.ndarray, source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The result inside the mask, the untouched source outside it, blended by the mask's value.

    Colour channels only: an alpha channel in ``result`` (the source's, passed through) is kept.
    Shape: result and source (H, W, C), mask (H, W, 1) in [0, 1].
    """
    channels = 3 if result.shape[2] >= 3 else 1
    out = result.copy()
    out[..., :channels] = mask * result[..., :channels] + (1.0 - mask) * source[..., :channels]
    return out
