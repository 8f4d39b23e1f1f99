"""Rendering a shot through an exported ONNX file with onnxruntime: no PyTorch imported on this path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shotfit.engine.run_folder import RunFolder
from shotfit.errors import ConfigError, FrameError, RunError, quoted
from shotfit.export.runtime import OnnxModel, OnnxPredictor
from shotfit.files import ensure_writable_folder, plates_folder, refuse_inside
from shotfit.infer.render import FrameDone, RenderResult, render_shot
from shotfit.io import open_shot, parse_frame_range, transfer_for

# where `shotfit export --format onnx` puts the file when given no --out
DEFAULT_MODEL = "model.onnx"


def render_onnx(run: str | Path | None, source: str | Path, out: str | Path, *, model: str | Path | None = None,
                tile: int | None = None, tile_overlap: int | None = None, frames: str | Sequence[int] | None = None,
                on_frame: Callable[[FrameDone], None] | None = None) -> RenderResult:
    """Render ``source`` into ``out`` through an ONNX file made by ``shotfit export``.

    The file carries what rendering needs (the run's colour settings and tiling), so the run folder
    is optional: ``model`` alone will do, and ``run`` alone means ``RUN/model.onnx``.

    Args:
        run: The run folder, or None.
        model: The ONNX file (default ``RUN/model.onnx``).
        tile, tile_overlap: Tiling; unset, the file's (the run's settings when it was exported).
        frames, on_frame: As for :func:`shotfit.api.render`.
    """
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
    info = onnx_model.info
    shot = open_shot(source)
    if (folder := plates_folder(source)) is not None:
        refuse_inside(out, folder)
    if transfer_for(shot.format) != info.colour.get("transfer"):
        raise FrameError(f"source {quoted(source)} holds {shot.format.dtype} frames but {quoted(model)} was "
                         f"exported from a run trained on {info.colour.get('format', {}).get('dtype')} frames")
    if (3 if shot.channels >= 3 else 1) != info.channels:  # the network sees RGB of RGBA frames
        raise FrameError(f"source {quoted(source)} has {shot.channels} channels but {quoted(model)} takes "
                         f"{info.channels}")
    wanted = parse_frame_range(frames) if isinstance(frames, str) else frames
    if wanted is not None and not any(frame in wanted for frame in shot.frames):
        raise FrameError(f"frames {frames if isinstance(frames, str) else list(wanted)!r} select no frame of "
                         f"{quoted(source)} (it holds frames {shot.frames[0]}-{shot.frames[-1]})")
    predictor = OnnxPredictor(onnx_model, tile, tile_overlap)
    ensure_writable_folder(out)
    return render_shot(predictor, shot, Path(out), wanted, on_frame=on_frame)
