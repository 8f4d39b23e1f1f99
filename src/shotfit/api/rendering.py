"""Rendering a shot through a trained run, and scoring renders against the truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shotfit.config import RenderConfig
from shotfit.engine.run_folder import RunFolder, write_json
from shotfit.errors import ConfigError, FrameError, ShotfitError, quoted
from shotfit.files import ensure_writable_folder, plates_folder, refuse_inside
from shotfit.infer.render import FrameDone, RenderResult, render_shot
from shotfit.io import open_shot, parse_frame_range, transfer_for

if TYPE_CHECKING:
    from shotfit.evaluate import EvalReport

# PyTorch is imported inside the functions that need it: --engine onnxruntime renders without it.
ENGINES = ("torch", "onnxruntime")


def render(run: str | Path | None, source: str | Path, out: str | Path, *, tile: int | None = None,
           tile_overlap: int | None = None, frames: str | Sequence[int] | None = None,
           device: str = "auto", on_frame: Callable[[FrameDone], None] | None = None,
           engine: str = "torch", model: str | Path | None = None) -> RenderResult:
    """Render ``source`` through the network of the run folder ``run`` into ``out``.

    Needs nothing but the run folder: the weights carry their architecture, and run.json says how
    frames were encoded for training. Frames already in ``out`` are skipped.

    ``engine="onnxruntime"`` renders through an ONNX file made by ``shotfit export`` instead
    (``model``, default ``RUN/model.onnx``; then ``run`` may be None), without importing PyTorch;
    see :func:`shotfit.api.onnx_rendering.render_onnx`.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown render engine {engine!r} (known: {', '.join(ENGINES)})")
    if engine == "onnxruntime":
        from shotfit.api.onnx_rendering import render_onnx

        return render_onnx(run, source, out, model=model, tile=tile, tile_overlap=tile_overlap, frames=frames,
                           on_frame=on_frame)
    if run is None or model is not None:
        raise ConfigError("the torch engine renders a run folder (--run); an exported --model needs "
                          "--engine onnxruntime")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ShotfitError("the torch engine needs PyTorch, which is not installed here: render a file made by "
                           "'shotfit export --format onnx' with --engine onnxruntime") from None
    from shotfit.data.keyframes import model_channels
    from shotfit.engine.device import configure_threads, pick_device
    from shotfit.infer.predictor import Predictor, load_network

    run_folder = RunFolder(run)
    cfg = run_folder.read_config()
    info = run_folder.read_info()
    render_cfg = RenderConfig(tile=tile or cfg.render.tile,
                              tile_overlap=cfg.render.tile_overlap if tile_overlap is None else tile_overlap,
                              blend=cfg.render.blend)
    shot = open_shot(source)
    if (folder := plates_folder(source)) is not None:
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


def evaluate(pred: str | Path, truth: str | Path, *, source: str | Path | None = None,
             json_path: str | Path | None = None, held_out: Sequence[int] | None = None) -> EvalReport:
    """Score rendered frames against the truth: PSNR, SSIM, LPIPS per frame, and the warping error.

    Args:
        pred, truth: Shots (folders, patterns or videos), paired by frame number.
        source: The source shot; its optical flow drives the warping error (else the truth's).
        json_path: Also write every number as JSON there.
        held_out: Frames nobody fixed; their means are reported as the subset "held_out".
    """
    from shotfit.evaluate import evaluate_frames
    from shotfit.losses import load_lpips

    report = evaluate_frames(open_shot(pred), open_shot(truth),
                             None if source is None else open_shot(source), lpips_net=load_lpips())
    if json_path is not None:
        subsets = {"held_out": held_out} if held_out is not None else None
        write_json(Path(json_path), report.to_dict(subsets))
    return report
