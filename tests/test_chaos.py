"""Chaos: ``shotfit train`` and ``shotfit render`` killed with SIGKILL at 20 moments each, then started again
as a render farm would (the same command, ``--resume`` for training), end exactly where an uninterrupted run
ends: the same weights bit for bit, every frame byte for byte, and no stray file left behind.

Half the kills come at a random moment (seeded, so a failure can be replayed: the seed is in the message),
half the instant a new half-written file (``*.partial*``) appears — inside a checkpoint write or a frame
write, the moments a kill is most likely to corrupt something.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from shots import TINY, same_weights, weights
from shots import write_graded_shot as write_shot

KILLS = 20
SEED = 20261207
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _partials(folder: Path) -> list[Path]:
    """Half-written files of shotfit's atomic writes anywhere under ``folder``."""
    return [path for path in folder.rglob("*") if ".partial" in path.name] if folder.is_dir() else []


def _files(folder: Path) -> set[str]:
    """Every file under ``folder``, relative to it."""
    return {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()}


def _kill_at(job: subprocess.Popen[str], watch: Path, random_moment: float | None, limit: float = 120) -> str:
    """SIGKILL ``job`` ``random_moment`` seconds after it wrote its first new file under ``watch`` (so the kill
    lands in the work, not the start-up, however fast the machine), or (None) the moment a new half-written
    file shows there (not one a previous kill left); returns what happened, for the failure message."""
    start, seen, left_over = time.monotonic(), _files(watch), set(_partials(watch))
    working_since = None
    while job.poll() is None and time.monotonic() - start < limit:
        if random_moment is None:
            if set(_partials(watch)) - left_over:
                break
        elif working_since is None:
            if _files(watch) - seen:
                working_since = time.monotonic()
        elif time.monotonic() - working_since >= random_moment:
            break
        time.sleep(0.0005 if random_moment is None else 0.002)
    if job.poll() is not None:
        return f"finished before the kill (exit {job.returncode})"
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    return f"killed at {time.monotonic() - start:.3f} s" + ("" if random_moment is not None else " in a write")


def _run_through_kills(command: Callable[[], list[str]], watch: Path,
                       moments: Callable[[int], float | None]) -> list[str]:
    """Start ``command()`` again after each of the :data:`KILLS` kills, then once more to the end."""
    story = []
    for kill in range(KILLS):
        job = subprocess.Popen(command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        story.append(_kill_at(job, watch, moments(kill)))
        if job.returncode not in (0, -signal.SIGKILL):
            _, stderr = job.communicate()
            raise AssertionError(f"after {story}: exit {job.returncode}: {stderr}")
    final = subprocess.run(command(), capture_output=True, text=True, timeout=600, env=ENV)
    assert final.returncode == 0, f"after {story}: {final.stderr}"
    return story


def _moments(rng: random.Random, low: float, high: float) -> Callable[[int], float | None]:
    """Even kills at a random moment in [low, high) seconds into the work, odd ones inside a write."""
    return lambda kill: rng.uniform(low, high) if kill % 2 == 0 else None


@pytest.mark.slow
def test_training_killed_twenty_times_resumes_to_the_same_weights(tmp_path):
    source, keys = write_shot(tmp_path)
    sets = [arg for item in (*TINY, "train.checkpoint_every=5", "train.keep_checkpoints=2")
            for arg in ("--set", item)]

    def command(out: Path) -> list[str]:
        """What a farm's retry wrapper runs: --resume once the run folder exists."""
        resume = ["--resume"] if out.is_dir() else []
        return [sys.executable, "-m", "shotfit", "train", "--source", str(source), "--target", str(keys),
                "--out", str(out), "--no-track", "--device", "cpu", "--steps", "800", *resume, *sets]

    straight = subprocess.run(command(tmp_path / "straight"), capture_output=True, text=True, timeout=600, env=ENV)
    assert straight.returncode == 0, straight.stderr

    run = tmp_path / "killed"
    # the write kills wait for a checkpoint write: the random ones already land in the start-up writes
    story = _run_through_kills(lambda: command(run), run / "checkpoints", _moments(random.Random(SEED), 0.0, 1.0))

    assert sum("killed" in line for line in story) == KILLS, story
    assert same_weights(weights(run / "model.pt"), weights(tmp_path / "straight" / "model.pt")), \
        f"seed {SEED}: weights differ after {story}"
    assert not _partials(run), f"stray files after {story}: {_partials(run)}"
    assert _files(run) == _files(tmp_path / "straight"), f"after {story}"


@pytest.mark.slow
def test_render_killed_twenty_times_finishes_every_frame_byte_identical(tmp_path):
    frames = range(1, 301)
    source, keys = write_shot(tmp_path, frames=frames, keyframes=(1, 150, 300))
    run = tmp_path / "run"
    trained = subprocess.run(
        [sys.executable, "-m", "shotfit", "train", "--source", str(source), "--target", str(keys), "--out", str(run),
         "--no-track", "--device", "cpu", "--steps", "4", *[a for i in TINY for a in ("--set", i)]],
        capture_output=True, text=True, timeout=600, env=ENV)
    assert trained.returncode == 0, trained.stderr

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "shotfit", "render", "--run", str(run), "--source", str(source),
                "--out", str(out), "--device", "cpu"]

    straight = subprocess.run(command(tmp_path / "straight"), capture_output=True, text=True, timeout=600, env=ENV)
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "killed"
    story = _run_through_kills(lambda: command(out), out, _moments(random.Random(SEED), 0.0, 0.1))

    assert sum("killed" in line for line in story) == KILLS, story
    assert not _partials(out), f"seed {SEED}: stray files after {story}: {_partials(out)}"
    assert _files(out) == _files(tmp_path / "straight") and len(_files(out)) >= len(frames), story
    differing = [name for name in sorted(_files(out))
                 if (out / name).read_bytes() != (tmp_path / "straight" / name).read_bytes()]
    assert not differing, f"seed {SEED}: frames differ after {story}: {differing}"
