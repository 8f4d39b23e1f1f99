"""Rendering a shot through a trained run (PyTorch) or an exported ONNX file (onnxruntime), and
scoring renders against the truth.

PyTorch is imported only inside the functions that need it: ``--engine onnxruntime`` renders on a
machine without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shotfit.config import RenderConfig
from shotfit.runs.folder import RunFolder, write_json
from shotfit.errors import ConfigError, FrameError, RunError, ShotfitError, quoted
from shotfit.export.metadata import DEFAULT_NAMES
from shotfit.files import ensure_writable_folder, plates_folder, refuse_inside
from shotfit.infer.render import FrameDone, FramePredictor, RenderResult, render_shot, write_review
from shotfit.io import ColourPipeline, PixelFormat, Shot, colour_of_run, open_shot, override_colour, parse_frame_range
from shotfit.io.masks import ALPHA, open_masks

if TYPE_CHECKING:
    from shotfit.evaluate import EvalReport

log = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime")
DEFAULT_MODEL = DEFAULT_NAMES["onnx"]


@dataclass(frozen=True)
class _Trained:
    """A trained network as a render sees it, whichever engine runs it.

    ``name`` says it in messages (``run 'runs/x'``, ``'x.onnx'``); ``info`` is what run.json records
    about its data (``colour``, ``format``, ``channels``); ``predictor`` builds the frame predictor
    once the colour pipeline and the output format are settled.
    """

    name: str
    info: Mapping[str, Any]
    predictor: Callable[[ColourPipeline, PixelFormat], FramePredictor]


def render(run: str | Path | None, source: str | Path, out: str | Path, *, tile: int | None = None,
           tile_overlap: int | None = None, frames: str | Sequence[int] | None = None,
           first: int | None = None, last: int | None = None, review: str | Path | None = None,
           device: str = "auto", colorspace: str | None = None, ocio_config: str | Path | None = None,
           on_frame: Callable[[FrameDone], None] | None = None, mask: str | Path | None = None,
           engine: str = "torch", model: str | Path | None = None, precision: str | None = None,
           should_stop: Callable[[], bool] | None = None) -> RenderResult:
    """Render ``source`` through the network of the run folder ``run`` into ``out``.

    Needs nothing but the run folder: the weights carry their architecture, and run.json says how
    frames were colour managed for training. Frames already in ``out`` are skipped.

    Args:
        first, last: Limit the shot (as for training); ``frames`` picks frames within it. Holes in
            the source's numbering are logged as a warning and reported in the result.
        review: Also write an H.264 MP4 of the rendered frames there (through the OCIO display view).
        colorspace: The source's OCIO colour space when it differs from the training plates' (the
            renders are written in it too); default: the run's.
        ocio_config: Another OCIO config to find the run's spaces in (a config moved on a render
            farm); default: the one saved in the run.
        mask: A mask sequence, or ``"alpha"`` for the source's alpha: the result is composited over
            the source, replacing the plate only inside the mask.
        engine: ``"torch"`` (the run's weights) or ``"onnxruntime"``: an ONNX file made by
            ``shotfit export`` (``model``, default ``RUN/model.onnx``; then ``run`` may be None),
            without importing PyTorch. The file carries the run's colour and tiling settings.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` for the torch engine; default the run's
            ``render.precision`` (see :class:`shotfit.infer.predictor.Predictor`).
        should_stop: Asked before each frame; True ends the render after the frame in hand
            (``stopped`` in the result); rendering again renders the rest.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown render engine {engine!r} (known: {', '.join(ENGINES)})")
    if review is not None and Path(review).suffix.lower() != ".mp4":
        raise ConfigError(f"--review {quoted(review)} must name an .mp4 file (the review movie is H.264 MP4)")
    trained = (_onnx_network(run, model, tile, tile_overlap) if engine == "onnxruntime"
               else _torch_network(run, model, device, tile, tile_overlap, precision))
    shot = open_shot(source, first=first, last=last)
    if (warning := shot.gaps_warning()) is not None:
        log.warning(warning)
    if (folder := plates_folder(source)) is not None:
        refuse_inside(out, folder)
        if review is not None:
            refuse_inside(review, folder, option="--review")
    trained_dtype = trained.info.get("format", {}).get("dtype")
    if shot.format.is_float != (trained_dtype in ("half", "float")):
        raise FrameError(f"source {quoted(source)} holds {shot.format.dtype} frames but {trained.name} "
                         f"was trained on {trained_dtype} frames")
    colour = _colour(trained, colorspace, ocio_config)
    if (3 if shot.channels >= 3 else 1) != trained.info["channels"]:  # the network sees RGB of RGBA
        raise FrameError(f"source {quoted(source)} has {shot.channels} channels but {trained.name} "
                         f"was trained on {trained.info['channels']}")
    wanted = parse_frame_range(frames) if isinstance(frames, str) else frames
    if wanted is not None and not any(frame in wanted for frame in shot.frames):
        raise FrameError(f"frames {frames if isinstance(frames, str) else list(wanted)!r} select no frame of "
                         f"{quoted(source)} (it holds frames {shot.frames[0]}-{shot.frames[-1]})")
    masks = open_masks(mask)
    if isinstance(masks, Shot):
        _check_masks_cover(masks, shot, wanted)
    elif masks == ALPHA and shot.channels != 4:
        raise FrameError(f"source {quoted(source)} has no alpha channel to use as the mask "
                         f"({shot.channels} channels); give a mask sequence instead")
    predictor = trained.predictor(colour, shot.format)
    ensure_writable_folder(out)
    result = render_shot(predictor, shot, Path(out), wanted, on_frame=on_frame, masks=masks,
                         should_stop=should_stop)
    if review is not None:
        write_review(shot, result, Path(review), display=colour.to_display)
    return result


def _torch_network(run: str | Path | None, model: str | Path | None, device: str, tile: int | None,
                   tile_overlap: int | None, precision: str | None = None) -> _Trained:
    """A run folder's weights, run by PyTorch."""
    if run is None or model is not None:
        raise ConfigError("the torch engine renders a run folder (--run); an exported --model needs "
                          "--engine onnxruntime")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ShotfitError("the torch engine needs PyTorch, which is not installed here: render a file made by "
                           "'shotfit export --format onnx' with --engine onnxruntime") from None
    from shotfit.device import pick_device
    from shotfit.infer.optimize import wants_compile
    from shotfit.infer.predictor import Predictor, load_network

    run_folder = RunFolder(run)
    cfg = run_folder.read_config()
    info = run_folder.read_info()
    render_cfg = RenderConfig(tile=tile or cfg.render.tile,
                              tile_overlap=cfg.render.tile_overlap if tile_overlap is None else tile_overlap,
                              blend=cfg.render.blend, precision=precision or cfg.render.precision,
                              compile=cfg.render.compile)

    def predictor(colour: ColourPipeline, fmt: PixelFormat) -> FramePredictor:
        network, _ = load_network(run_folder)
        torch_device = pick_device(device)
        return Predictor(network, colour, torch_device, render_cfg.tile, render_cfg.tile_overlap, render_cfg.blend,
                         render_cfg.precision, fmt, wants_compile(render_cfg.compile, torch_device))

    return _Trained(f"run {quoted(run)}", info, predictor)


def _onnx_network(run: str | Path | None, model: str | Path | None, tile: int | None,
                  tile_overlap: int | None) -> _Trained:
    """An ONNX file made by ``shotfit export`` (``model``, or ``RUN/model.onnx``), run by onnxruntime."""
    from shotfit.export.runtime import OnnxModel, OnnxPredictor

    if run is not None:
        RunFolder(run).require_run()
    if model is None:
        if run is None:
            raise ConfigError("rendering with onnxruntime needs --model FILE.onnx or --run RUN")
        model = Path(run) / DEFAULT_MODEL
        if not model.is_file():
            raise RunError(f"run {quoted(run)} has no {DEFAULT_MODEL}: run 'shotfit export --run {run} "
                           "--format onnx' first, or give --model")
    onnx_model = OnnxModel(model)
    info = {**onnx_model.info.colour, "channels": onnx_model.info.channels}
    return _Trained(quoted(model), info,
                    lambda colour, _fmt: OnnxPredictor(onnx_model, tile, tile_overlap, colour=colour))


def _colour(trained: _Trained, colorspace: str | None, ocio_config: str | Path | None) -> ColourPipeline:
    """The colour pipeline the network was trained with, with a render's own source space or config if given."""
    settings = colour_of_run(trained.info, trained.name)
    try:
        return ColourPipeline(override_colour(settings, colorspace, ocio_config))
    except ConfigError as err:
        if ocio_config is not None or colorspace is not None:
            raise
        raise ConfigError(f"{err} (the colour settings of {trained.name}; --ocio-config points "
                          "render at another config)") from None


def _check_masks_cover(masks: Shot, shot: Shot, wanted: Sequence[int] | None) -> None:
    """Every frame to render has its mask, said before anything is rendered."""
    frames = [f for f in shot.frames if wanted is None or f in wanted]
    missing = [f for f in frames if f not in masks]
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise FrameError(f"masks {quoted(masks.path)} lack frames {shown} of {quoted(shot.path)}")


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
