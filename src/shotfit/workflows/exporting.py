"""Exporting a run's network as TorchScript (for Nuke) or ONNX (for onnxruntime and other hosts), checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shotfit import __version__
from shotfit.errors import ConfigError, ExportError, RunError, ShotfitError, quoted
from shotfit.export import FORMATS
from shotfit.export.metadata import DEFAULT_NAMES, ModelInfo
from shotfit.export.runtime import colour_codec, model_colour
from shotfit.export.writers import UnitRange, load_exported, max_difference, write_onnx, write_torchscript
from shotfit.files import atomic_path, guard_output
from shotfit.infer.predictor import load_network
from shotfit.infer.tiling import declared_tiling
from shotfit.io import open_shot
from shotfit.runs.folder import RunFolder
from shotfit.runs.record import RunInfo
from shotfit.workflows.memory import out_of_memory_as_error
from shotfit.workflows.requests import ExportRequest, PathLike

log = logging.getLogger(__name__)

# The real frame checked is cropped to this (its centre), so a 4K plate does not make export slow.
_CHECK_CROP = 256


@dataclass(frozen=True)
class ExportResult:
    """A written file and how closely it reproduces the PyTorch network ([0, 1] scale)."""

    path: Path
    format: str
    max_difference: float
    checked: str  # which frames were compared, in words


def export(request: ExportRequest | PathLike, fmt: str | None = None, out: PathLike | None = None,
           **options: Any) -> ExportResult:
    """Write the run's network as TorchScript or ONNX, checked against PyTorch.

    The file takes (B, C, H, W) float32 in [0, 1] (the frame in the run's working colour space) and
    returns the edited frame the same way, for any H and W; its metadata holds shotfit's version,
    the architecture, the run's colour settings and how to tile it (:class:`ModelInfo`). Before the
    file appears, the exported model and the PyTorch network run on the same frames (a frame of the
    run's shot when it can be read, else a synthetic one, plus an odd size and a tiny one); if they
    differ by more than the tolerance anywhere, nothing is written.

    Args:
        request: What to export (:class:`~shotfit.workflows.requests.ExportRequest`). For a short
            call, give its fields instead: ``export(run, "onnx", out, tolerance=1e-4)``.

    Raises:
        ConfigError: an unknown format or a negative tolerance.
        RunError: no such run, no weights yet, damaged weights.
        ExportError: the exported model differs by more than the tolerance (the message says by how much).
    """
    if not isinstance(request, ExportRequest):
        if fmt is None:
            raise TypeError("export needs an ExportRequest, or the run folder and the format")
        request = ExportRequest(request, fmt, out, **options)
    elif fmt is not None or out is not None or options:
        raise TypeError("give export an ExportRequest or its fields, not both")
    return run_export(request)


def run_export(request: ExportRequest) -> ExportResult:
    """Export as ``request`` says (see :func:`export`)."""
    with out_of_memory_as_error("export", lambda: "the run's network is too large to export on this machine"):
        return _export(request)


def _export(request: ExportRequest) -> ExportResult:
    run, fmt, tolerance = request.run, request.format, request.tolerance
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if not tolerance >= 0:
        raise ConfigError(f"export tolerance must be 0 or more, got {tolerance!r}", parameter="tolerance")
    run_folder = RunFolder(run)
    cfg = run_folder.read_config()
    info = run_folder.read_info()
    network, state = load_network(run_folder)
    model = UnitRange(network.cpu())
    size_multiple, reach, max_tile = declared_tiling(network)
    if info.channels is None:
        raise RunError(f"run description {quoted(run_folder.info_path)} lacks the field 'channels'")
    model_info = ModelInfo(
        version=__version__, arch=state["arch"], channels=info.channels, colour=info.colour_record(),
        size_multiple=size_multiple, tile_overlap=reach if cfg.render.tile_overlap is None else cfg.render.tile_overlap,
        max_tile=max_tile, tile=cfg.render.tile, blend=cfg.render.blend)
    frames, checked = _check_frames(info, model_info)
    out = guard_output(request.out if request.out is not None else run_folder.path / DEFAULT_NAMES[fmt], fmt,
                       protected=run_folder.inputs(info))
    if fmt == "onnx":
        _require_onnx()
    writer = write_onnx if fmt == "onnx" else write_torchscript
    with atomic_path(out) as temp:
        writer(model, model_info, temp)
        exported, _ = load_exported(temp, fmt)
        difference, (height, width) = max_difference(model, exported, frames)
        if not difference <= tolerance:
            raise ExportError(f"the exported {fmt} model differs from the PyTorch network by {difference:.2e} "
                              f"on a {width}x{height} frame (tolerance {tolerance:.0e}); nothing written to "
                              f"{quoted(out)}")
    log.info("exported %s to %s: max difference %.2e on %s", run_folder.path, out, difference, checked)
    return ExportResult(out, fmt, difference, checked)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ShotfitError("ONNX export needs onnx: pip install 'shotfit[export]'") from None


def _check_frames(info: RunInfo, model_info: ModelInfo) -> tuple[list[np.ndarray], str]:
    """(1, C, H, W) float32 frames in the exported model's input space, and which they are in words.

    A real frame tells more than noise (the values the network actually meets), so the run's own shot
    comes first when it can still be read from here; then deterministic noise at an odd size and at
    a size smaller than the network's padding (where reflect padding gives way to repeating the edge).
    """
    rng = np.random.default_rng(0)
    channels = model_info.channels

    def noise(height: int, width: int) -> np.ndarray:
        return rng.random((1, channels, height, width), dtype=np.float32)

    real = _source_frame(info, model_info)
    first, checked = (real if real is not None else (noise(64, 96), "a synthetic 96x64 frame"))
    return [first, noise(37, 53), noise(5, 7)], f"{checked}, and synthetic 53x37 and 7x5 frames"


def _source_frame(info: RunInfo, model_info: ModelInfo) -> tuple[np.ndarray, str] | None:
    """The centre of a keyframe's source frame, through the run's colour step; None when it cannot be read."""
    source = info.source
    if not source:
        return None
    try:
        with open_shot(source) as shot:
            frame = next((f for f in info.keyframe_frames if f in shot), shot.frames[0])
            pixels = shot.read(frame)
    except (ShotfitError, OSError) as err:
        log.info("export check uses synthetic frames: the run's source cannot be read (%s)", err)
        return None
    if pixels.shape[2] < model_info.channels:
        return None
    height, width = pixels.shape[:2]
    top, left = max(0, (height - _CHECK_CROP) // 2), max(0, (width - _CHECK_CROP) // 2)
    crop = pixels[top:top + _CHECK_CROP, left:left + _CHECK_CROP, :model_info.channels]
    encode, _ = colour_codec(model_colour(model_info, quoted(source)))
    codes = np.ascontiguousarray(encode(crop).transpose(2, 0, 1)[None], dtype=np.float32)
    return codes, f"frame {frame} of {quoted(source)} ({crop.shape[1]}x{crop.shape[0]})"
