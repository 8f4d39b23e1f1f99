"""The training loop: a plain loop a reader can follow from top to bottom.

Every step draws its batch from a generator seeded by (seed, step), and the learning rate is a pure
function of the step, so a run resumed from a checkpoint takes exactly the steps an uninterrupted one
takes: same batches, same optimiser state, same weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import nn

from shotfit import __version__
from shotfit.config import DataConfig, TrainConfig
from shotfit.data.focus import edit_weights, local_edit_weight
from shotfit.data.keyframes import Keyframes
from shotfit.data.temporal import FramePairs, PairPatches, sample_pair_patches
from shotfit.device import autocast, autocast_dtype
from shotfit.engine.schedule import warmup_cosine
from shotfit.errors import ShotfitError
from shotfit.losses.registry import TOTAL
from shotfit.losses.temporal import PairOutputs
from shotfit.runs.folder import RunFolder, model_state, save_state

if TYPE_CHECKING:
    from shotfit.engine.tracking import Tracker

log = logging.getLogger(__name__)

# With only a time budget, the plan's length is set from the speed of the first steps.
CALIBRATION_STEPS = 20
LOG_EVERY = 10
# Where the next batch is drawn in a thread while this step runs: on CUDA drawing launches many small
# kernels (18% of a step on an H200) that overlap the GPU's work; on the CPU it would only compete
# for the cores (there it is under 1% of a step).
PREFETCH_DEVICES = ("cuda",)
# Checkpoints by wall time take at most this share of the training time: where one write is slow (a
# large network, a network disk), they come further apart than train.checkpoint_minutes.
CHECKPOINT_SHARE = 0.02
# A history row (metrics.json) holds these beside the loss terms, which go by their config names and TOTAL.
HISTORY_COLUMNS = ("step", "lr", "steps_per_s")


class BatchSampler(Protocol):
    def sample(self, sources: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None,
               batch_size: int, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: ...


class Loss(Protocol):
    """Called as ``loss(pred, target, weight)``, and with ``frame_pairs=PairOutputs(...)`` on steps that
    drew frame pairs (only when the trainer was given :class:`~shotfit.data.temporal.FramePairs`)."""

    def __call__(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


# One step's batch: keyframe patches (source, target, mask), and the frame pairs' patches when the
# temporal term is on.
Batch = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"] | tuple[
    torch.Tensor, torch.Tensor, "torch.Tensor | None", "PairPatches | None"]


def loss_metrics(row: Mapping[str, float]) -> dict[str, float]:
    """The loss terms of a history row (or of metrics.json's ``final``) under the names the trackers log.

    ``{"step": 10, "lr": 2e-3, "l1": 0.05, "total": 0.08, "val/psnr": 31.0}`` gives
    ``{"loss/l1": 0.05, "loss/total": 0.08}``: every term by its config name, and the weighted sum.
    """
    return {f"loss/{name}": float(value) for name, value in row.items()
            if name not in HISTORY_COLUMNS and "/" not in name}


def _check_term_names(terms: Mapping[str, torch.Tensor]) -> None:
    for name in terms:
        if name == TOTAL or name in HISTORY_COLUMNS or "/" in name:
            raise ShotfitError(f"the loss returned a term named {name!r}, but the training history keeps "
                               f"{', '.join((TOTAL, *HISTORY_COLUMNS))} and names with '/' for itself: rename it")


@dataclass(frozen=True)
class StepReport:
    """What the progress display shows after a step."""

    step: int
    horizon: int
    losses: dict[str, float]  # each term's value by its config name, and "total" (the weighted sum)
    lr: float
    steps_per_s: float
    elapsed_s: float


class StoppedBy(str, Enum):
    """Why a training loop ended; the values are what metrics.json records."""

    STEPS = "steps"  # reached its last step
    TIME = "time"  # the time budget ran out (a final model is still written)
    STOP = "stop"  # asked to stop (should_stop, e.g. on SIGTERM): checkpointed, no model.pt
    ALREADY_DONE = "already done"  # a resumed run already at its last step

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass
class TrainResult:
    steps_done: int
    horizon: int
    elapsed_s: float
    stopped_by: StoppedBy
    final_losses: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainHooks:
    """What watches a training run; every field is optional.

    Attributes:
        preview: ``preview(network, name) -> (sheet_path, numbers)`` writes a contact sheet at preview
            steps and at the end; its numbers (e.g. ``train/keyframe_psnr``) go to metrics and tracking.
        validate: ``validate(network) -> {"val/psnr": ..., ...}`` scores held-out keyframes every
            ``train.validate_every`` steps and at the end.
        tracker: Receives metrics by step and the contact sheets (see ``shotfit.engine.tracking``).
        on_step: Called after every step (progress display).
        on_validate: Called as ``on_validate(step, numbers)`` after each validation (a sweep reports
            them to its scheduler, which may stop the run there).
        on_metrics: Called as ``on_metrics(step, numbers)`` with everything sent to the tracker (a
            cloud job prints them as metric lines).
        should_stop: Asked after every step; True ends the loop there with a checkpoint and no final
            model (a SIGTERM: spot interruption, a farm's kill), so a resume goes on from that step.
    """

    preview: Callable[[nn.Module, str], tuple[Path, dict[str, float]]] | None = None
    validate: Callable[[nn.Module], dict[str, float]] | None = None
    tracker: Tracker | None = None
    on_step: Callable[[StepReport], None] | None = None
    on_validate: Callable[[int, dict[str, float]], None] | None = None
    on_metrics: Callable[[int, dict[str, float]], None] | None = None
    should_stop: Callable[[], bool] | None = None


def masked_targets(pred: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor, outside: float
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets and loss weights for keyframes with an artist's mask.

    Outside the painted region the artist's pixels are trusted only by ``outside`` (0: not at all): the
    target there leans towards the network's own prediction, held constant. A weight map alone would
    not do: the Laplacian, SSIM and LPIPS terms look across the mask's edge, and whatever lies outside
    it (often an empty canvas) would teach them.

    Shape:
        pred, targets: (B, C, H, W); masks: (B, 1, H, W) in [0, 1]. Returns targets and a
        (B, 1, H, W) weight map in [outside, 1] that weights the loss towards the painted region.
    """
    trust = outside + (1.0 - outside) * masks
    return trust * targets + (1.0 - trust) * pred.detach(), trust


def step_seed(seed: int, step: int) -> int:
    """The batch seed of one step: independent of everything that happened before it."""
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


class Trainer:
    """Fits ``network`` to keyframe pairs, writing checkpoints, previews and metrics to ``run``.

    Args:
        network: Any image-to-image nn.Module (B, C, H, W) -> (B, C, H, W) in [-1, 1].
        network_spec: ``{"arch": name, "args": {...}}`` saved beside the weights so the run can be
            rebuilt without its config.
        loss: Callable returning (total, terms).
        sampler: Draws augmented patch batches from the keyframes.
        keyframes: The pairs, already on ``device``.
        run: The run folder.
        train_cfg, data_cfg: The config sections that drive the loop.
        device: Where to train.
        hooks: Previews, validation, tracking and callbacks.
        frame_pairs: Consecutive frames of the shot with their flow, for a loss with a temporal term:
            every step then also draws ``data.temporal_batch`` pairs of patches, runs the network on
            them in the same batch as the keyframes' and hands the outputs to the loss. May be set
            before :meth:`fit` (measuring the flow waits until the run folder exists).
    """

    def __init__(self, network: nn.Module, network_spec: dict[str, Any], loss: Loss, sampler: BatchSampler,
                 keyframes: Keyframes, run: RunFolder, train_cfg: TrainConfig, data_cfg: DataConfig,
                 device: torch.device, hooks: TrainHooks | None = None,
                 frame_pairs: FramePairs | None = None) -> None:
        # NHWC memory: a fifth faster on the CPU (oneDNN), and what tensor cores want on CUDA
        self.memory_format = torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format
        self.network = network.to(device, memory_format=self.memory_format)
        self.network_spec = network_spec
        # the loss's own weights and buffers (LPIPS trunk, embedding networks) live beside the network
        self.loss = loss.to(device) if isinstance(loss, nn.Module) else loss
        self.sampler = sampler
        self.keyframes = keyframes
        self.run = run
        self.cfg = train_cfg
        self.data_cfg = data_cfg
        self.device = device
        self.hooks = hooks or TrainHooks()
        self.frame_pairs = frame_pairs
        # data.edit_weight acts on a local edit only; a grade trains as without it
        self.edit_weight = 1.0 if data_cfg.edit_weight == 1.0 else local_edit_weight(
            keyframes.sources, keyframes.targets, keyframes.masks, data_cfg.edit_weight)
        self.amp_dtype = autocast_dtype(device, train_cfg.amp)
        self.prefetch = device.type in PREFETCH_DEVICES
        self.batch_wait_s = 0.0  # time the loop spent drawing or waiting for batches
        self.optimizer = torch.optim.AdamW(self.network.parameters(), lr=train_cfg.lr,
                                           weight_decay=train_cfg.weight_decay)
        # fp16 needs loss scaling; bf16 and fp32 do not.
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.horizon = train_cfg.steps
        self.elapsed_before = 0.0
        self.history: list[dict[str, float]] = []
        self.previews: list[dict[str, float]] = []
        self.validations: list[dict[str, float]] = []
        self.last_checkpoint_at = time.monotonic()  # when the newest checkpoint was written (or training began)
        self.checkpoint_write_s = 0.0  # how long the newest checkpoint took to write

    # --- state ---------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "shotfit": __version__, "kind": "checkpoint", "step": self.step, "horizon": self.horizon,
            "arch": self.network_spec["arch"], "arch_args": dict(self.network_spec["args"]),
            "network": self.network.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "elapsed_s": self.elapsed_before,
            "history": self.history, "previews": self.previews, "validations": self.validations,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`state`."""
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.horizon = int(state["horizon"])
        self.elapsed_before = float(state["elapsed_s"])
        self.history = list(state["history"])
        self.previews = list(state["previews"])
        self.validations = list(state.get("validations", []))

    # --- the loop ------------------------------------------------------------------------------

    def fit(self, max_steps: int, budget_s: float | None = None, plan_from_budget: bool = False) -> TrainResult:
        """Train until step ``max_steps`` or until ``budget_s`` seconds have passed in this call.

        Args:
            max_steps: The step to stop at (counted from the run's start, so a resumed run goes on).
            budget_s: Wall-clock budget of this call; the loop stops cleanly at the first step past it.
            plan_from_budget: Set the plan (the length of the cosine schedule) from the speed of the
                first steps, so the learning rate has decayed when time runs out. Only for a fresh run.
        """
        if self.step >= max_steps and self.run.model_path.is_file():
            return TrainResult(self.step, self.horizon, self.elapsed_before, StoppedBy.ALREADY_DONE)
        plan_from_speed = plan_from_budget and budget_s is not None and self.step == 0
        if self.step == 0 or max_steps > self.horizon:
            # a resumed run asked to go further than planned stretches its plan to the new end
            if self.step:
                log.info("extending the plan from %d to %d steps", self.horizon, max_steps)
            self.horizon = max_steps
        first_step = self.step
        started = time.monotonic()
        self.last_checkpoint_at = started
        window_start, window_steps, window_wait = started, 0, self.batch_wait_s
        sums: dict[str, float] = {}
        stopped_by = StoppedBy.STEPS
        terms: dict[str, float] = {}
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches") if self.prefetch else None
        upcoming: Future | None = None

        while self.step < max_steps:
            waited = time.monotonic()
            if pool is None:
                batch = self.draw_batch(self.step)
            else:
                batch = (upcoming or pool.submit(self.draw_batch, self.step)).result()
                upcoming = pool.submit(self.draw_batch, self.step + 1) if self.step + 1 < max_steps else None
            self.batch_wait_s += time.monotonic() - waited
            terms = self.train_step(batch)
            self.step += 1
            window_steps += 1
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value
            now = time.monotonic()
            elapsed = now - started
            out_of_time = budget_s is not None and elapsed >= budget_s
            last = self.step == max_steps or out_of_time
            if plan_from_speed and self.step == CALIBRATION_STEPS:
                self.horizon = min(max_steps, max(self.step + 1, int(budget_s * CALIBRATION_STEPS / elapsed)))
                log.info("time budget %.0f s: planning %d steps", budget_s, self.horizon)
            if self.step % LOG_EVERY == 0 or last:
                speed = window_steps / max(now - window_start, 1e-9)
                batch_share = (self.batch_wait_s - window_wait) / max(now - window_start, 1e-9)
                self.log_window({k: v / window_steps for k, v in sums.items()}, speed, batch_share)
                window_start, window_steps, window_wait, sums = now, 0, self.batch_wait_s, {}
            if self.hooks.on_step is not None:
                self.hooks.on_step(StepReport(self.step, self.horizon, terms, self.lr(self.step - 1),
                                              (self.step - first_step) / max(elapsed, 1e-9),
                                              self.elapsed_before + elapsed))
            if not last:
                # no time checkpoint before the plan is set: it would save a plan of UNBOUNDED steps
                if self.step % self.cfg.checkpoint_every == 0 or (
                        self.checkpoint_time_due(now) and not (plan_from_speed and self.step < CALIBRATION_STEPS)):
                    self.checkpoint(elapsed)
                if self.step % self.cfg.validate_every == 0:
                    self.run_validation()
                if self.step % self.cfg.preview_every == 0:
                    self.make_preview(f"step_{self.step:06d}")
            if out_of_time:
                stopped_by = StoppedBy.TIME
                break
            if self.hooks.should_stop is not None and not last and self.hooks.should_stop():
                stopped_by = StoppedBy.STOP
                break
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

        elapsed = time.monotonic() - started
        self.elapsed_before += elapsed
        if self.run.latest_checkpoint() != self.run.checkpoint_path(self.step):  # not just written
            self.checkpoint(0.0)
        if stopped_by is StoppedBy.STOP:  # quickly: a SIGTERM leaves seconds, and the run is not finished
            return TrainResult(self.step, self.horizon, self.elapsed_before, stopped_by, terms)
        self.run_validation()
        self.make_preview("final")
        self.save_model()
        return TrainResult(self.step, self.horizon, self.elapsed_before, stopped_by, terms)

    def lr(self, step: int) -> float:
        return self.cfg.lr * warmup_cosine(step, self.cfg.warmup_steps, self.horizon)

    def draw_batch(self, step: int) -> Batch:
        """The augmented patches of ``step``: the same whenever and wherever they are drawn.

        With frame pairs, their patches are drawn after the keyframes' from the same generator, so the
        keyframe patches are those of a run without the temporal term.
        """
        generator = torch.Generator().manual_seed(step_seed(self.cfg.seed, step))
        kf = self.keyframes
        sources, targets, masks = self.sampler.sample(kf.sources, kf.targets, kf.masks, self.data_cfg.batch_size,
                                                      generator)
        if self.frame_pairs is None:
            return sources, targets, masks
        pairs = sample_pair_patches(self.frame_pairs, sources.shape[-2], sources.shape[-1],
                                    self.data_cfg.temporal_batch, generator)
        return sources, targets, masks, pairs

    def train_step(self, batch: Batch | None = None) -> dict[str, float]:
        """One optimisation step on ``batch`` (default: this step's, drawn now).

        Returns each loss term's value by its config name, and the weighted sum as ``"total"``.
        """
        sources, targets, masks, *rest = batch if batch is not None else self.draw_batch(self.step)
        pairs: PairPatches | None = rest[0] if rest else None
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(self.step)
        self.network.train()
        inputs = sources if pairs is None else torch.cat([sources, pairs.sources, pairs.next_sources])
        with autocast(self.device, self.amp_dtype):
            outputs = self.network(inputs.contiguous(memory_format=self.memory_format))
        outputs = outputs.float()
        pred = outputs[:len(sources)]
        weight = None
        if self.edit_weight != 1.0:  # from the artist's own pixels, before a mask changes the targets
            weight = edit_weights(sources, targets, masks, self.edit_weight)
        if masks is not None:
            targets, trust = masked_targets(pred, targets, masks, self.data_cfg.mask_outside_weight)
            weight = trust if weight is None else weight * trust
        if pairs is None:
            total, terms = self.loss(pred, targets, weight)
        else:
            output, next_output = outputs[len(sources):].chunk(2)
            total, terms = self.loss(pred, targets, weight, frame_pairs=PairOutputs(
                output, next_output, pairs.flows, pairs.visible))
        _check_term_names(terms)
        if not torch.isfinite(total):
            raise ShotfitError(f"the loss became {total.item()} at step {self.step + 1}; lower train.lr "
                               f"(now {self.cfg.lr}), train.weight_decay (now {self.cfg.weight_decay}) or the loss "
                               "weights, or check the keyframes for extreme values")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.network.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = {name: float(value) for name, value in terms.items()}
        values[TOTAL] = float(total.detach())
        return values

    # --- outputs -------------------------------------------------------------------------------

    def checkpoint_time_due(self, now: float) -> bool:
        """Whether ``train.checkpoint_minutes`` have passed since the newest checkpoint (or the start of
        training), stretched so that writing checkpoints takes at most :data:`CHECKPOINT_SHARE` of the time."""
        if self.cfg.checkpoint_minutes <= 0:
            return False
        interval_s = max(self.cfg.checkpoint_minutes * 60.0, self.checkpoint_write_s / CHECKPOINT_SHARE)
        return now - self.last_checkpoint_at >= interval_s

    def checkpoint(self, elapsed_in_call: float) -> None:
        writing = time.monotonic()
        state = self.state()
        state["elapsed_s"] = self.elapsed_before + elapsed_in_call
        path = self.run.save_checkpoint(state, self.step, self.cfg.keep_checkpoints)
        self.last_checkpoint_at = time.monotonic()
        self.checkpoint_write_s = self.last_checkpoint_at - writing
        log.info("checkpoint %s (%.2f s)", path, self.checkpoint_write_s)

    def log_window(self, losses: dict[str, float], steps_per_s: float, batch_share: float = 0.0) -> None:
        """The mean loss terms of the last steps, into the history and the tracker.

        ``batch_share``: the part of the window's time the loop waited for its batches.
        """
        lr = self.lr(self.step - 1)
        self.history.append({"step": self.step, "lr": lr, "steps_per_s": steps_per_s, **losses})
        self.track({**loss_metrics(losses), "lr": lr,
                    "speed/steps_per_s": steps_per_s, "speed/batch_share": batch_share})

    def run_validation(self) -> None:
        if self.hooks.validate is None:
            return
        numbers = self.hooks.validate(self.network)
        self.validations.append({"step": self.step, **numbers})
        self.track(numbers)
        if self.hooks.on_validate is not None:
            self.hooks.on_validate(self.step, numbers)

    def make_preview(self, name: str) -> None:
        if self.hooks.preview is None:
            return
        sheet, numbers = self.hooks.preview(self.network, name)
        self.previews.append({"step": self.step, **numbers})
        self.track(numbers)
        if self.hooks.tracker is not None:
            self.hooks.tracker.log_image("preview", sheet, self.step)

    def track(self, metrics: dict[str, float]) -> None:
        if not metrics:
            return
        if self.hooks.tracker is not None:
            self.hooks.tracker.log_metrics(metrics, self.step)
        if self.hooks.on_metrics is not None:
            self.hooks.on_metrics(self.step, metrics)

    def save_model(self) -> None:
        """The final weights, with what it takes to rebuild the network and nothing to resume."""
        save_state(model_state(self.state()), self.run.model_path)

    def metrics(self, result: TrainResult) -> dict[str, Any]:
        """What metrics.json holds: loss terms by step, validations, previews' numbers, the final state."""
        last = self.history[-1] if self.history else {}
        final = {k: v for k, v in last.items() if k != "step"}
        if self.validations:
            final.update({k: v for k, v in self.validations[-1].items() if k != "step"})
        return {
            "steps_done": result.steps_done, "horizon": result.horizon, "stopped_by": result.stopped_by.value,
            "elapsed_s": round(result.elapsed_s, 3), "final": final,
            "history": self.history, "validations": self.validations, "previews": self.previews,
        }
