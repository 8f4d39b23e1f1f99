"""SIGTERM (a render farm's kill, ``docker stop``) to ``shotfit train``: the step finishes, a checkpoint is
written, the command says how to go on and exits 143; ``--resume`` then finishes the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from shots import TINY
from shots import write_graded_shot as write_shot


@pytest.mark.slow
def test_sigterm_stops_training_with_a_checkpoint_and_resume_finishes(tmp_path):
    source, keys = write_shot(tmp_path)
    run = tmp_path / "run"
    sets = [arg for item in (*TINY, "train.checkpoint_every=5") for arg in ("--set", item)]
    command = [sys.executable, "-m", "shotfit", "train", "--source", str(source), "--target", str(keys),
               "--out", str(run), "--no-track", "--steps", "100000", *sets]
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("step_*.pt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    job.send_signal(signal.SIGTERM)
    stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 143, stderr
    step = max(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("step_*.pt"))
    assert 5 <= step < 100000 and not (run / "model.pt").exists()
    assert f"shotfit: SIGTERM at step {step}: checkpoint saved; 'shotfit train --out {run} --resume' goes on " \
           "from it" in stderr

    resumed = subprocess.run([*command[:command.index("--steps")], "--steps", str(step + 5), "--resume", *sets],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"trained {step + 5} steps" in resumed.stdout and (run / "model.pt").is_file()
