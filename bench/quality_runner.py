"""Running the quality benchmark: every method on every task under every budget, as separate
processes a few at a time, resumable, with one combined JSON at the end.

``OUT/`` holds ``shot/<task>/`` (the tasks' prepared files), ``trials/<task>/<budget>/<method>/``
(each trial's ``trial.json`` spec, ``log.txt``, files and ``result.json``), ``quality.json`` and ``quality.md``.
A trial whose ``result.json`` is there is never run again; one that died half-way runs again from the
start. Each budget gives every trained method one training: a step budget (each method's own
optimiser steps with its own batch recipe) and a wall-clock budget (the fair one).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import shotfit
from bench.quality_report import combine, markdown
from bench.quality_tasks import DEFAULT_TASKS, PROBE_FRAMES, TASKS, prepare_task
from bench.quality_trials import PROBE_CROP, RESULT, SNAPSHOTS, TRAINED, TrialSpec
from shotfit.errors import ConfigError, ShotfitError, quoted
from shotfit.files import write_text_atomic
from shotfit.io import open_shot

log = logging.getLogger(__name__)

COMBINED = "quality.json"
SUMMARY = "quality.md"

# Measured on the 2-core x86 CPU these benchmarks were sized on (shared with other work at the time),
# one torch thread per trial: training seconds per step (each method's own batch), and seconds per
# megapixel to predict a frame and to score it (PSNR, SSIM, LPIPS, high-frequency error, flow and
# warping error). Only the estimate printed before a run uses them.
SECONDS_PER_STEP = {"shotfit": 3.3, "pix2pix": 1.8, "texler": 3.0}
PREDICT_S_PER_MEGAPIXEL = {"shotfit": 6.2, "pix2pix": 4.0, "texler": 49.0, "identity": 0.0}
SCORE_S_PER_MEGAPIXEL = 7.5
TRIAL_OVERHEAD_S = 20.0  # starting Python and torch, reading keyframes, writing checkpoints


@dataclass(frozen=True)
class QualityOptions:
    """What the benchmark runs. ``steps`` and ``minutes`` are the two budgets (either may be None)."""

    out: Path
    tasks: tuple[str, ...] = DEFAULT_TASKS
    methods: tuple[str, ...] = TRAINED
    steps: int | None = None
    minutes: float | None = None
    jobs: int = 2
    threads: int = 1
    device: str = "cpu"
    seed: int = 0
    max_scored: int | None = None
    shared_data: Path | None = None
    overrides: tuple[str, ...] = ()
    peer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise ConfigError(f"unknown quality task {unknown[0]!r} (known: {', '.join(TASKS)})")
        unknown = [m for m in self.methods if m not in TRAINED]
        if unknown:
            raise ConfigError(f"unknown method {unknown[0]!r} (known: {', '.join(TRAINED)})")
        if not self.steps and not self.minutes:
            raise ConfigError("give a step budget (--steps), a wall-clock budget (--minutes), or both")
        if self.jobs < 1 or self.threads < 1:
            raise ConfigError("--jobs and --threads must be at least 1")


def plan_trials(options: QualityOptions) -> list[TrialSpec]:
    """Every trial: the identity once per task, then each trained method under each budget."""
    budgets = [b for b in ({"steps": options.steps} if options.steps else None,
                           {"minutes": options.minutes} if options.minutes else None) if b]
    # shotfit's snapshots are its checkpoints, every k steps; aim for SNAPSHOTS over the step budget
    # (the wall-clock budget reaches a similar step count here; extra ones are thinned when scored)
    every = max(1, (options.steps or 400) // SNAPSHOTS)
    common = {"out": str(options.out), "device": options.device, "threads": options.threads, "seed": options.seed,
              "max_scored": options.max_scored, "snapshot_every": every,
              "shared_data": None if options.shared_data is None else str(options.shared_data)}
    # the identity takes no snapshots: its spec keeps the default, so another --steps reuses its result
    specs = [TrialSpec(task, "identity", **{**common, "snapshot_every": TrialSpec.snapshot_every})
             for task in options.tasks]
    for budget in budgets:
        for task in options.tasks:
            for method in options.methods:
                specs.append(TrialSpec(task, method, **budget, **common,
                                       overrides=options.overrides if method == "shotfit" else (),
                                       peer_options=dict(options.peer_options.get(method, {}))))
    return specs


def estimate_seconds(specs: Sequence[TrialSpec], sizes: Mapping[str, tuple[int, int, int]], jobs: int) -> float:
    """Wall-clock seconds the trials should take on the machine the constants were measured on.

    Args:
        sizes: (height, width, scored frames) per task, from :func:`prepare`.
    """
    total = 0.0
    for spec in specs:
        height, width, scored = sizes[spec.task]
        megapixels = height * width / 1e6
        train, probes = 0.0, 0
        if spec.method != "identity":
            train = spec.minutes * 60.0 if spec.minutes else (spec.steps or 0) * SECONDS_PER_STEP[spec.method]
            probes = (SNAPSHOTS + 1) * PROBE_FRAMES
        probe_megapixels = min(height, PROBE_CROP) * min(width, PROBE_CROP) / 1e6
        predict = (scored * megapixels + probes * probe_megapixels) * PREDICT_S_PER_MEGAPIXEL[spec.method]
        total += TRIAL_OVERHEAD_S + train + predict + scored * megapixels * SCORE_S_PER_MEGAPIXEL
    return total / max(1, min(jobs, len(specs)))


def prepare(options: QualityOptions) -> dict[str, tuple[int, int, int]]:
    """Prepare every task's files once, before any trial starts; (height, width, scored frames) per task."""
    sizes = {}
    for name in options.tasks:
        task = prepare_task(name, options.out, options.shared_data, options.max_scored)
        height, width = open_shot(task.source).size
        sizes[name] = (height, width, len(task.scored))
    return sizes


