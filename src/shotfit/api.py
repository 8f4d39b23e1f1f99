"""The Python API: train, render and evaluate. The CLI only parses arguments and calls these.

Each function builds the objects its config names (network, loss, augmentation) and hands them to the
engine; user errors surface as one-line :class:`~shotfit.errors.ShotfitError` subclasses.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shotfit.archs import build_network, resolve_network_args
from shotfit.config import Config, LossConfig, ModelConfig, RenderConfig, apply_overrides, load_config
from shotfit.data.augment import PairedAugment
from shotfit.data.keyframes import KeyframePair, keyframes_to_tensors, model_channels, pair_keyframes
from shotfit.engine.device import configure_threads, pick_device
from shotfit.engine.preview import SheetRow, save_contact_sheet
from shotfit.engine.run_folder import RunFolder, load_state, write_json
from shotfit.engine.trainer import StepReport, Trainer, TrainResult
from shotfit.errors import FrameError, RunError, quoted
from shotfit.evaluate import EvalReport, evaluate_frames
from shotfit.evaluate.metrics import psnr
from shotfit.files import ensure_writable_folder, refuse_inside
from shotfit.infer.predictor import Predictor, load_network
from shotfit.infer.render import FrameDone, RenderResult, render_shot
from shotfit.io import Shot, open_shot, parse_frame_range, to_network, transfer_for
from shotfit.losses import EmbeddingLoss, HybridLoss, load_embedding_network, load_lpips

log = logging.getLogger(__name__)

# With only --minutes, the loop runs until the budget; the plan is then set from measured speed.
UNBOUNDED_STEPS = 10**9


@dataclass(frozen=True)
class TrainSummary:
    run: Path
    result: TrainResult
    config: Config


def train(source: str | Path, keyframes: str | Path, out: str | Path, *, config: str | Path | None = None,
          overrides: Sequence[str] = (), steps: int | None = None, minutes: float | None = None,
          resume: bool = False, masks: str | Path | None = None, device: str | None = None,
          on_step: Callable[[StepReport], None] | None = None) -> TrainSummary:
    """Learn the edit shown by ``keyframes`` (edited frames of ``source``) into the run folder ``out``.

    Args:
        source: The shot: a folder of frames, a frame pattern or a video file.
        keyframes: A folder of edited frames, paired with source frames by frame number.
        out: The run folder (config, checkpoints, previews, metrics, final model).
        config: A YAML config; defaults otherwise (or, with ``resume``, the run's own config).
        overrides: ``section.key=value`` strings applied on top.
        steps: Train up to this step (overrides ``train.steps``).
        minutes: Stop cleanly after this many minutes.
        resume: Continue the run in ``out`` from its newest checkpoint.
        masks: Per-keyframe masks weighting the loss towards the painted region.
        device: Overrides ``train.device``.
        on_step: Called after every step (progress display).
    """
    run = RunFolder(out)
    cfg, start_state = _prepare_run(run, config, overrides, steps, resume)
    shot, keys = open_shot(source), open_shot(keyframes)
    mask_shot = open_shot(masks) if masks is not None else None
    for spec, what in ((source, "source"), (keyframes, "keyframes")):
        if (folder := _plates_folder(spec)) is not None:
            refuse_inside(out, folder, what)
    pairs = pair_keyframes(shot, keys, mask_shot)
    channels = model_channels(pairs[0].source.shape[2])
    transfer = transfer_for(shot.format)

    if start_state is not None and start_state["arch"] != cfg.model.arch:
        # before the run's saved options (depth=...) are checked against another architecture's
        _check_same_network(run, start_state, cfg.model)
    model_args = {"in_channels": channels, "out_channels": channels, **cfg.model.args}
    model = ModelConfig(cfg.model.arch, resolve_network_args(cfg.model.arch, model_args))
    cfg = dataclasses.replace(cfg, model=model)
    if start_state is not None:
        _check_same_network(run, start_state, model)

    torch_device = pick_device(device or cfg.train.device)
    configure_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    network = build_network(model.arch, **model.args)
    trainer = Trainer(
        network, {"arch": model.arch, "args": dict(model.args)}, build_loss(cfg.loss),
        PairedAugment(cfg.augment),
        keyframes_to_tensors(pairs, transfer, torch_device), run, cfg.train, cfg.data, torch_device,
        preview=_previewer(run, shot, pairs, transfer, cfg, torch_device),
    )
    if start_state is not None:
        trainer.restore(start_state)
        log.info("resuming %s from step %d", run.path, trainer.step)

    ensure_writable_folder(run.path)
    run.write_config(cfg)
    run.write_info({
        "source": str(source), "keyframes": str(keyframes), "masks": None if masks is None else str(masks),
        "keyframe_frames": [p.frame for p in pairs], "frame_size": list(pairs[0].source.shape[:2]),
        "channels": channels, "transfer": transfer, "format": dataclasses.asdict(shot.format),
    })
    # --minutes alone means "train for that long": the plan then comes from measured speed, and a
    # resumed run keeps the plan it made.
    max_steps = cfg.train.steps
    if minutes is not None and steps is None:
        max_steps = trainer.horizon if trainer.step else UNBOUNDED_STEPS
    result = trainer.fit(max_steps, None if minutes is None else minutes * 60.0,
                         plan_from_budget=max_steps == UNBOUNDED_STEPS, on_step=on_step)
    if result.stopped_by != "already done":
        run.write_metrics(trainer.metrics(result))
    return TrainSummary(run.path, result, cfg)


def render(run: str | Path, source: str | Path, out: str | Path, *, tile: int | None = None,
           tile_overlap: int | None = None, frames: str | Sequence[int] | None = None,
           device: str = "auto", on_frame: Callable[[FrameDone], None] | None = None) -> RenderResult:
    """Render ``source`` through the network of the run folder ``run`` into ``out``.

    Needs nothing but the run folder: the weights carry their architecture, and run.json says how
    frames were encoded for training. Frames already in ``out`` are skipped.
    """
    run_folder = RunFolder(run)
    cfg = run_folder.read_config()
    info = run_folder.read_info()
    render_cfg = RenderConfig(tile=tile or cfg.render.tile,
                              tile_overlap=cfg.render.tile_overlap if tile_overlap is None else tile_overlap,
                              blend=cfg.render.blend)
    shot = open_shot(source)
    if (folder := _plates_folder(source)) is not None:
        refuse_inside(out, folder)
    if transfer_for(shot.format) != info["transfer"]:
        raise FrameError(f"source {quoted(source)} holds {shot.format.dtype} frames but run "
                         f"{quoted(run)} was trained on {info['format']['dtype']} frames")
    if model_channels(shot.channels) != info["channels"]:
        raise FrameError(f"source {quoted(source)} has {shot.channels} channels but run {quoted(run)} "
                         f"was trained on {info['channels']}")
    wanted = parse_frame_range(frames) if isinstance(frames, str) else frames
    if wanted is not None and not any(frame in wanted for frame in shot.frames):
        raise FrameError(f"frames {frames if isinstance(frames, str) else list(wanted)!r} select no frame of "
                         f"{quoted(source)} (it holds frames {shot.frames[0]}-{shot.frames[-1]})")
    network, _ = load_network(run_folder)
    torch_device = pick_device(device)
    configure_threads(cfg.train.threads)
    predictor = Predictor(network, info["transfer"], torch_device, render_cfg.tile,
                          render_cfg.tile_overlap, render_cfg.blend)
    ensure_writable_folder(out)
    return render_shot(predictor, shot, Path(out), wanted, on_frame=on_frame)


def build_loss(cfg: LossConfig) -> HybridLoss:
    """The hybrid loss of the config, with a studio's embedding-network terms added."""
    extra = []
    for term in cfg.extra:
        if term.weight > 0:
            name = term.name or term.network.rpartition(":")[2]
            extra.append((name, EmbeddingLoss(load_embedding_network(term.network), term.distance), term.weight))
    return HybridLoss(l1=cfg.l1, lpips=cfg.lpips, laplacian=cfg.laplacian, ssim=cfg.ssim,
                      laplacian_levels=cfg.laplacian_levels, extra=extra)


def evaluate(pred: str | Path, truth: str | Path, *, source: str | Path | None = None,
             json_path: str | Path | None = None, held_out: Sequence[int] | None = None) -> EvalReport:
    """Score rendered frames against the truth: PSNR, SSIM, LPIPS per frame, and the warping error.

    Args:
        pred, truth: Shots (folders, patterns or videos), paired by frame number.
        source: The source shot; its optical flow drives the warping error (else the truth's).
        json_path: Also write every number as JSON there.
        held_out: Frames nobody fixed; their means are reported as the subset "held_out".
    """
    report = evaluate_frames(open_shot(pred), open_shot(truth),
                             None if source is None else open_shot(source), lpips_net=load_lpips())
    if json_path is not None:
        subsets = {"held_out": held_out} if held_out is not None else None
        write_json(Path(json_path), report.to_dict(subsets))
    return report


# --- helpers ------------------------------------------------------------------------------------

def _prepare_run(run: RunFolder, config: str | Path | None, overrides: Sequence[str], steps: int | None,
                 resume: bool) -> tuple[Config, dict[str, Any] | None]:
    """The config to train with, and the checkpoint to continue from (None for a fresh run)."""
    state = None
    if resume:
        base = load_config(config) if config else run.read_config()
        latest = run.latest_checkpoint()
        state = load_state(latest) if latest is not None else None
    else:
        if run.is_run():
            raise RunError(f"run folder {quoted(run.path)} already holds a run: add --resume to continue "
                           "it, or choose another --out")
        if run.path.is_dir() and any(run.path.iterdir()):
            raise RunError(f"--out {quoted(run.path)} is not empty and is not a shotfit run folder")
        base = load_config(config) if config else Config()
    cfg = apply_overrides(base, overrides) if overrides else base
    if steps is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))
    return cfg, state


