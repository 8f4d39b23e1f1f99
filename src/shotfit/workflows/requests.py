"""What each command is asked to do, as one frozen object: the CLI, the SageMaker container, sweep
trials and the Python API all build these, so no face parses another's strings.

A field left None was not given: the run's config (or, for training, the config file, the resumed
run's own config and then the defaults) decides it; :mod:`shotfit.workflows.precedence` says which
value wins. Imports nothing heavy: building a request needs neither PyTorch nor onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shotfit.config import Config
from shotfit.engine.tracking_options import TrackingOptions

if TYPE_CHECKING:  # the trainer imports PyTorch, which a request needs not
    from shotfit.engine.trainer import StepReport

PathLike = str | Path


@dataclass(frozen=True)
class TrainRequest:
    """Learn the edit shown by ``keyframes`` (edited frames of ``source``) into the run folder ``out``.

    Args:
        source: The shot: a folder of frames, a frame pattern or a video file.
        keyframes: A folder of edited frames, paired with source frames by frame number.
        out: The run folder (config, checkpoints, previews, metrics, final model).
        config: A config to start from (instead of ``config_file``).
        config_file: A YAML config to start from; with neither, the defaults (or, with ``resume``,
            the run's own config).
        overrides: ``section.key=value`` strings applied on top.
        steps: Train up to this step (wins over ``train.steps``).
        minutes: Stop cleanly after this many minutes (alone: train for that long, planning the
            schedule from measured speed).
        resume: Continue the run in ``out`` from its newest checkpoint.
        masks: Per-keyframe masks weighting the loss: a mask sequence, or ``"alpha"`` for each
            keyframe's own alpha channel.
        device: Wins over ``train.device``.
        first, last: Use only this part of the shot (both included); keyframes outside it are left
            out with a warning.
        colorspace, working_space, ocio_config: Win over ``colour.source``, ``colour.working`` and
            ``colour.config``; see :func:`shotfit.io.resolve_colour`.
        tracking: MLflow and TensorBoard settings (default: both on, stores beside the run).
        allowed_plugins: Loss plug-ins (``loss.extra`` networks, ``"package.module:callable"``) this run
            may import although neither its config nor its overrides name them: a resumed run's saved
            config alone never runs code.
    """

    source: PathLike
    keyframes: PathLike
    out: PathLike
    config: Config | None = None
    config_file: PathLike | None = None
    overrides: Sequence[str] = ()
    steps: int | None = None
    minutes: float | None = None
    resume: bool = False
    masks: PathLike | None = None
    device: str | None = None
    first: int | None = None
    last: int | None = None
    colorspace: str | None = None
    working_space: str | None = None
    ocio_config: PathLike | None = None
    tracking: TrackingOptions | None = None
    allowed_plugins: Sequence[str] = ()

    def __post_init__(self) -> None:
        # a lone string would be read as one item per character
        for name in ("overrides", "allowed_plugins"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))


@dataclass(frozen=True)
class TrainCallbacks:
    """What a caller hears from a training run, and how it stops one; every field is optional.

    Args:
        on_step: Called after every step (progress display).
        on_validate: Called with (step, {"val/psnr", "val/ssim", "val/lpips"}) after each validation
            on ``data.validation_frames``.
        on_metrics: Called with (step, numbers) for everything tracked (loss windows, validations).
        should_stop: Asked after every step; True stops the run there with a checkpoint and nothing
            final written (``stopped_by`` is then ``StoppedBy.STOP``), so a resume goes on from that step.
    """

    on_step: Callable[[StepReport], None] | None = None
    on_validate: Callable[[int, dict[str, float]], None] | None = None
    on_metrics: Callable[[int, dict[str, float]], None] | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass(frozen=True)
class RenderRequest:
    """Render ``source`` through the run folder ``run`` (or an exported ONNX ``model``) into ``out``.

    Args:
        run: A run folder made by training (None with ``engine="onnxruntime"`` and a ``model``).
        source: The shot to render.
        out: The folder for the rendered frames; frames already there are skipped.
        tile, tile_overlap, precision: Win over the run's ``render.*`` settings.
        frames: A frame range (``"10-90"``, ``"10-90x2"``) or the frame numbers, within ``first``/``last``.
        first, last: Limit the shot (as for training).
        review: Also write an H.264 MP4 of the rendered frames there (through the OCIO display view).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        colorspace: The source's OCIO colour space when it differs from the training plates' (the
            renders are written in it too); default: the run's.
        ocio_config: Another OCIO config to find the run's spaces in; default: the one saved in the run.
        mask: A mask sequence, or ``"alpha"`` for the source's alpha: the result is composited over
            the source, replacing the plate only inside the mask.
        engine: ``"torch"`` (the run's weights) or ``"onnxruntime"`` (an ONNX file made by export,
            ``model``, default ``RUN/model.onnx``), which runs without PyTorch.
        model: The ONNX file for the onnxruntime engine.
        workers: Share the frames still to render out as this many Ray tasks at once (runs of
            neighbouring frames), in the Ray this process has started or joined (``ray.init``); the
            frames are the bytes of the plain render. None renders here, in this process.
        cpus_per_worker, gpus_per_worker: What each of those tasks declares to Ray (its torch threads:
            its whole CPUs).
    """

    run: PathLike | None
    source: PathLike
    out: PathLike
    tile: int | None = None
    tile_overlap: int | None = None
    frames: str | Sequence[int] | None = None
    first: int | None = None
    last: int | None = None
    review: PathLike | None = None
    device: str = "auto"
    colorspace: str | None = None
    ocio_config: PathLike | None = None
    mask: PathLike | None = None
    engine: str = "torch"
    model: PathLike | None = None
    precision: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


@dataclass(frozen=True)
class ExportRequest:
    """Write the run's network as ``format`` (``"torchscript"`` or ``"onnx"``) to ``out``, checked.

    Args:
        run: The run folder.
        format: ``"torchscript"`` or ``"onnx"``.
        out: The file to write; default ``RUN/model.torchscript.pt`` or ``RUN/model.onnx``.
        tolerance: Largest allowed |exported - PyTorch| on [0, 1].
    """

    run: PathLike
    format: str
    out: PathLike | None = None
    tolerance: float = 1e-4


@dataclass(frozen=True)
class EvaluateRequest:
    """Score rendered frames against the truth.

    Args:
        pred, truth: Shots (folders, patterns or videos), paired by frame number.
        source: The source shot; its optical flow drives the warping error (else the truth's).
        json_path: Also write every number as JSON there.
        held_out: Frames nobody fixed; their means are reported as the subset "held_out".
        frames: Score only these rendered frames (say, those a truth frame was made for); None: every one.
            Each must have its truth frame; the JSON's ``compared_frames`` lists them.
    """

    pred: PathLike
    truth: PathLike
    source: PathLike | None = None
    json_path: PathLike | None = None
    held_out: Sequence[int] | None = None
    frames: Sequence[int] | None = None
