#!/usr/bin/env python
"""The temporal loss term on the built-in sample: warping error and held-out quality with and without it,
at the same steps, and what it costs per training step.

    python bench/temporal.py [--steps 300] [--weights 0,1,3] [--threads 1] [--jobs 3] [--timing-steps 12]
                             [--out bench-temporal]

Each weight trains the sample exactly as ``shotfit demo`` does (same overrides, seed and steps) with
``loss.temporal`` set, in a process of its own (``--jobs`` at once, ``--threads`` each), then renders the
120 frames and scores the 116 frames nobody fixed (PSNR, SSIM, LPIPS against the clean clip, and the
warping error along the source's flow over consecutive held-out pairs), beside the same scores of the
untouched input. The step cost is measured in one process by alternating steps of a trainer without the
term and one with it (the same network, keyframe batches and seed), so a busy machine slows both alike.
Prints JSON and writes OUT/temporal.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from shotfit import api  # noqa: E402
from shotfit.api.sample import SAMPLE_OVERRIDES, SAMPLE_STEPS  # noqa: E402
from shotfit.archs import build_network, resolve_network_args  # noqa: E402
from shotfit.config import Config, apply_overrides  # noqa: E402
from shotfit.data.augment import PairedAugment  # noqa: E402
from shotfit.data.keyframes import keyframes_to_tensors, pair_keyframes  # noqa: E402
from shotfit.data.temporal import load_frame_pairs  # noqa: E402
from shotfit.device import seeded_build  # noqa: E402
from shotfit.engine.trainer import Trainer  # noqa: E402
from shotfit.files import write_text_atomic  # noqa: E402
from shotfit.io import ColourPipeline, open_shot, resolve_colour  # noqa: E402
from shotfit.losses import build_loss  # noqa: E402
from shotfit.runs.folder import RunFolder  # noqa: E402
from shotfit.sample_footage import SAMPLE_KEYFRAMES, prepare_sample  # noqa: E402
from shotfit.workflows.rendering import evaluate, render  # noqa: E402

SCORES = ("psnr", "ssim", "lpips", "warping_error", "warping_error_truth", "pairs")


def trial(out: Path, weight: float, steps: int, threads: int) -> dict[str, Any]:
    """Train, render and score the sample with ``loss.temporal = weight``."""
    torch.set_num_threads(threads)
    folders = prepare_sample(out / "sample")
    folder = out / f"temporal-{weight:g}"
    shutil.rmtree(folder, ignore_errors=True)
    overrides = (*SAMPLE_OVERRIDES, f"loss.temporal={weight}", f"train.threads={threads}")
    started = time.monotonic()
    summary = api.train(folders["source"], folders["keyframes"], folder / "run", overrides=overrides, steps=steps,
                        tracking=api.TrackingOptions(enabled=False))
    trained = time.monotonic() - started
    render(folder / "run", folders["source"], folder / "render")
    held_out = tuple(f for f in open_shot(folders["source"]).frames if f not in SAMPLE_KEYFRAMES)
    model = evaluate(folder / "render", folders["truth"], source=folders["source"], held_out=held_out)
    untouched = evaluate(folders["source"], folders["truth"], source=folders["source"], held_out=held_out)
    final = summary.metrics["final"]
    return {"weight": weight, "steps": summary.result.steps_done, "train_s": round(trained, 1),
            "model": _scores(model.summary(held_out)), "input": _scores(untouched.summary(held_out)),
            "final_losses": {k: round(v, 5) for k, v in final.items() if k in ("l1", "temporal", "total")}}


def step_cost(out: Path, weight: float, repeats: int, threads: int) -> dict[str, Any]:
    """Seconds per training step without and with the term, measured on alternating steps."""
    torch.set_num_threads(threads)
    folders = prepare_sample(out / "sample")
    cfg = apply_overrides(Config(), SAMPLE_OVERRIDES)
    shot, keys = open_shot(folders["source"]), open_shot(folders["keyframes"])
    colour = ColourPipeline(resolve_colour(shot.format))
    device = torch.device("cpu")
    keyframes = keyframes_to_tensors(pair_keyframes(shot, keys), colour, device)
    args = resolve_network_args(cfg.model.arch, {"in_channels": 3, "out_channels": 3, **cfg.model.args})
    pairs = load_frame_pairs(shot, cfg.data.temporal_pairs, colour, device, out / "sample-flow")
    trainers = []
    for with_term in (False, True):
        loss_cfg = apply_overrides(cfg, [f"loss.temporal={weight if with_term else 0}"]).loss
        network = seeded_build(lambda: build_network(cfg.model.arch, **args), cfg.train.seed)
        trainers.append(Trainer(network, {"arch": cfg.model.arch, "args": args}, build_loss(loss_cfg),
                                PairedAugment(cfg.augment), keyframes, RunFolder(out / "unused"), cfg.train,
                                cfg.data, device, frame_pairs=pairs if with_term else None))
    seconds: list[list[float]] = [[], []]
    for step in range(repeats + 2):
        for index, trainer in enumerate(trainers):
            started = time.perf_counter()
            trainer.train_step()
            trainer.step += 1
            if step >= 2:  # the first steps warm the allocator and oneDNN's kernels
                seconds[index].append(time.perf_counter() - started)
    without, with_term = (float(np.median(s)) for s in seconds)
    return {"threads": threads, "steps_each": repeats, "batch": cfg.data.batch_size,
            "temporal_batch": cfg.data.temporal_batch, "patch": cfg.augment.patch_size,
            "s_per_step_without": round(without, 4), "s_per_step_with": round(with_term, 4),
            "ratio": round(with_term / without, 3)}


def _scores(summary: dict[str, Any]) -> dict[str, Any]:
    return {key: summary[key] for key in SCORES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--steps", type=int, default=SAMPLE_STEPS)
    parser.add_argument("--weights", default="0,1,3", help="comma-separated loss.temporal values (0: without)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=3, help="trials at once, each a process")
    parser.add_argument("--timing-steps", type=int, default=12, help="steps timed with and without (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("bench-temporal"))
    parser.add_argument("--timing-only", action="store_true", help="only the step cost (with the largest weight)")
    parser.add_argument("--trial", type=float, default=None, help=argparse.SUPPRESS)  # one weight, in a child
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    out = args.out.resolve()
    prepare_sample(out / "sample")
    if args.trial is not None:
        result = trial(out, args.trial, args.steps, args.threads)
        write_text_atomic(out / f"trial-{args.trial:g}.json", json.dumps(result, indent=1))
        return 0
    weights = [float(w) for w in args.weights.split(",") if w]
    if args.timing_only:
        print(json.dumps(step_cost(out, max(weights), max(args.timing_steps, 1), args.threads), indent=1))
        return 0
    running: list[subprocess.Popen] = []
    for weight in weights:
        while len(running) >= args.jobs:
            running.pop(0).wait()
        running.append(subprocess.Popen([sys.executable, __file__, "--trial", str(weight), "--steps", str(args.steps),
                                         "--threads", str(args.threads), "--out", str(out)]))
    for process in running:
        process.wait()
    combined: dict[str, Any] = {"steps": args.steps, "threads": args.threads, "torch": torch.__version__,
                                "trials": [json.loads((out / f"trial-{w:g}.json").read_text()) for w in weights]}
    if args.timing_steps > 0:
        combined["step_cost"] = step_cost(out, max(w for w in weights), args.timing_steps, args.threads)
    write_text_atomic(out / "temporal.json", json.dumps(combined, indent=1))
    print(json.dumps(combined, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
