"""Training a run: from a shot and its fixed keyframes to a run folder, tracked."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shotfit import __version__
from shotfit.archs import build_network, resolve_network_args
from shotfit.config import Config, ModelConfig, config_to_dict
from shotfit.data.augment import PairedAugment
from shotfit.data.focus import EditFocus
from shotfit.data.keyframes import KeyframePair, keyframes_to_tensors, model_channels, pair_keyframes
from shotfit.data.temporal import load_frame_pairs
from shotfit.device import pick_device, seeded_build
from shotfit.engine.tracking import flatten_params, start_tracking
from shotfit.engine.tracking_options import TrackingOptions
from shotfit.engine.trainer import StepReport, StoppedBy, Trainer, TrainHooks, TrainResult, loss_metrics
from shotfit.errors import ConfigError, FrameError, RunError, quoted
from shotfit.files import ensure_writable_folder, guard_output, plates_folder, refuse_inside, remove_stale_partials
from shotfit.io import ColourPipeline, ColourSettings, Shot, colour_of_run, open_shot, resolve_colour
from shotfit.io.masks import ALPHA, open_masks
from shotfit.losses import build_loss
from shotfit.losses.lpips import MIN_SIZE as LPIPS_MIN_SIZE
from shotfit.runs.folder import RunFolder, load_state
from shotfit.runs.record import RunInfo
from shotfit.workflows.memory import out_of_memory_as_error
from shotfit.workflows.precedence import allowed_plugins, resolve_train_config
from shotfit.workflows.requests import PathLike, TrainCallbacks, TrainRequest
from shotfit.workflows.watching import make_previewer, make_validator

log = logging.getLogger(__name__)

# With only minutes, the loop runs until the budget; the plan is then set from measured speed.
UNBOUNDED_STEPS = 10**9


@dataclass(frozen=True)
class TrainSummary:
    run: Path
    result: TrainResult
    config: Config
    metrics: dict[str, Any]


def train(request: TrainRequest | PathLike, keyframes: PathLike | None = None, out: PathLike | None = None, *,
          on_step: Callable[[StepReport], None] | None = None,
          on_validate: Callable[[int, dict[str, float]], None] | None = None,
          on_metrics: Callable[[int, dict[str, float]], None] | None = None,
          should_stop: Callable[[], bool] | None = None, **options: Any) -> TrainSummary:
    """Learn the edit shown by the keyframes (edited frames of the source) into the run folder.

    Args:
        request: What to train (:class:`~shotfit.workflows.requests.TrainRequest`). For a short call,
            give its fields instead: ``train(source, keyframes, out, steps=500, ...)`` (there a
            ``config`` that is a path means ``config_file``).
        on_step: Called after every step (progress display).
        on_validate: Called with (step, {"val/psnr", "val/ssim", "val/lpips"}) after each validation
            on ``data.validation_frames``.
        on_metrics: Called with (step, numbers) for everything tracked (loss windows, validations).
        should_stop: Asked after every step; True stops the run there with a checkpoint (``stopped_by``
            is then ``StoppedBy.STOP`` and nothing final is written), so a resume goes on from that step.
    """
    if not isinstance(request, TrainRequest):
        if isinstance(options.get("config"), (str, Path)):
            options["config_file"] = options.pop("config")
        if keyframes is None or out is None:
            raise TypeError("train needs a TrainRequest, or the source, keyframes and run folder")
        request = TrainRequest(request, keyframes, out, **options)
    elif keyframes is not None or out is not None or options:
        raise TypeError("give train a TrainRequest or its fields, not both")
    return run_training(request, TrainCallbacks(on_step=on_step, on_validate=on_validate, on_metrics=on_metrics,
                                                should_stop=should_stop))


def run_training(request: TrainRequest, callbacks: TrainCallbacks | None = None) -> TrainSummary:
    """Train as ``request`` says, telling ``callbacks`` how it goes (see :func:`train`)."""
    callbacks = callbacks or TrainCallbacks()
    run = RunFolder(request.out)
    if not request.resume:
        _refuse_used_folder(run)
    cfg = resolve_train_config(request, run)
    with out_of_memory_as_error("training", lambda: _memory_advice(cfg)):
        return _train(request, callbacks, run, cfg)


def _train(request: TrainRequest, callbacks: TrainCallbacks, run: RunFolder, cfg: Config) -> TrainSummary:
    """The training itself, once the run folder is known to be this request's and the config is resolved."""
    source, keyframes, masks, device = request.source, request.keyframes, request.masks, request.device
    first, last = request.first, request.last
    latest = run.latest_checkpoint() if request.resume else None
    if request.resume and latest is None:
        _refuse_restart_over_model(run)
    start_state = load_state(latest) if latest is not None else None
    shot, keys = open_shot(source, first=first, last=last), open_shot(keyframes)
    mask_shot = open_masks(masks)
    if (warning := shot.gaps_warning()) is not None:
        log.warning(warning)
    if first is not None or last is not None:
        _limit_keyframes(keys, mask_shot, shot)
    colour = _colour(run, cfg, shot, resumed=start_state is not None)
    for spec, what in ((source, "source"), (keyframes, "keyframes")):
        if (folder := plates_folder(spec)) is not None:
            refuse_inside(request.out, folder, what)
    tracking = request.tracking or TrackingOptions()
    if tracking.tensorboard is not None:  # refused even untracked: the option names a place to write
        inputs = [("source", source), ("keyframes", keyframes)] + ([("masks", masks)] if masks not in (None, ALPHA)
                                                                    else [])
        guard_output(tracking.tensorboard, "tensorboard", protected=inputs, parameter="tensorboard")
    for folder in (run.path, run.checkpoints, run.previews):  # what a killed training was writing
        for stale in remove_stale_partials(folder):
            log.info("removed %s, left by a training that was killed", quoted(stale))
    pairs = pair_keyframes(shot, keys, mask_shot)
    _check_perceptual_size(cfg, pairs[0], keys)
    training_pairs, validation_pairs = _split_validation(pairs, cfg.data.validation_frames, keyframes)
    channels = model_channels(pairs[0].source.shape[2])
    cfg = dataclasses.replace(cfg, model=_resolved_model(cfg.model, channels, run, start_state))

    torch_device = pick_device(device or cfg.train.device)
    network = seeded_build(lambda: build_network(cfg.model.arch, **cfg.model.args), cfg.train.seed)
    hooks = TrainHooks(
        preview=make_previewer(run, shot, training_pairs, colour, cfg, torch_device),
        validate=make_validator(validation_pairs, colour, cfg, torch_device) if validation_pairs else None,
        on_step=callbacks.on_step, on_validate=callbacks.on_validate, on_metrics=callbacks.on_metrics,
        should_stop=callbacks.should_stop)
    loss = build_loss(cfg.loss, allowed_plugins(request, cfg))  # plug-ins: only those this request names
    keyframe_tensors = keyframes_to_tensors(training_pairs, colour, torch_device)
    focus = EditFocus.from_keyframes(keyframe_tensors.sources, keyframe_tensors.targets, keyframe_tensors.masks,
                                     cfg.data.edit_focus)
    trainer = Trainer(network, {"arch": cfg.model.arch, "args": dict(cfg.model.args)}, loss,
                      PairedAugment(cfg.augment, focus), keyframe_tensors, run, cfg.train, cfg.data, torch_device,
                      hooks)
    resume_id = None
    if start_state is not None:
        trainer.restore(start_state)
        resume_id = run.read_info().mlflow_run_id
        log.info("resuming %s from step %d", run.path, trainer.step)

    ensure_writable_folder(run.path)
    run.write_config(cfg)
    params = flatten_params(config_to_dict(cfg))
    tags = {"shotfit.version": __version__, "shotfit.git_commit": _git_commit(),
            "shotfit.data_hash": _keyframes_hash(pairs), "shotfit.device": str(torch_device),
            "shotfit.source": str(source)}
    tracker, tracking_ids = start_tracking(tracking, run.path, params, tags,
                                           resume_id=resume_id)
    hooks.tracker = tracker
    run.write_info(RunInfo(
        source=str(source), keyframes=str(keyframes), masks=None if masks is None else str(masks),
        keyframe_frames=tuple(p.frame for p in training_pairs),
        validation_frames=tuple(p.frame for p in validation_pairs),
        frame_size=tuple(pairs[0].source.shape[:2]), channels=channels,
        colour=colour.settings.to_dict(), format=dataclasses.asdict(shot.format), tracking=tracking_ids))
    # minutes alone mean "train for that long": the plan then comes from measured speed, and a
    # resumed run keeps the plan it made.
    max_steps = cfg.train.steps
    if request.minutes is not None and request.steps is None:
        max_steps = trainer.horizon if trainer.step else UNBOUNDED_STEPS
    try:
        if cfg.loss.temporal > 0:  # measured once the folder is a run, so a crash here leaves it resumable
            trainer.frame_pairs = load_frame_pairs(shot, cfg.data.temporal_pairs, colour, torch_device, run.flows)
        result = trainer.fit(max_steps, None if request.minutes is None else request.minutes * 60.0,
                             plan_from_budget=max_steps == UNBOUNDED_STEPS)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or a sweep's scheduler stopping the trial
        tracker.finish(params, {}, status="KILLED")
        raise
    except BaseException:
        tracker.finish(params, {}, status="FAILED")
        raise
    metrics = trainer.metrics(result)
    if result.stopped_by is StoppedBy.STOP:
        tracker.finish(params, {}, status="KILLED")
        return TrainSummary(run.path, result, cfg, metrics)
    if result.stopped_by is not StoppedBy.ALREADY_DONE:
        run.write_metrics(metrics)
    _log_run_files(tracker, run, trainer.network, channels, torch_device)
    tracker.finish(params, _final_metrics(metrics), status="FINISHED")
    return TrainSummary(run.path, result, cfg, metrics)


