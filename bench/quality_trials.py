"""The quality benchmark's trial: one method trained on one task under one budget, then scored.

Methods:

- ``shotfit``: the product's default, trained through :func:`shotfit.api.train` with the default
  config and only bookkeeping overrides (threads, checkpoint frequency and count, no mid-run
  previews, no tracking); rendered through the run's own :class:`~shotfit.infer.predictor.Predictor`.
- ``pix2pix`` and ``texler``: the peer baselines of :mod:`bench.peers`.
- ``identity``: the untouched plate (trains nothing; one trial per task).

Every prediction is rounded to 8-bit codes, as a delivered frame of these 8-bit shots would be, and
scored in memory with shotfit's own evaluator on the task's scored frames (PSNR, SSIM, LPIPS, and
the warping error along the source's flow). Snapshots taken during training (shotfit's checkpoints,
which store the step and ``elapsed_s``; the peers' own, which store the same) are scored on the
centres of the task's probe frames (LPIPS) after training, so each method's quality is known
against its training seconds; the snapshot files are then deleted (the final weights stay).

Run as ``python -m bench.quality_trials TRIAL.json``: the trial's result lands in
``<trial folder>/result.json``, written atomically at the very end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.peers import build_peer, predict_pixels, train_peer
from bench.quality_tasks import Task, prepare_task
from shotfit import api
from shotfit.archs import build_network
from shotfit.compare.archs import BenchBudget
from shotfit.data.keyframes import keyframes_to_tensors, pair_keyframes
from shotfit.device import pick_device
from shotfit.errors import ShotfitError
from shotfit.evaluate.metrics import lpips
from shotfit.evaluate.report import evaluate_frames
from shotfit.files import write_text_atomic
from shotfit.infer.predictor import Predictor, load_network
from shotfit.io import ColourPipeline, colour_of_run, open_shot, resolve_colour
from shotfit.losses.lpips import load_lpips
from shotfit.runs.folder import RunFolder, load_state

log = logging.getLogger(__name__)

METHODS = ("shotfit", "pix2pix", "texler", "identity")
TRAINED = ("shotfit", "pix2pix", "texler")
RESULT = "result.json"
SNAPSHOTS = 8
# Snapshots are scored on the centre 256 x 256 of the probe frames: Texler et al.'s generator works at
# full resolution and takes about 50 s per megapixel on one CPU thread.
PROBE_CROP = 256
# Bookkeeping only: no tracking, no mid-run contact sheets, every checkpoint kept until it is scored.
SHOTFIT_BOOKKEEPING = ("train.preview_every=1000000000", "train.keep_checkpoints=1000000")

Predict = Callable[[int, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class TrialSpec:
    """One trial: a method on a task under a budget (none for the identity).

    ``snapshot_every`` is shotfit's ``train.checkpoint_every`` (its snapshots); the peers take
    :data:`SNAPSHOTS` snapshots spread over their budget. ``peer_options`` shrink a peer (tests).
    ``max_scored`` keeps only that many scored frames (the quick mode).
    """

    task: str
    method: str
    out: str
    steps: int | None = None
    minutes: float | None = None
    device: str = "cpu"
    threads: int = 1
    seed: int = 0
    snapshot_every: int = 25
    max_scored: int | None = None
    shared_data: str | None = None
    overrides: tuple[str, ...] = ()
    peer_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def budget(self) -> BenchBudget | None:
        return None if self.method == "identity" else BenchBudget(steps=self.steps, minutes=self.minutes)

    @property
    def budget_tag(self) -> str:
        return "none" if self.budget is None else self.budget.tag

    @property
    def folder(self) -> Path:
        return Path(self.out) / "trials" / self.task / self.budget_tag / self.method

    @property
    def name(self) -> str:
        return f"{self.task}/{self.budget_tag}/{self.method}"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "overrides": list(self.overrides)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialSpec:
        return cls(**{**data, "overrides": tuple(data.get("overrides", ()))})


def run_trial(spec: TrialSpec) -> dict[str, Any]:
    """Train, score and time one trial; write and return its result."""
    if spec.method not in METHODS:
        raise ShotfitError(f"unknown method {spec.method!r} (known: {', '.join(METHODS)})")
    torch.set_num_threads(spec.threads)
    device = pick_device(spec.device)
    task = prepare_task(spec.task, Path(spec.out), None if spec.shared_data is None else Path(spec.shared_data),
                        spec.max_scored)
    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    lpips_net = load_lpips().to(device)
    result: dict[str, Any] = {"trial": spec.name, "spec": spec.to_dict(), "device": str(device),
                              "threads": spec.threads, "torch": torch.__version__}
    if spec.method == "identity":
        predict: Predict = lambda frame, pixels: pixels  # noqa: E731
        curve: list[dict[str, float]] = []
        result["train"] = {"steps": 0, "seconds": 0.0}
    elif spec.method == "shotfit":
        predict, curve, result["train"], result["recipe"] = _shotfit(spec, task, folder, device, lpips_net)
    else:
        predict, curve, result["train"], result["recipe"] = _peer(spec, task, folder, device, lpips_net)
    result["scores"], result["timing"] = score_task(task, predict, lpips_net)
    # the curve's last point is the final weights (shotfit's last checkpoint, the peers' model.pt)
    final = curve[-1]["lpips"] if curve else probe_lpips(task, predict, lpips_net)
    result["probe"] = {"frames": list(task.probe), "curve": curve, "final_lpips": final}
    write_text_atomic(folder / RESULT, json.dumps(result, indent=1, allow_nan=False) + "\n")
    return result


def score_task(task: Task, predict: Predict, lpips_net: Any) -> tuple[dict[str, Any], dict[str, float]]:
    """The evaluator's means over the task's scored frames, and the seconds spent predicting and scoring."""
    started = time.monotonic()
    predictions = {}
    with open_shot(task.source) as source:
        for frame, pixels in source.iter_frames(task.scored):
            predictions[frame] = to_8bit(predict(frame, pixels[..., :3]))
    predicted = time.monotonic()
    with open_shot(task.source) as source:
        # pairs of scored frames are two frames apart by design; the evaluator's warning would repeat
        quiet = logging.getLogger("shotfit.evaluate.report")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            report = evaluate_frames(predictions, open_shot(task.truth), source, lpips_net=lpips_net)
        finally:
            quiet.setLevel(level)  # the caller's logging as it was
    summary = report.summary()
    scores = {key: _finite(summary[key]) for key in ("psnr", "psnr_edited", "ssim", "lpips")}
    # only pairs one step of the every-other-frame list apart (scored frames may be spread pairs)
    counted = set(task.pairs) if task.pairs else None
    pairs = [p for p in report.pairs if (counted is None or (p.frame, p.next_frame) in counted)
             and np.isfinite(p.prediction)]
    scores["warping_error"] = _finite(np.mean([p.prediction for p in pairs])) if pairs else None
    truths = [p.truth for p in pairs if p.truth is not None]
    scores["warping_error_truth"] = _finite(np.mean(truths)) if truths else None
    scores.update(frames=summary["frames"], pairs=len(pairs))
    seconds = {"predict_s_per_frame": (predicted - started) / max(len(predictions), 1),
               "score_s": time.monotonic() - predicted}
    return scores, seconds


def probe_lpips(task: Task, predict: Predict, lpips_net: Any) -> float:
    """Mean LPIPS of ``predict`` on the centres of the task's probe frames (:data:`PROBE_CROP`)."""
    distances = [lpips(to_8bit(predict(frame, source)), truth, lpips_net) for frame, source, truth in _probe(task)]
    return float(np.mean(distances))


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """A prediction as the 8-bit frame a user would get: clipped, rounded to codes, back to [0, 1]."""
    return (np.rint(np.clip(pixels, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def snapshot_curve(task: Task, snapshots: Sequence[Path], predictor_of: Callable[[dict[str, Any]], Predict],
                   lpips_net: Any, most: int = SNAPSHOTS + 1) -> list[dict[str, float]]:
    """Probe LPIPS of each snapshot (at most ``most``, evenly picked, the last always), with its step and
    training seconds; the files are deleted once scored."""
    chosen = list(snapshots)
    if len(chosen) > most:
        picks = {round(i * (len(chosen) - 1) / (most - 1)) for i in range(most)}
        chosen = [path for i, path in enumerate(chosen) if i in picks]
    curve = []
    for path in chosen:
        state = load_state(path)
        curve.append({"step": int(state["step"]), "elapsed_s": round(float(state["elapsed_s"]), 3),
                      "lpips": probe_lpips(task, predictor_of(state), lpips_net)})
    for path in snapshots:
        path.unlink(missing_ok=True)
    return curve


# --- methods --------------------------------------------------------------------------------------

def shotfit_overrides(spec: TrialSpec) -> tuple[str, ...]:
    """The settings a shotfit trial trains with: its threads, its snapshots, the trial's seed as shotfit's own
    training seed (``--seed`` used to reach only the peers), then the user's ``--set`` (which win)."""
    return (f"train.threads={spec.threads}", f"train.checkpoint_every={spec.snapshot_every}",
            f"train.seed={spec.seed}", *SHOTFIT_BOOKKEEPING, *spec.overrides)


def _shotfit(spec: TrialSpec, task: Task, folder: Path, device: Any, lpips_net: Any):
    run = RunFolder(folder / "run")
    if run.path.exists():  # a trial that died half-way starts again
        shutil.rmtree(run.path)
    overrides = shotfit_overrides(spec)
    summary = api.train(task.source, task.keyframes, run.path, overrides=overrides, steps=spec.steps,
                        minutes=spec.minutes, device=spec.device, tracking=api.TrackingOptions(enabled=False))
    cfg = summary.config
    colour = ColourPipeline(colour_of_run(run.read_info().colour_record()))

    def predictor(network: Any) -> Predict:
        frames = Predictor(network, colour, device, cfg.render.tile, cfg.render.tile_overlap, cfg.render.blend)
        return lambda frame, pixels: frames(pixels)

    def from_state(state: dict[str, Any]) -> Predict:
        network = build_network(state["arch"], **state["arch_args"])
        network.load_state_dict(state["network"])
        return predictor(network)

    curve = snapshot_curve(task, run.list_checkpoints(), from_state, lpips_net)
    network, _ = load_network(run)
    train = {"steps": summary.result.steps_done, "seconds": round(summary.result.elapsed_s, 3),
             "stopped_by": summary.result.stopped_by, "horizon": summary.result.horizon}
    recipe = {"config": "default", "arch": cfg.model.arch, "batch": cfg.data.batch_size,
              "patch": cfg.augment.patch_size, "optimiser": {"adamw_lr": cfg.train.lr}, "overrides": list(overrides)}
    return predictor(network), curve, train, recipe


def _peer(spec: TrialSpec, task: Task, folder: Path, device: Any, lpips_net: Any):
    for stale in (folder / "snapshots").glob("*.pt"):  # from a trial that died half-way
        stale.unlink()
    shot = open_shot(task.source)
    pairs = pair_keyframes(shot, open_shot(task.keyframes))
    keyframes = keyframes_to_tensors(pairs, ColourPipeline(resolve_colour(shot.format)), device)
    torch.manual_seed(spec.seed)
    peer = build_peer(spec.method, keyframes.sources, keyframes.targets, device, **spec.peer_options)
    trained = train_peer(peer, spec.budget, folder, seed=spec.seed, snapshots=SNAPSHOTS)

    def predict(frame: int, pixels: np.ndarray) -> np.ndarray:
        return predict_pixels(peer, pixels, frame, device)

    def from_state(state: dict[str, Any]) -> Predict:
        peer.generator.load_state_dict(state["network"])
        return predict

    snapshots = sorted((folder / "snapshots").glob("step_*.pt"))
    final = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    curve = snapshot_curve(task, snapshots, from_state, lpips_net)
    curve.append({"step": final["step"], "elapsed_s": round(final["elapsed_s"], 3),
                  "lpips": probe_lpips(task, from_state(final), lpips_net)})
    train = {"steps": trained.steps, "seconds": round(trained.elapsed_s, 3), "stopped_by": trained.stopped_by,
             "loss_first": trained.history[0] if trained.history else None,
             "loss_last": trained.history[-1] if trained.history else None}
    return predict, curve, train, peer.recipe()


def _probe(task: Task) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """The probe frames' (frame, source, truth), read once per task and process."""
    cached = _PROBES.get(task)
    if cached is None:
        truth = open_shot(task.truth)
        with open_shot(task.source) as source:
            cached = [(frame, _centre(pixels[..., :3]), _centre(truth.read(frame)[..., :3]))
                      for frame, pixels in source.iter_frames(task.probe)]
        _PROBES[task] = cached
    return cached


_PROBES: dict[Task, list[tuple[int, np.ndarray, np.ndarray]]] = {}


def _centre(pixels: np.ndarray, size: int = PROBE_CROP) -> np.ndarray:
    """The frame's centre ``size`` x ``size`` (the whole frame where it is smaller)."""
    height, width = pixels.shape[:2]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return np.ascontiguousarray(pixels[top:top + size, left:left + size])


def _finite(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.quality_trials TRIAL.json``: run one trial in this process."""
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")  # into the trial's log
    if len(args) != 1:
        log.error("usage: python -m bench.quality_trials TRIAL.json")
        return 2
    spec = TrialSpec.from_dict(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    try:
        run_trial(spec)
    except ShotfitError as err:
        log.error("shotfit: %s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
