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

from shotfit.errors import ConfigError, FrameError, RunError, ShotfitError, quoted
from shotfit.export.metadata import DEFAULT_NAMES
from shotfit.files import ensure_writable_folder, guard_output
from shotfit.infer.render import (
    FrameDone,
    FramePredictor,
    RenderResult,
    frames_pending,
    frames_wanted,
    render_shot,
    write_review,
)
from shotfit.io import ColourPipeline, PixelFormat, Shot, colour_of_run, open_shot, override_colour, parse_frame_range
from shotfit.io.masks import ALPHA, open_masks
from shotfit.io.sequence import clip_range
from shotfit.runs.folder import RunFolder, write_json
from shotfit.workflows.chunked import check_workers, render_in_chunks
from shotfit.workflows.memory import out_of_memory_as_error
from shotfit.workflows.precedence import resolve_render_config
from shotfit.workflows.requests import EvaluateRequest, PathLike, RenderRequest

if TYPE_CHECKING:
    from shotfit.evaluate import EvalReport

log = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime")
DEFAULT_MODEL = DEFAULT_NAMES["onnx"]


@dataclass(frozen=True)
class _Trained:
    """A trained network as a render sees it, whichever engine runs it.

    ``name`` says it in messages (``run 'runs/x'``, ``'x.onnx'``); ``colour`` is how its data was colour
    managed, as run.json records it (``colour``, ``format``); ``channels`` what it sees; ``predictor``
    builds the frame predictor once the colour pipeline and the output format are settled; ``inputs``
    what a render must not write among (the run's shot, keyframes and model; the model file).
    """

    name: str
    colour: Mapping[str, Any]
    channels: int | None
    predictor: Callable[[ColourPipeline, PixelFormat], FramePredictor]
    inputs: tuple[tuple[str, PathLike], ...] = ()


def render(request: RenderRequest | PathLike | None, source: PathLike | None = None, out: PathLike | None = None,
           *, on_frame: Callable[[FrameDone], None] | None = None,
           should_stop: Callable[[], bool] | None = None, **options: Any) -> RenderResult:
    """Render a shot through the network of a run folder (or an exported ONNX file) into a folder.

    Needs nothing but the run folder: the weights carry their architecture, and run.json says how
    frames were colour managed for training. Frames already in the output folder are skipped. Holes
    in the source's numbering are logged as a warning and reported in the result.

    Args:
        request: What to render (:class:`~shotfit.workflows.requests.RenderRequest`). For a short
            call, give its fields instead: ``render(run, source, out, tile=512, ...)``.
        on_frame: Called after every frame (progress display).
        should_stop: Asked before each frame; True ends the render after the frame in hand
            (``stopped`` in the result); rendering again renders the rest.
    """
    if not isinstance(request, RenderRequest):
        if source is None or out is None:
            raise TypeError("render needs a RenderRequest, or the run folder, source and output folder")
        request = RenderRequest(request, source, out, **options)
    elif source is not None or out is not None or options:
        raise TypeError("give render a RenderRequest or its fields, not both")
    return run_render(request, on_frame=on_frame, should_stop=should_stop)


