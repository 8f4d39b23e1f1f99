"""Per-frame image metrics: PSNR (over the frame and inside the edited region), SSIM, LPIPS and high-frequency
error between a prediction and its truth.

Frames are numpy float arrays (H, W, C) or (H, W), display-referred in [0, 1], C = 1 or 3; scene-linear
frames are brought into a log working space (OCIO) before they get here. Values are not clipped for PSNR and SSIM, so a
prediction that overshoots is scored as it is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import pyrdown, pyrup
from kornia.metrics import ssim as kornia_ssim

from shotfit.data.focus import EDIT_GROW, EDIT_THRESHOLD  # what training's edit focus calls edited
from shotfit.losses.lpips import MIN_SIZE as LPIPS_MIN_SIZE
from shotfit.losses.lpips import load_lpips

if TYPE_CHECKING:
    from torch import nn

SSIM_WINDOW = 11  # Gaussian window of Wang et al. 2004: 11 taps, sigma 1.5 (kornia fixes sigma at 1.5)


def psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB for a data range of 1.0.

    Args:
        pred, truth: (H, W) or (H, W, C) float frames in [0, 1], same shape.

    Returns:
        ``10 log10(1 / MSE)`` over all pixels and channels; ``inf`` when the frames are identical.

    Example:
        >>> psnr(np.zeros((4, 4, 3)), np.full((4, 4, 3), 0.1))  # MSE 0.01
        20.0
    """
    _check_pair(pred, truth)
    mse = float(np.mean((pred.astype(np.float64) - truth.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def edited_region(truth: np.ndarray, plate: np.ndarray, threshold: float = EDIT_THRESHOLD,
                  grow: int = EDIT_GROW) -> np.ndarray:
    """Where the edit changed the plate: a (H, W) bool mask of pixels whose truth differs from the
    plate by more than ``threshold`` in any channel, dilated by ``grow`` pixels.

    A paint-out (a marker, a wire, a blemish removed) covers a few percent of the frame; a score over
    the whole frame hides a smudge there, which is the first thing an artist sees at 1:1.
    """
    if truth.shape[:2] != plate.shape[:2]:
        raise ValueError(f"truth {truth.shape} and plate {plate.shape} differ in size")
    a = truth[..., None] if truth.ndim == 2 else truth
    b = plate[..., None] if plate.ndim == 2 else plate
    channels = min(a.shape[-1], b.shape[-1])
    changed = np.abs(a[..., :channels].astype(np.float32) - b[..., :channels].astype(np.float32)).max(axis=-1)
    mask = (changed > threshold).astype(np.uint8)
    if grow > 0 and mask.any():
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return mask.astype(bool)


def psnr_in(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float | None:
    """PSNR in dB over the pixels of ``mask`` only ((H, W) bool); None when the mask is empty."""
    _check_pair(pred, truth)
    if not mask.any():
        return None
    diff = pred[mask].astype(np.float64) - truth[mask].astype(np.float64)
    mse = float(np.mean(diff ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) over all pixels and channels.

    Gaussian window of 11 taps with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1.0, population
    (not sample) covariances, and only the "valid" window positions: the SSIM map loses 5 pixels on each
    side before its mean. This equals scikit-image's
    ``structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    data_range=1.0, channel_axis=-1)``, the settings that reproduce the paper.

    Args:
        pred, truth: (H, W) or (H, W, C) float frames in [0, 1], same shape, H and W at least 11.

    Returns:
        SSIM in [-1, 1]; 1.0 for identical frames.
    """
    _check_pair(pred, truth)
    if min(pred.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs frames of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {pred.shape}")
    # float64: SSIM of near-identical frames is a difference of nearly equal moments.
    with torch.no_grad():
        score = kornia_ssim(_to_nchw(pred, torch.float64), _to_nchw(truth, torch.float64),
                            SSIM_WINDOW, max_val=1.0, eps=0.0, padding="valid")
    return float(score.mean())


def lpips(pred: np.ndarray, truth: np.ndarray, net: nn.Module | None = None) -> float:
    """Learned perceptual distance between two frames (lower is closer).

    Args:
        pred, truth: (H, W) or (H, W, C) float frames in [0, 1], same shape, C = 1 or 3 (grey is repeated
            to RGB). Values are clipped to [0, 1] first, since the network only accepts its stated range.
        net: an LPIPS module from :mod:`shotfit.losses.lpips` (``forward(a, b) -> (B,)``); its
            ``input_range`` attribute, default (-1, 1), says how frames are scaled. ``None`` loads the
            shared one with ``load_lpips()``.

    Returns:
        The distance, >= 0; 0 for identical frames.
    """
    _check_pair(pred, truth)
    if net is None:
        net = load_lpips()
    parameter = next(net.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    low, high = getattr(net, "input_range", (-1.0, 1.0))
    tensors = []
    for frame in (pred, truth):
        image = _to_nchw(np.clip(frame, 0.0, 1.0), torch.float32)
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        tensors.append((low + image * (high - low)).to(device))
    with torch.no_grad():
        distance = net(tensors[0], tensors[1])
    return float(distance.reshape(-1)[0])


def lpips_skipped(shape: tuple[int, ...]) -> str | None:
    """Why frames of ``shape`` (H, W, ...) get no LPIPS score, in words; None when they can be scored.

    LPIPS's trunk needs :data:`~shotfit.losses.lpips.MIN_SIZE` pixels a side. Scores of smaller frames
    are left out (None) with this note rather than failing the whole evaluation or validation.
    """
    height, width = shape[:2]
    if min(height, width) >= LPIPS_MIN_SIZE:
        return None
    return f"the frames are {width}x{height}, smaller than the {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels LPIPS needs"


def high_frequency_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Energy of the error in the finest Laplacian band, relative to the truth's energy there.

    The finest band (the image minus its blurred-and-resampled self, Burt & Adelson's level 0 with
    kornia's 5x5 binomial filter) holds the detail one or two pixels wide: grain, edges, and the
    ringing and invented texture a network adds when it over-fits a few keyframes. The score is
    ``sum((band(pred) - band(truth))**2) / sum(band(truth)**2)``: 0 when the detail matches, 1 when
    the prediction's detail is as far off as the detail itself (a blurred prediction scores about 1;
    a prediction with extra texture of its own scores above 1).

    Args:
        pred, truth: (H, W) or (H, W, C) float frames in [0, 1], same shape, H and W at least 2.

    Returns:
        The relative error energy, >= 0 (``inf`` if the truth has no detail at all and the prediction has).

    Example:
        >>> flat = np.full((16, 16), 0.5); textured = flat + 0.1 * (np.indices((16, 16)).sum(0) % 2)
        >>> high_frequency_error(textured, textured), round(high_frequency_error(flat, textured), 3)
        (0.0, 1.0)
    """
    _check_pair(pred, truth)
    if min(pred.shape[:2]) < 2:
        raise ValueError(f"high_frequency_error needs frames of at least 2x2 pixels, got {pred.shape}")
    bands = [_finest_band(_to_nchw(frame, torch.float64)) for frame in (pred, truth)]
    error = float(((bands[0] - bands[1]) ** 2).sum())
    energy = float((bands[1] ** 2).sum())
    if energy == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / energy


def _finest_band(image: torch.Tensor) -> torch.Tensor:
    """Level 0 of the Laplacian pyramid of (1, C, H, W), any H and W (odd sides are padded by reflection)."""
    height, width = image.shape[-2:]
    padded = F.pad(image, (0, width % 2, 0, height % 2), mode="replicate")
    with torch.no_grad():
        band = padded - pyrup(pyrdown(padded))
    return band[..., :height, :width]


def _check_pair(pred: np.ndarray, truth: np.ndarray) -> None:
    """Shapes and types the metrics accept; errors print what was received."""
    for name, frame in (("pred", pred), ("truth", truth)):
        if not isinstance(frame, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(frame).__name__}")
        if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3)):
            raise ValueError(f"{name} must be (H, W) or (H, W, C) with C = 1 or 3, got {frame.shape}")
    if pred.shape != truth.shape:
        raise ValueError(f"pred and truth differ in shape: {pred.shape} and {truth.shape}")


def _to_nchw(frame: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """(H, W) or (H, W, C) array -> (1, C, H, W) tensor of ``dtype``."""
    image = frame if frame.ndim == 3 else frame[..., None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(dtype).unsqueeze(0)
