"""bench/temporal_tasks.py: the warping error along one frame of motion, and runs side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shots import PNG8, grade
from shots import disc_plate as plate
from shots import write_graded_shot as write_shot

from bench.quality_tasks import Task, _every_other, scored_frames
from bench.quality_trials import to_8bit
from bench.temporal_tasks import (
    next_frame_pairs,
    next_frame_warping_error,
    rows_for,
    source_flows,
    truth_next_frame_warping_error,
)
from shotfit.data.flow import flow_between
from shotfit.errors import ShotfitError
from shotfit.evaluate.warping import pair_warping_error
from shotfit.io import open_shot, write_image

REPO = Path(__file__).resolve().parents[2]


def tiny_task(folder: Path, frames: range) -> Task:
    source, keys = write_shot(folder, frames=frames, keyframes=(frames[0], frames[-1]))
    for frame in frames:
        write_image(folder / "truth" / f"plate.{frame:04d}.png", grade(plate(frame)), PNG8)
    scored, pairs = scored_frames(_every_other(frames, (frames[0], frames[-1])))
    return Task("tiny", source, keys, folder / "truth", (frames[0], frames[-1]), scored, scored[:1], pairs)


def test_one_frame_pairs_start_at_each_scored_pair_and_take_the_shots_next_frame(tmp_path):
    task = tiny_task(tmp_path / "a", range(1, 10))
    assert task.pairs == ((3, 5), (5, 7))  # quality.py's pairs: two frames of motion
    assert next_frame_pairs(task, open_shot(task.source).frames) == [(3, 4), (5, 6)]
    # a clip that keeps every other frame (the bedroom preset): its next frame is two numbers on
    halved = tiny_task(tmp_path / "b", range(0, 13, 2))
    assert halved.pairs[0] == (2, 4)
    assert next_frame_pairs(halved, open_shot(halved.source).frames)[0] == (2, 4)


def test_the_plates_own_error_is_the_evaluators_and_flicker_raises_it(tmp_path):
    task = tiny_task(tmp_path, range(1, 10))
    flows = source_flows(task)
    shot = open_shot(task.source)
    expected = np.mean([pair_warping_error(to_8bit(shot.read(a)[..., :3]), to_8bit(shot.read(b)[..., :3]),
                                           flow_between(shot.read(a)[..., :3], shot.read(b)[..., :3]))
                        for a, b in ((3, 4), (5, 6))])
    steady = next_frame_warping_error(flows, lambda pixels: pixels)
    assert steady == pytest.approx(expected, rel=1e-9)
    rng = np.random.default_rng(0)
    flicker = next_frame_warping_error(flows, lambda pixels: pixels + rng.uniform(-0.05, 0.05, pixels.shape))
    assert flicker > steady + 4e-4  # uniform noise of +-0.05 in each frame adds about 2 * 0.05^2 / 3
    # the truth (a grade of the plate) along the plate's flow: what an output equal to it would score
    truth = open_shot(task.truth)
    assert truth_next_frame_warping_error(task, flows) == pytest.approx(np.mean(
        [pair_warping_error(to_8bit(truth.read(a)[..., :3]), to_8bit(truth.read(b)[..., :3]), flows[(a, b)][2])
         for a, b in ((3, 4), (5, 6))]), rel=1e-9)
    assert truth_next_frame_warping_error(task, flows) != pytest.approx(steady, rel=1e-3)


def fake_result(out: Path, budget: str, method: str, psnr: float, lpips: float, warping: float) -> None:
    folder = out / "trials" / "tiny" / budget / method
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({
        "spec": {"max_scored": 16, "overrides": [] if out.name == "w0" or method == "identity" else ["loss.temporal=3"]},
        "train": {"steps": 0 if method == "identity" else 120, "seconds": 9.5},
        "scores": {"psnr": psnr, "ssim": 0.9, "lpips": lpips, "warping_error": warping, "warping_error_truth": 2e-3,
                   "frames": 16, "pairs": 8}}))


def test_runs_side_by_side_without_rendering_give_the_ratios(tmp_path):
    for out in (tmp_path / "w0", tmp_path / "w3"):
        fake_result(out, "none", "identity", 20.0, 0.2, 4e-4)
    fake_result(tmp_path / "w0", "steps-120", "shotfit", 30.0, 0.10, 6e-4)
    fake_result(tmp_path / "w3", "steps-120", "shotfit", 29.95, 0.12, 3e-4)
    rows = rows_for({"0": tmp_path / "w0", "3": tmp_path / "w3"}, next_frame=False)
    assert [r["run"] for r in rows] == ["untouched plate", "loss.temporal=0", "loss.temporal=3"]
    plate_row, without, with_term = rows
    assert plate_row["warping_error"] == 4e-4 and plate_row["warping_error_next"] is None
    assert plate_row["warping_error_next_truth"] is None
    assert without["warping_error_vs_plate"] == 1.5 and "psnr_change_db" not in without
    assert with_term["overrides"] == ["loss.temporal=3"] and with_term["steps"] == 120
    assert with_term["warping_error_vs_without"] == 0.5 and with_term["warping_error_vs_plate"] == 0.75
    assert with_term["psnr_change_db"] == -0.05 and with_term["lpips_vs_without"] == 1.2
    assert with_term["warping_error_next"] is None and with_term["warping_error_next_vs_without"] is None
    # a folder with two finished budgets of one task is ambiguous
    fake_result(tmp_path / "w3", "steps-60", "shotfit", 29.0, 0.15, 3e-4)
    with pytest.raises(ShotfitError, match="holds 2 finished shotfit trials"):
        rows_for({"0": tmp_path / "w0", "3": tmp_path / "w3"}, next_frame=False)


@pytest.mark.slow
def test_two_quality_runs_side_by_side_with_their_ratios(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = []
    for weight in ("0", "3"):
        out = tmp_path / f"w{weight}"
        extra = [] if weight == "0" else ["--set", f"loss.temporal={weight}"]
        done = subprocess.run([sys.executable, str(REPO / "bench" / "quality.py"), "--quick", "--tasks", "sample",
                               "--methods", "shotfit", "--minutes", "0", "--jobs", "1", "--out", str(out), *extra],
                              capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        runs += ["--run", f"{weight}={out}"]
    rows_path = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, str(REPO / "bench" / "temporal_tasks.py"), *runs, "--out", str(rows_path)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert rows == json.loads(rows_path.read_text())
    assert [r["run"] for r in rows] == ["untouched plate", "loss.temporal=0", "loss.temporal=3"]
    plate_row, without, with_term = rows
    assert with_term["overrides"] == ["loss.temporal=3"] and without["overrides"] == []
    assert plate_row["next_pairs"] == without["next_pairs"] == 2 and all(r["steps"] in (0, 2) for r in rows)
    assert 0 < plate_row["warping_error_next_truth"] < 1
    assert with_term["warping_error_next_vs_without"] == pytest.approx(
        with_term["warping_error_next"] / without["warping_error_next"], abs=1e-4)
    assert with_term["psnr_change_db"] == pytest.approx(with_term["psnr"] - without["psnr"], abs=1e-3)
    assert without["warping_error_vs_plate"] == pytest.approx(
        without["warping_error"] / plate_row["warping_error"], abs=1e-4)
    bad = subprocess.run([sys.executable, str(REPO / "bench" / "temporal_tasks.py"), "--run", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 1 and "give WEIGHT=FOLDER" in bad.stderr