# --- helpers ------------------------------------------------------------------------------------

def _memory_advice(cfg: Config) -> str:
    """What to lower when training runs out of memory: the settings that size a step, with their values."""
    advice = f"lower data.batch_size (now {cfg.data.batch_size}), augment.patch_size (now {cfg.augment.patch_size})"
    try:
        args = resolve_network_args(cfg.model.arch, cfg.model.args)
    except ConfigError:  # an unknown option fails before any memory is used; this is for the message only
        args = dict(cfg.model.args)
    size = next((key for key in ("width", "embed_dim") if key in args), None)
    return advice + (f" or model.{size} (now {args[size]})" if size else " or the network's size")


def _refuse_used_folder(run: RunFolder) -> None:
    """A fresh run goes into a new or empty folder, never over another run or foreign files."""
    if run.is_run():
        raise RunError(f"run folder {quoted(run.path)} already holds a run: resume it, or choose another "
                       "output folder", parameter="resume")
    if run.path.is_dir() and any(run.path.iterdir()):
        raise RunError(f"output folder {quoted(run.path)} is not empty and is not a shotfit run folder",
                       parameter="out")


def _refuse_restart_over_model(run: RunFolder) -> None:
    """A resume with no checkpoint would start from step 0 and replace a finished model: the user must ask."""
    if run.model_path.is_file():
        raise RunError(f"run folder {quoted(run.path)} holds a finished model but no checkpoint to resume from: "
                       f"remove {quoted(run.model_path)} to train it again from the start, or train into another "
                       "folder", parameter="resume")