def run_render(request: RenderRequest, *, on_frame: Callable[[FrameDone], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> RenderResult:
    """Render as ``request`` says (see :func:`render`)."""
    with out_of_memory_as_error("rendering", _render_memory_advice, parameter="tile"):
        return _render(request, on_frame, should_stop)


def _render_memory_advice() -> str:
    return "render in smaller tiles (render.tile, e.g. 512) or on a device with more memory"


@dataclass(frozen=True)
class _Plan:
    """A render checked and ready to run: the opened shot, the frames it renders (and those its source
    lacks), the masks, the trained network and the colour pipeline."""

    shot: Shot
    selection: Sequence[int] | None  # the request's frames as render_shot takes them (None: all)
    wanted: list[int]
    missing: list[range]
    masks: Shot | str | None
    trained: _Trained
    colour: ColourPipeline


def _render(request: RenderRequest, on_frame: Callable[[FrameDone], None] | None,
            should_stop: Callable[[], bool] | None) -> RenderResult:
    check_workers(request)
    plan = _plan(request)
    if request.workers is not None:  # the same frames, shared out as Ray tasks that each run render_chunk
        result = render_in_chunks(request, plan.shot, plan.wanted, plan.missing, render_chunk,
                                  on_frame=on_frame, should_stop=should_stop)
    else:
        predictor = plan.trained.predictor(plan.colour, plan.shot.format)
        ensure_writable_folder(request.out)
        result = render_shot(predictor, plan.shot, Path(request.out), plan.selection, on_frame=on_frame,
                             masks=plan.masks, should_stop=should_stop)
    if request.review is not None:
        write_review(plan.shot, result, Path(request.review), display=plan.colour.to_display)
    return result


def render_chunk(request: RenderRequest) -> RenderResult:
    """One chunk of a render on workers (its ``frames``), in a Ray task: the plain render."""
    return run_render(request)


def pending_frames(request: RenderRequest) -> tuple[list[int], int]:
    """(the frames of ``request`` not yet rendered whole in its output folder, how many it renders in all):
    what a render on workers shares out. Checks the request as rendering would."""
    check_workers(request)
    plan = _plan(request)
    return frames_pending(plan.shot, Path(request.out), plan.wanted), len(plan.wanted)


def _plan(request: RenderRequest) -> _Plan:
    """Check everything a render can get wrong, before any frame is rendered: nothing is written among or
    over the inputs, the shot suits the network, the frames exist, the masks cover them."""
    source, out, review, frames = request.source, request.out, request.review, request.frames
    if request.engine not in ENGINES:
        raise ConfigError(f"unknown render engine {request.engine!r} (known: {', '.join(ENGINES)})")
    trained = _onnx_network(request) if request.engine == "onnxruntime" else _torch_network(request)
    # checked before the network loads and the shot opens: nothing is written among or over the inputs
    inputs = [("source", source), *([("masks", request.mask)] if request.mask not in (None, ALPHA) else []),
              *trained.inputs]
    guard_output(out, "frames", protected=inputs, parameter="out")
    if review is not None:
        guard_output(review, "review", protected=inputs, parameter="review")
    shot = open_shot(source, first=request.first, last=request.last)
    if (warning := shot.gaps_warning()) is not None:
        log.warning(warning)
    trained_dtype = trained.colour.get("format", {}).get("dtype")
    if shot.format.is_float != (trained_dtype in ("half", "float")):
        raise FrameError(f"source {quoted(source)} holds {shot.format.dtype} frames but {trained.name} "
                         f"was trained on {trained_dtype} frames")
    colour = _colour(trained, request.colorspace, request.ocio_config)
    if (3 if shot.channels >= 3 else 1) != trained.channels:  # the network sees RGB of RGBA
        raise FrameError(f"source {quoted(source)} has {shot.channels} channels but {trained.name} "
                         f"was trained on {trained.channels}")
    wanted = parse_frame_range(frames) if isinstance(frames, str) else frames
    if isinstance(wanted, range):  # within the shot's span, so '1-2000000000' costs nothing; holes stay in
        wanted = clip_range(wanted, shot.frames[0], shot.frames[-1])
    if wanted is not None and not any(frame in wanted for frame in shot.frames):
        raise FrameError(f"frames {frames if isinstance(frames, (str, range)) else list(wanted)!r} select no frame of "
                         f"{quoted(source)} (it holds frames {shot.frames[0]}-{shot.frames[-1]})")
    masks = open_masks(request.mask)
    if isinstance(masks, Shot):
        _check_masks_cover(masks, shot, wanted)
    elif masks == ALPHA and shot.channels != 4:
        raise FrameError(f"source {quoted(source)} has no alpha channel to use as the mask "
                         f"({shot.channels} channels); give a mask sequence instead")
    chosen, missing = frames_wanted(shot, wanted)
    return _Plan(shot, wanted, chosen, missing, masks, trained, colour)


def _torch_network(request: RenderRequest) -> _Trained:
    """A run folder's weights, run by PyTorch."""
    run, device = request.run, request.device
    if run is None or request.model is not None:
        raise ConfigError("the torch engine renders a run folder; an exported model file needs the "
                          "onnxruntime engine", parameter="engine")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ShotfitError("the torch engine needs PyTorch, which is not installed here: render the run exported "
                           "as onnx with the onnxruntime engine", parameter="engine") from None
    # PyTorch: only for the torch engine (onnxruntime renders where it is not installed)
    from shotfit.device import pick_device
    from shotfit.infer.optimize import wants_compile
    from shotfit.infer.predictor import Predictor, load_network

    run_folder = RunFolder(run)
    cfg = run_folder.read_config()
    info = run_folder.read_info()
    render_cfg = resolve_render_config(request, cfg.render)

    def predictor(colour: ColourPipeline, fmt: PixelFormat) -> FramePredictor:
        network, _ = load_network(run_folder)
        torch_device = pick_device(device)
        return Predictor(network, colour, torch_device, render_cfg.tile, render_cfg.tile_overlap, render_cfg.blend,
                         render_cfg.precision, fmt, wants_compile(render_cfg.compile, torch_device))

    return _Trained(f"run {quoted(run)}", info.colour_record(), info.channels, predictor,
                    tuple(run_folder.inputs(info)))


def _onnx_network(request: RenderRequest) -> _Trained:
    """An ONNX file made by ``shotfit export`` (``model``, or ``RUN/model.onnx``), run by onnxruntime."""
    from shotfit.export.runtime import OnnxModel, OnnxPredictor  # onnxruntime: only for that engine

    run, model, tile, tile_overlap = request.run, request.model, request.tile, request.tile_overlap
    if run is not None:
        RunFolder(run).require_run()
    if model is None:
        if run is None:
            raise ConfigError("rendering with onnxruntime needs an ONNX model file or a run folder",
                              parameter="model")
        model = Path(run) / DEFAULT_MODEL
        if not model.is_file():
            raise RunError(f"run {quoted(run)} has no {DEFAULT_MODEL}: export the run as onnx first, or give "
                           "the model file", parameter="model")
    onnx_model = OnnxModel(model)
    inputs = ("model", model), *(_run_inputs(RunFolder(run)) if run is not None else ())
    return _Trained(quoted(model), dict(onnx_model.info.colour), onnx_model.info.channels,
                    lambda colour, _fmt: OnnxPredictor(onnx_model, tile, tile_overlap, colour=colour), inputs)


def _run_inputs(run: RunFolder) -> list[tuple[str, PathLike]]:
    """A run's inputs where its run.json says (the onnxruntime engine needs nothing else of it)."""
    try:
        return list(run.inputs(run.read_info()))
    except RunError:
        return [("trained model", run.model_path), ("checkpoints", run.checkpoints)]


def _colour(trained: _Trained, colorspace: str | None, ocio_config: PathLike | None) -> ColourPipeline:
    """The colour pipeline the network was trained with, with a render's own source space or config if given."""
    settings = colour_of_run(trained.colour, trained.name)
    try:
        return ColourPipeline(override_colour(settings, colorspace, ocio_config))
    except ConfigError as err:
        if ocio_config is not None or colorspace is not None:
            raise
        raise ConfigError(f"{err}; the colour settings of {trained.name} name it: give the render another "
                          "OCIO config", parameter="ocio_config") from None


def _check_masks_cover(masks: Shot, shot: Shot, wanted: Sequence[int] | None) -> None:
    """Every frame to render has its mask, said before anything is rendered."""
    frames = [f for f in shot.frames if wanted is None or f in wanted]
    missing = [f for f in frames if f not in masks]
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise FrameError(f"masks {quoted(masks.path)} lack frames {shown} of {quoted(shot.path)}")


def evaluate(request: EvaluateRequest | PathLike, truth: PathLike | None = None, **options: Any) -> EvalReport:
    """Score rendered frames against the truth: PSNR, SSIM, LPIPS per frame, and the warping error.

    Args:
        request: What to score (:class:`~shotfit.workflows.requests.EvaluateRequest`). For a short
            call, give its fields instead: ``evaluate(pred, truth, source=..., json_path=...)``.
    """
    if not isinstance(request, EvaluateRequest):
        if truth is None:
            raise TypeError("evaluate needs an EvaluateRequest, or the rendered frames and the truth")
        request = EvaluateRequest(request, truth, **options)
    elif truth is not None or options:
        raise TypeError("give evaluate an EvaluateRequest or its fields, not both")
    # PyTorch: scoring needs it, rendering through onnxruntime does not
    from shotfit.evaluate import evaluate_frames
    from shotfit.losses import load_lpips

    source = request.source
    if request.json_path is not None:  # checked before the scoring, which takes a while
        inputs = [("rendered frames", request.pred), ("truth", request.truth),
                  *([("source", source)] if source is not None else [])]
        guard_output(request.json_path, "json", protected=inputs, parameter="json_path")
    with out_of_memory_as_error("scoring", lambda: "the frames are too large to score on this machine"):
        report = evaluate_frames(open_shot(request.pred), open_shot(request.truth),
                                 None if source is None else open_shot(source), lpips_net=load_lpips(),
                                 frames=request.frames)
    if request.json_path is not None:
        subsets = {"held_out": request.held_out} if request.held_out is not None else None
        write_json(Path(request.json_path), report.to_dict(subsets))
    return report
