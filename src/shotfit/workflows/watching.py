"""What a training run shows while it learns: contact sheets and scores on held-out keyframes.

Both look at whole frames in eval mode through the same :class:`~shotfit.infer.predictor.Predictor`
that renders. Scores are taken in the working space (for scene-linear shots, the log-encoded view,
where a difference means the same in shadows and highlights); contact sheets show what a display
shows (OCIO's display and view, see :meth:`~shotfit.io.ColourPipeline.to_display`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from shotfit.config import Config
from shotfit.data.keyframes import KeyframePair
from shotfit.engine.preview import SheetRow, save_contact_sheet
from shotfit.evaluate.metrics import lpips, lpips_skipped, psnr, ssim
from shotfit.infer.predictor import Predictor
from shotfit.io import ColourPipeline, Shot
from shotfit.losses import load_lpips
from shotfit.runs.folder import RunFolder

log = logging.getLogger(__name__)

Preview = Callable[[torch.nn.Module, str], tuple[Path, dict[str, float]]]
Validate = Callable[[torch.nn.Module], dict[str, float]]


def make_previewer(run: RunFolder, shot: Shot, pairs: Sequence[KeyframePair], colour: ColourPipeline,
                   cfg: Config, device: torch.device) -> Preview:
    """Contact sheets of the training keyframes and a few frames nobody fixed.

    The frames nobody fixed are spread over the shot, as far from the keyframes as they can be.
    Returns ``preview(network, name) -> (sheet path, {"train/keyframe_psnr": dB})``.
    """
    unfixed = [(frame, shot.read(frame)) for frame in _far_from(shot.frames, [p.frame for p in pairs],
                                                                cfg.data.preview_frames)]

    def preview(network: torch.nn.Module, name: str) -> tuple[Path, dict[str, float]]:
        predictor = _predictor(network, colour, cfg, device)
        rows, scores = [], []
        for pair in pairs:
            source, prediction = predictor.network_space(pair.source)
            channels = source.shape[2]
            scores.append(psnr(prediction, network_image(pair.target, colour, channels)))
            rows.append(SheetRow(f"keyframe {pair.frame}", *_shown(colour, pair.source, prediction),
                                 colour.to_display(pair.target[..., :channels])))
        for frame, pixels in unfixed:
            _, prediction = predictor.network_space(pixels)
            rows.append(SheetRow(f"frame {frame}", *_shown(colour, pixels, prediction)))
        sheet = save_contact_sheet(rows, run.previews / f"{name}.png")
        return sheet, {"train/keyframe_psnr": float(np.mean(scores))}

    return preview


def make_validator(pairs: Sequence[KeyframePair], colour: ColourPipeline, cfg: Config,
                   device: torch.device) -> Validate:
    """Scores on keyframes held out of training: ``{"val/psnr", "val/ssim", "val/lpips"}`` (means).

    Keyframes too small for LPIPS get no ``val/lpips``, with a warning said once, when training starts.
    """
    skipped = lpips_skipped(pairs[0].source.shape)
    if skipped is not None:
        log.warning("val/lpips is left out: %s", skipped)
    perceptual = load_lpips().to(device) if skipped is None else None
    names = ("val/psnr", "val/ssim") + (("val/lpips",) if perceptual is not None else ())

    def validate(network: torch.nn.Module) -> dict[str, float]:
        predictor = _predictor(network, colour, cfg, device)
        scores: dict[str, list[float]] = {name: [] for name in names}
        for pair in pairs:
            _, prediction = predictor.network_space(pair.source)
            target = network_image(pair.target, colour, prediction.shape[2])
            scores["val/psnr"].append(psnr(prediction, target))
            scores["val/ssim"].append(ssim(prediction, target))
            if perceptual is not None:
                scores["val/lpips"].append(lpips(prediction, target, perceptual))
        return {name: float(np.mean(values)) for name, values in scores.items()}

    return validate


def network_image(pixels: np.ndarray, colour: ColourPipeline, channels: int) -> np.ndarray:
    """A frame as read, in the working space (network values mapped to [0, 1]), keeping its first ``channels``."""
    return colour.to_working(pixels[..., :channels])


def _shown(colour: ColourPipeline, pixels: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A frame and its prediction (working space, [0, 1]) as a display shows them."""
    channels = prediction.shape[2]
    return colour.to_display(pixels[..., :channels]), colour.to_display(colour.from_working(prediction))


def _predictor(network: torch.nn.Module, colour: ColourPipeline, cfg: Config, device: torch.device) -> Predictor:
    return Predictor(network, colour, device, cfg.render.tile, cfg.render.tile_overlap, cfg.render.blend)


def _far_from(frames: Sequence[int], keyframes: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` frames spread evenly over the shot, each moved to the frame of its stretch that
    lies farthest from every keyframe (what the network had to generalise to)."""
    others = [f for f in frames if f not in set(keyframes)]
    if not others or count <= 0:
        return []
    chunks = np.array_split(np.array(others), min(count, len(others)))
    return [int(max(chunk, key=lambda f: min(abs(f - k) for k in keyframes))) for chunk in chunks]
