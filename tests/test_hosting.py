"""A process that hosts many jobs: library calls leave the process's settings alone, and jobs running
side by side in threads give what each gives alone or in a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch._dynamo  # before any run: see process_state
from shots import TINY, render_tiny, same_weights, train_tiny, weights
from shots import write_graded_shot as write_shot

import shotfit
from shotfit import api
from shotfit.device import seeded_build

STEPS = 6
QUIET = ("train.preview_every=1000", "train.checkpoint_every=1000")


def process_state() -> dict[str, object]:
    """What a library call must not change: RNG, threads, TF32 flags, environment, signal handlers.

    torch itself writes $TORCHINDUCTOR_CACHE_DIR once, when torch._dynamo is first imported (the
    optimisers import it): this module imports it first, so torch's one-time setting is not counted.
    """
    return {"rng": torch.random.get_rng_state(), "threads": torch.get_num_threads(),
            "tf32": (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
            "environ": dict(os.environ),
            "signals": {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}}


def assert_same_state(before: dict[str, object], after: dict[str, object]) -> None:
    assert torch.equal(before["rng"], after["rng"]), "the global RNG moved"
    assert {k: v for k, v in before.items() if k != "rng"} == {k: v for k, v in after.items() if k != "rng"}


def in_threads(*jobs: Callable[[], object]) -> list[object]:
    """Run the jobs at once, one thread each; their results (an exception is raised here)."""
    results: list[object] = [None] * len(jobs)

    def run(i: int, job: Callable[[], object]) -> None:
        try:
            results[i] = job()
        except BaseException as err:  # noqa: BLE001 - handed to the test's thread
            results[i] = err

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


@pytest.fixture(scope="module")
def shot(module_dir: Path) -> tuple[Path, Path]:
    return write_shot(module_dir / "shot")


@pytest.fixture(scope="module")
def alone(module_dir: Path, shot: tuple[Path, Path]) -> dict[int, Path]:
    """Seeds 1 and 2 trained one after the other in this process (seed 2 asking for 2 threads)."""
    runs = {}
    for seed, threads in ((1, 1), (2, 2)):
        runs[seed] = module_dir / f"seed{seed}"
        before = process_state()
        api.train(*shot, runs[seed], overrides=(*TINY, *QUIET, f"train.seed={seed}", f"train.threads={threads}"),
                  steps=STEPS, device="cpu", tracking=api.TrackingOptions(enabled=False))
        assert_same_state(before, process_state())
    return runs


def test_training_in_one_process_matches_separate_processes(module_dir, shot, alone):
    assert not same_weights(weights(alone[1] / "model.pt"), weights(alone[2] / "model.pt"))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(shotfit.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    for seed in (1, 2):
        out = module_dir / f"process{seed}"
        command = [sys.executable, "-m", "shotfit", "train", "--source", shot[0], "--target", shot[1], "--out", out,
                   "--steps", str(STEPS), "--device", "cpu", "--no-track",
                   *[arg for o in (*TINY, *QUIET, f"train.seed={seed}", "train.threads=1") for arg in ("--set", o)]]
        done = subprocess.run([str(c) for c in command], check=False, capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        assert same_weights(weights(out / "model.pt"), weights(alone[seed] / "model.pt"))


def test_a_render_leaves_the_process_alone(alone, shot, tmp_path):
    before = process_state()
    result = api.render(alone[1], shot[0], tmp_path / "render", device="cpu")
    assert result.rendered == 6
    assert_same_state(before, process_state())


def test_trainings_and_a_render_side_by_side_match_each_alone(module_dir, shot, alone, tmp_path):
    reference = render_tiny(alone[1], shot[0], tmp_path / "reference")
    torch.manual_seed(1234)  # whatever the host's own generator holds must not reach the runs
    in_threads(
        lambda: train_tiny(*shot, tmp_path / "seed1", *QUIET, "train.seed=1", steps=STEPS),
        lambda: train_tiny(*shot, tmp_path / "seed2", *QUIET, "train.seed=2", steps=STEPS),
        lambda: render_tiny(alone[1], shot[0], tmp_path / "render"))
    for seed in (1, 2):
        assert same_weights(weights(tmp_path / f"seed{seed}" / "model.pt"), weights(alone[seed] / "model.pt"))
    names = sorted(p.name for p in reference.out_dir.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "render").iterdir()) and len(names) == 6
    for name in names:
        assert (tmp_path / "render" / name).read_bytes() == (reference.out_dir / name).read_bytes()


def test_seeded_build_is_manual_seed_without_moving_the_global_generator():
    torch.manual_seed(7)
    expected = torch.nn.Conv2d(3, 8, 3).weight
    before = torch.random.get_rng_state()
    built = seeded_build(lambda: torch.nn.Conv2d(3, 8, 3), 7).weight
    assert torch.equal(built, expected)
    assert torch.equal(torch.random.get_rng_state(), before)