def _limit_keyframes(keys: Shot, masks: Shot | str | None, shot: Shot) -> None:
    """Keep the keyframes (and masks) within the shot's first/last frames, saying which are left out."""
    first, last = shot.limits
    outside = [f for f in keys.frames if (first is not None and f < first) or (last is not None and f > last)]
    if len(outside) == len(keys.frames):
        raise FrameError(f"no keyframe in {quoted(keys.path)} lies within {shot.label}")
    if outside:
        log.warning("keyframes %s in %s are outside %s and are left out", ", ".join(map(str, outside)),
                    quoted(keys.path), shot.label)
    for limited in (keys, masks):
        if isinstance(limited, Shot):  # not None, nor "alpha" (the keyframes' own alpha)
            limited.limit(first, last)


def _colour(run: RunFolder, cfg: Config, shot: Shot, resumed: bool) -> ColourPipeline:
    """The run's colour pipeline; a resumed run must resolve to the settings it was trained with."""
    settings = resolve_colour(shot.format, cfg.colour.source, cfg.colour.working, cfg.colour.config)
    if resumed:
        saved = colour_of_run(run.read_info().colour_record(), quoted(run.info_path))
        if saved != settings:
            raise RunError(f"run folder {quoted(run.path)} was trained with colour {_describe(saved)} but "
                           f"this resume resolves to {_describe(settings)}; give the run's own colour settings")
    return ColourPipeline(settings)


