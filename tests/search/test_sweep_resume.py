"""``shotfit sweep`` killed with SIGKILL in the middle of a trial, then ``--resume``: the trial that had finished
is not run again, the one that was training goes on from its checkpoint, the last one runs, and nothing Ray
Tune pickled in the sweep folder is read (every pickle there is garbage by then). A minute or two on two
shared cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shots import succeeds, write_graded_shot

pytestmark = pytest.mark.slow

SWEEP = """\
name: tiny
source: shot/plate
keyframes: shot/kf
set: [model.width=4, model.depth=2, augment.patch_size=32, data.batch_size=2, loss.lpips=0,
      train.warmup_steps=0, train.validate_every=10, train.checkpoint_every=10, train.keep_checkpoints=20,
      train.preview_every=1000]
metric: val/psnr
budget: {steps: 100}
"""
# each search as its sweep file gives it: the trials known ahead (grid), or drawn as scores come (TPE)
SEARCHES = {"grid": "strategy: grid\nspace: {loss.l1: [0.5, 1.0, 2.0]}\n",
            "optuna": "strategy: optuna\nsamples: 3\nseed: 5\nspace: {loss.l1: {uniform: [0.5, 2.0]}}\n"}


def _record(out: Path, name: str) -> dict:
    try:
        return json.loads((out / "trials" / name / "trial.json").read_text())
    except (OSError, ValueError):
        return {}


def _kill_mid_trial(sweep: Path, out: Path, ray_tmpdir: Path) -> None:
    """Run the sweep in its own process (one trial at a time) and SIGKILL it once trial-001 has passed step 20."""
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmpdir), "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "shotfit", "sweep", str(sweep), "--out", str(out), "--cpus", "1",
               "--device", "cpu", "--no-track"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while _record(out, "trial-001").get("step", 0) < 20:
            assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
            assert time.monotonic() < deadline, "trial-001 never reached step 20"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # the sweep's process only: its Ray goes the way Ray goes
        process.wait(30)
        _wait_until_still(out / "trials" / "trial-001")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # what the killed driver's Ray left behind
        except ProcessLookupError:
            pass


def _wait_until_still(folder: Path, quiet_s: float = 5.0) -> None:
    """Wait until nothing in ``folder`` changes for ``quiet_s`` seconds (a trial worker left running would)."""
    def stamp() -> list[tuple[str, int]]:
        return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file())

    before, since = stamp(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = stamp()
        if now != before:
            before, since = now, time.monotonic()


@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_a_killed_sweep_resumes_from_its_own_records_and_checkpoints_without_reading_a_pickle(search, tmp_path,
                                                                                             ray_tmpdir):
    write_graded_shot(tmp_path / "shot", frames=range(1, 9), keyframes=(1, 3, 5, 8))
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(SWEEP + SEARCHES[search])
    out = tmp_path / "out"
    _kill_mid_trial(sweep, out, ray_tmpdir)

    first = out / "trials" / "trial-000"
    assert _record(out, "trial-000")["status"] == "finished"
    finished = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.rglob("*") if p.is_file()}
    killed = _record(out, "trial-001")
    assert killed["status"] == "running" and 20 <= killed["step"] < 100, killed
    checkpoints = out / "trials" / "trial-001" / "run" / "checkpoints"
    kept = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in checkpoints.glob("step_*.pt")}
    assert kept, "no checkpoint to resume from"
    assert not (out / "trials" / "trial-002").exists()
    pickles = list(out.rglob("*.pkl"))
    assert pickles, "Tune wrote no experiment state: nothing to prove it is not read"
    for path in pickles:  # an unpickler would fail (or worse) on these
        path.write_bytes(b"\x80\x05garbage, not a pickle" + os.urandom(64))

    result = succeeds("sweep", sweep, "--out", out, "--cpus", "1", "--device", "cpu", "--no-track", "--resume")

    assert "3 trials ranked by val/psnr" in result.stdout
    # the finished trial: not run again, every file of it as it was
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in first.rglob("*") if p.is_file()} == finished
    # the killed trial went on from its checkpoint: the checkpoints it had are untouched, later ones follow
    for name, (data, mtime) in kept.items():
        assert (checkpoints / name).read_bytes() == data and (checkpoints / name).stat().st_mtime_ns == mtime, name
    steps = sorted(int(p.stem.split("_")[1]) for p in checkpoints.glob("step_*.pt"))
    assert steps[-1] == 100 and len(steps) > len(kept)
    records = {name: _record(out, name) for name in ("trial-000", "trial-001", "trial-002")}
    assert all(r["status"] == "finished" and r["step"] == 100 for r in records.values()), records
    assert records["trial-001"]["params"] == killed["params"]  # the killed trial went on with its own settings
    if search == "grid":
        assert [r["params"]["loss.l1"] for r in records.values()] == [0.5, 1.0, 2.0]
    rows = (out / "trials.csv").read_text().splitlines()[1:]
    assert sorted(row.split(",")[0] for row in rows) == ["trial-000", "trial-001", "trial-002"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["trial-000", "trial-001", "trial-002"]