def run_quality(options: QualityOptions, on_event: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every trial not finished yet, ``options.jobs`` at a time, and write ``OUT/quality.json``.

    Raises:
        ShotfitError: a trial's folder holds the result of other settings, or a trial failed (after
            every other trial has run and the combined JSON of the finished ones is written).
    """
    say = on_event or (lambda message: log.info("%s", message))
    specs = plan_trials(options)
    pending = [spec for spec in specs if not finished(spec)]
    queue = list(pending)
    running: list[tuple[TrialSpec, subprocess.Popen, Any, float]] = []
    failed: list[str] = []
    while queue or running:
        while queue and len(running) < options.jobs:
            spec = queue.pop(0)
            process, log_file = _start(spec, options.threads)
            running.append((spec, process, log_file, time.monotonic()))
            say(f"started {spec.name}")
        time.sleep(0.5)
        for item in list(running):
            spec, process, log_file, started = item
            if process.poll() is None:
                continue
            running.remove(item)
            log_file.close()
            if process.returncode == 0 and (spec.folder / RESULT).is_file():
                say(f"finished {spec.name} in {time.monotonic() - started:.0f} s")
            else:
                failed.append(spec.name)
                say(f"FAILED {spec.name} (exit {process.returncode}): see {quoted(spec.folder / 'log.txt')}")
    results = [json.loads((s.folder / RESULT).read_text(encoding="utf-8")) for s in specs if (s.folder / RESULT).is_file()]
    combined = combine(results, settings(options))
    combined["missing"] = [s.name for s in specs if not (s.folder / RESULT).is_file()]
    write_text_atomic(options.out / COMBINED, json.dumps(combined, indent=1, allow_nan=False) + "\n")
    write_text_atomic(options.out / SUMMARY, markdown(combined))
    if failed:
        raise ShotfitError(f"{len(failed)} trial(s) failed ({', '.join(failed)}); their logs are in "
                           f"{quoted(options.out / 'trials')}; run again to retry them")
    return combined


def finished(spec: TrialSpec) -> bool:
    """True when the trial's result is there; a result made with other settings is an error."""
    path = spec.folder / RESULT
    if not path.is_file():
        return False
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))["spec"]
    except (ValueError, KeyError):
        return False  # damaged: run it again
    if saved != spec.to_dict():
        changed = sorted(k for k in spec.to_dict() if saved.get(k) != spec.to_dict()[k])
        raise ShotfitError(f"{quoted(path)} was made with other settings ({', '.join(changed)} differ): "
                           "give another --out, or delete that trial's folder")
    return True


def settings(options: QualityOptions) -> dict[str, Any]:
    return {"tasks": list(options.tasks), "methods": list(options.methods), "steps": options.steps,
            "minutes": options.minutes, "jobs": options.jobs, "threads_per_trial": options.threads,
            "device": options.device, "seed": options.seed, "max_scored": options.max_scored,
            # shotfit's config overrides (--set): without them two runs' JSON would read as the same config
            "overrides": list(options.overrides),
            "steps_mean": "each method's own optimiser steps with its own batch recipe (see methods)",
            "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                        "python": platform.python_version(), "torch": torch.__version__,
                        "shotfit": shotfit.__version__}}


def _start(spec: TrialSpec, threads: int) -> tuple[subprocess.Popen, Any]:
    """Start one trial in a process of its own; its output goes to the trial's ``log.txt``."""
    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "trial.json"
    write_text_atomic(spec_path, json.dumps(spec.to_dict(), indent=1) + "\n")
    # the same shotfit and the same bench package in every trial, wherever the trial starts
    roots = [str(Path(shotfit.__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1])]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([*roots, *filter(None, [os.environ.get("PYTHONPATH")])]),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    log_file = (folder / "log.txt").open("w", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "bench.quality_trials", str(spec_path)],
                               stdout=log_file, stderr=subprocess.STDOUT, env=env)
    return process, log_file
