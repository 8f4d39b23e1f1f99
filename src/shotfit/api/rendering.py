"""Rendering a shot through a trained run, and scoring renders against the truth."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shotfit.config import RenderConfig
from shotfit.data.keyframes import model_channels
from shotfit.engine.device import configure_threads, pick_device
from shotfit.engine.run_folder import RunFolder, write_json
from shotfit.errors import ConfigError, FrameError, quoted
from shotfit.evaluate import EvalReport, evaluate_frames
from shotfit.files import ensure_writable_folder, plates_folder, refuse_inside
from shotfit.infer.predictor import Predictor, load_network
from shotfit.infer.render import FrameDone, RenderResult, render_shot
from shotfit.io import ColourPipeline, colour_of_run, open_shot, override_colour, parse_frame_range
from shotfit.losses import load_lpips


def render(run: str | Path, source: str | Path, out: str | Path, *, tile: int | None = None,
           tile_overlap: int | None = None, frames: str | Sequence[int] | None = None,
           device: str = "auto", colorspace: str | None = None, ocio_config: str | Path | None = None,
           on_frame: Callable[[FrameDone], None] | None = None) -> RenderResult:
    """Render ``source`` through the network of the run folder ``run`` into ``out``.

    Needs nothing but the run folder: the weights carry their architecture, and run.json says how
    frames were colour managed for training. Frames already in ``out`` are skipped.

    Args:
        colorspace: The source's OCIO colour space when it differs from the training plates' (the
            renders are written in it too); default: the run's.
        ocio_config: Another OCIO config to find the run's spaces in (a config moved on a render
            farm); default: the one saved in the run.
    """
    run_folder = RunFolder(run)
    cfg = run_folder.read_config()
    info = run_folder.read_info()
    render_cfg = RenderConfig(tile=tile or cfg.render.tile,
                              tile_overlap=cfg.render.tile_overlap if tile_overlap is None else tile_overlap,
                              blend=cfg.render.blend)
    shot = open_shot(source)
    if (folder := plates_folder(source)) is not None:
        refuse_inside(out, folder)
    if shot.format.is_float != (info["format"]["dtype"] in ("half", "float")):
        raise FrameError(f"source {quoted(source)} holds {shot.format.dtype} frames but run "
                         f"{quoted(run)} was trained on {info['format']['dtype']} frames")
    colour = _run_colour(run_folder, info, colorspace, ocio_config)
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
    predictor = Predictor(network, colour, torch_device, render_cfg.tile,
                          render_cfg.tile_overlap, render_cfg.blend)
    ensure_writable_folder(out)
    return render_shot(predictor, shot, Path(out), wanted, on_frame=on_frame)


def _run_colour(run: RunFolder, info: dict, colorspace: str | None, ocio_config: str | Path | None
                ) -> ColourPipeline:
    """The run's colour pipeline, with a render's own source space or config if given."""
    settings = colour_of_run(info, quoted(run.info_path))
    try:
        return ColourPipeline(override_colour(settings, colorspace, ocio_config))
    except ConfigError as err:
        if ocio_config is not None or colorspace is not None:
            raise
        raise ConfigError(f"{err} (the colour settings of run {quoted(run.path)}; --ocio-config points "
                          "render at another config)") from None


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