def _check_same_network(run: RunFolder, state: dict[str, Any], model: ModelConfig) -> None:
    if state["arch"] != model.arch or dict(state["arch_args"]) != dict(model.args):
        raise RunError(f"run folder {quoted(run.path)} was made for a '{state['arch']}' network "
                       f"({_describe_args(state['arch_args'])}), not '{model.arch}' "
                       f"({_describe_args(model.args)})")


def _describe_args(args: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(dict(args).items()))


def _plates_folder(spec: str | Path) -> Path | None:
    """The folder that holds a sequence's files; None for a video file."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.is_file():
        return None
    return path.parent  # a frame pattern


def _previewer(run: RunFolder, shot: Shot, pairs: list[KeyframePair], transfer: str, cfg: Config,
               device: torch.device) -> Callable[[torch.nn.Module, str], dict[str, float]]:
    """A contact sheet of the keyframes and a few frames nobody fixed, in network space."""
    keyed = {p.frame for p in pairs}
    others = [f for f in shot.frames if f not in keyed]
    count = min(cfg.data.preview_frames, len(others))
    picks = [others[round(i * (len(others) - 1) / max(count - 1, 1))] for i in range(count)]
    unfixed = [(frame, shot.read(frame)) for frame in sorted(set(picks))]

    def preview(network: torch.nn.Module, name: str) -> dict[str, float]:
        predictor = Predictor(network, transfer, device, cfg.render.tile, cfg.render.tile_overlap,
                              cfg.render.blend)
        rows, scores = [], []
        for pair in pairs:
            source, prediction = predictor.network_space(pair.source)
            target = _network_image(pair.target[..., :source.shape[2]], transfer)
            scores.append(psnr(prediction, target))
            rows.append(SheetRow(f"keyframe {pair.frame}", source, prediction, target))
        for frame, pixels in unfixed:
            source, prediction = predictor.network_space(pixels)
            rows.append(SheetRow(f"frame {frame}", source, prediction))
        save_contact_sheet(rows, run.previews / f"{name}.png")
        return {"keyframe_psnr": float(np.mean(scores))}

    return preview


def _network_image(pixels: np.ndarray, transfer: str) -> np.ndarray:
    return to_network(pixels, transfer) * 0.5 + 0.5