def _describe(settings: ColourSettings) -> str:
    return f"'{settings.source}' -> '{settings.working}' ({settings.config})"


def _check_perceptual_size(cfg: Config, pair: KeyframePair, keys: Shot) -> None:
    """The LPIPS loss sees patches of at least LPIPS_MIN_SIZE a side: too small a keyframe or patch is said
    here, in the user's words, rather than by LPIPS at the first step."""
    if cfg.loss.lpips <= 0:
        return
    height, width = pair.target.shape[:2]
    need = f"the {LPIPS_MIN_SIZE}x{LPIPS_MIN_SIZE} pixels the LPIPS loss needs"
    if min(height, width) < LPIPS_MIN_SIZE:
        raise FrameError(f"keyframe {quoted(keys.describe(pair.frame))} is {width}x{height}, smaller than {need}: "
                         "set loss.lpips to 0 to train on frames this small")
    if cfg.augment.patch_size < LPIPS_MIN_SIZE:
        raise ConfigError(f"augment.patch_size = {cfg.augment.patch_size} is smaller than {need}: raise it to "
                          f"at least {LPIPS_MIN_SIZE}, or set loss.lpips to 0")


def _split_validation(pairs: list[KeyframePair], frames: Sequence[int], keyframes: str | Path
                      ) -> tuple[list[KeyframePair], list[KeyframePair]]:
    """Keyframes to train on, and keyframes held out to validate on (``data.validation_frames``)."""
    known = {p.frame for p in pairs}
    for frame in frames:
        if frame not in known:
            raise ConfigError(f"data.validation_frames names frame {frame}, which is not a keyframe in "
                              f"{quoted(keyframes)} (keyframes: {', '.join(map(str, sorted(known)))})")
    training = [p for p in pairs if p.frame not in set(frames)]
    if not training:
        raise ConfigError(f"data.validation_frames holds out every keyframe in {quoted(keyframes)}; "
                          "keep at least one to train on")
    return training, [p for p in pairs if p.frame in set(frames)]


def _resolved_model(model: ModelConfig, channels: int, run: RunFolder, state: dict[str, Any] | None
                    ) -> ModelConfig:
    """The model section with every constructor argument written out; a resumed run must match it."""
    if state is not None and state["arch"] != model.arch:
        # compared before the run's saved options (depth=...) meet another architecture's constructor
        _refuse_other_network(run, state, model)
    args = {"in_channels": channels, "out_channels": channels, **model.args}
    resolved = ModelConfig(model.arch, resolve_network_args(model.arch, args))
    if state is not None and dict(state["arch_args"]) != dict(resolved.args):
        _refuse_other_network(run, state, resolved)
    return resolved


def _refuse_other_network(run: RunFolder, state: dict[str, Any], model: ModelConfig) -> None:
    def describe(args: Any) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(dict(args).items()))

    raise RunError(f"run folder {quoted(run.path)} was made for a '{state['arch']}' network "
                   f"({describe(state['arch_args'])}), not '{model.arch}' ({describe(model.args)})")


def _log_run_files(tracker: Any, run: RunFolder, network: torch.nn.Module, channels: int,
                   device: torch.device) -> None:
    """The run's files and the network itself, for the tracking store."""
    for path in (run.config_path, run.info_path, run.metrics_path, run.model_path):
        if path.is_file():
            tracker.log_artifact(path)
    for sheet in sorted(run.previews.glob("*.png")):
        tracker.log_artifact(sheet, "previews")
    network.eval()
    tracker.log_model(network, torch.zeros(1, channels, 64, 64, device=device))


def _keyframes_hash(pairs: Sequence[KeyframePair]) -> str:
    """What the run learnt from, as one hash: keyframe numbers, sources, targets and masks."""
    digest = hashlib.sha256()
    for pair in pairs:
        digest.update(str(pair.frame).encode())
        for image in (pair.source, pair.target, pair.mask):
            if image is not None:
                digest.update(image.tobytes())
    return digest.hexdigest()[:16]


def _git_commit() -> str:
    """The commit of a source checkout of shotfit, or "" for an installed release."""
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The last loss window and validation under the names the tracker logged them by step."""
    last = metrics["history"][-1] if metrics["history"] else {}
    final = loss_metrics(last)
    if metrics["validations"]:
        final.update({k: float(v) for k, v in metrics["validations"][-1].items() if k != "step"})
    return final
