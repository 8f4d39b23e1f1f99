"""The quality benchmark: its tasks, face effects, scoring, time-to-reach and ``bench/quality.py`` end to end."""

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

from bench.face_effects import EFFECTS, FACE_CLIPS, apply_effect, write_face_shot
from bench.quality_report import combine, markdown, seconds_to_reach
from bench.quality_runner import QualityOptions, finished, plan_trials, settings
from bench.quality_tasks import Task, _every_other, prepare_task, scored_frames
from bench.quality_trials import TrialSpec, score_task, shotfit_overrides
from shotfit.config import Config, apply_overrides
from shotfit.errors import ConfigError, ShotfitError
from shotfit.evaluate.report import evaluate_frames
from shotfit.io import open_shot, write_image
from shotfit.losses.lpips import load_lpips

REPO = Path(__file__).resolve().parents[2]


def tiny_task(folder: Path) -> Task:
    source, keys = write_shot(folder, frames=range(1, 8), keyframes=(1, 4, 7))
    truth = folder / "truth"
    for frame in range(1, 8):
        write_image(truth / f"plate.{frame:04d}.png", grade(plate(frame)), PNG8)
    scored = _every_other(range(1, 8), (1, 4, 7))
    return Task("tiny", source, keys, truth, (1, 4, 7), scored, scored[:2])


def test_the_identity_scores_what_the_evaluator_gives_the_source(tmp_path):
    task = tiny_task(tmp_path)
    assert task.scored == (3, 5)
    net = load_lpips()
    scores, timing = score_task(task, lambda frame, pixels: pixels, net)
    source = open_shot(task.source)
    expected = evaluate_frames({f: source.read(f) for f in task.scored}, open_shot(task.truth), source,
                               lpips_net=net).summary()
    for key in ("psnr", "ssim", "lpips", "warping_error", "warping_error_truth"):
        assert scores[key] == pytest.approx(expected[key], rel=1e-9)
    assert scores["frames"] == 2 and scores["pairs"] == 1 and 10 < scores["psnr"] < 30
    # a prediction equal to the truth scores perfectly
    truth = open_shot(task.truth)
    perfect, _ = score_task(task, lambda frame, pixels: truth.read(frame), net)
    assert perfect["psnr"] is None and perfect["lpips"] == 0.0  # PSNR of identical frames is inf: no number
    assert timing["predict_s_per_frame"] >= 0 and timing["score_s"] > 0


def test_scored_frames_are_every_other_frame_without_keyframes():
    assert _every_other(range(0, 11), (0, 5)) == (1, 3, 7, 9)
    # a clip that already keeps every other frame (the bedroom preset) is scored on all its non-keys
    assert _every_other(range(0, 13, 2), (0, 6, 12)) == (2, 4, 8, 10)


def test_a_capped_score_keeps_whole_pairs_spread_over_the_shot():
    every_other = _every_other(range(0, 41), (0, 20, 40))  # 1, 3, ..., 39
    scored, pairs = scored_frames(every_other, 6)
    assert pairs == ((1, 3), (19, 21), (37, 39)) and scored == (1, 3, 19, 21, 37, 39)
    scored, pairs = scored_frames(every_other, None)
    assert scored == every_other and len(pairs) == len(every_other) - 1


@pytest.mark.parametrize("effect", sorted(EFFECTS))
def test_face_effects_are_deterministic_and_visible(effect, shared_data):
    clip = open_shot(shared_data / FACE_CLIPS["driving"].path)
    frame = clip.read(56)
    edited = apply_effect(effect, frame)
    assert edited.shape == frame.shape and edited.dtype == np.float32
    assert np.array_equal(edited, apply_effect(effect, frame))
    assert np.abs(edited - frame).mean() > 0.01  # about 3 codes on average, more on the face


def test_a_face_task_writes_its_keyframes_and_truth_once(tmp_path, shared_data):
    clip = shared_data / FACE_CLIPS["driving"].path
    keys, truth = write_face_shot("smooth", clip, (0, 56), (1, 3), tmp_path)
    assert sorted(p.name for p in keys.iterdir()) == ["driving.0000.png", "driving.0056.png"]
    assert open_shot(truth).frames == [1, 3]
    written = {p: p.stat().st_mtime_ns for p in (*keys.iterdir(), *truth.iterdir())}
    write_face_shot("smooth", clip, (0, 56), (1, 3), tmp_path)
    assert {p: p.stat().st_mtime_ns for p in written} == written
    expected = apply_effect("smooth", open_shot(clip).read(3))
    assert np.array_equal(open_shot(truth).read(3), expected)
    with pytest.raises(ShotfitError, match="has no frame 500"):
        write_face_shot("smooth", clip, (0,), (500,), tmp_path)


def test_face_tasks_need_the_shared_footage(tmp_path):
    with pytest.raises(ShotfitError, match=r"the face clip '.*driving.mp4' is not there"):
        prepare_task("face-smooth", tmp_path, shared_data=tmp_path / "none")
    with pytest.raises(ShotfitError, match="unknown quality task 'moon'"):
        prepare_task("moon", tmp_path)


def test_time_to_reach_is_the_first_snapshot_at_or_below_the_target():
    curve = [{"step": 10, "elapsed_s": 5.0, "lpips": 0.4}, {"step": 20, "elapsed_s": 10.0, "lpips": 0.25},
             {"step": 30, "elapsed_s": 15.0, "lpips": 0.3}]
    assert seconds_to_reach(curve, 0.3) == 10.0
    assert seconds_to_reach(curve, 0.4) == 5.0
    assert seconds_to_reach(curve, 0.2) is None


def result(task, method, lpips, curve, steps=100):
    return {"spec": {"task": task, "method": method, "steps": None if method == "identity" else steps,
                     "minutes": None},
            "scores": {"psnr": 30.0, "ssim": 0.9, "lpips": lpips, "warping_error": 0.001, "frames": 5},
            "train": {"steps": 0 if method == "identity" else steps, "seconds": 1.0},
            "probe": {"final_lpips": lpips, "curve": curve}, "recipe": {"batch": 1}}


def test_the_combined_report_says_who_reached_whose_quality_and_when():
    shotfit_curve = [{"step": 50, "elapsed_s": 20.0, "lpips": 0.2}, {"step": 100, "elapsed_s": 40.0, "lpips": 0.1}]
    pix2pix_curve = [{"step": 50, "elapsed_s": 30.0, "lpips": 0.3}, {"step": 100, "elapsed_s": 60.0, "lpips": 0.15}]
    combined = combine([result("a", "shotfit", 0.1, shotfit_curve), result("a", "pix2pix", 0.15, pix2pix_curve),
                        result("a", "identity", 0.25, [])], {"steps": 100})
    reach = combined["time_to_reach"]["a"]["steps-100"]
    assert reach["shotfit"] == {"pix2pix": 40.0, "identity": 20.0}
    assert reach["pix2pix"] == {"shotfit": None, "identity": 60.0}
    assert set(combined["results"]["a"]["steps-100"]) == {"shotfit", "pix2pix", "identity"}
    assert combined["mean_over_tasks"]["steps-100"]["shotfit"]["lpips"] == 0.1
    json.dumps(combined, allow_nan=False)

    table = markdown(combined)
    assert "## steps-100" in table
    assert "| a | pix2pix | 30.00 | - | 0.900 | 0.150 | 1.00e-03 | 100 | 1 |" in table
    assert "| a | shotfit |  | 40 |  | 20 |" in table  # reached pix2pix's quality at 40 s (no texler here)
    assert "| a | pix2pix | - |  |  | 60 |" in table  # never reached shotfit's


def test_trials_are_planned_once_per_budget_and_a_foreign_result_is_refused(tmp_path):
    options = QualityOptions(out=tmp_path, tasks=("sample", "face-smooth"), steps=10, minutes=0.5)
    specs = plan_trials(options)
    assert len(specs) == 2 + 2 * 2 * 3
    assert {s.budget_tag for s in specs} == {"none", "steps-10", "minutes-0.5"}
    spec = specs[-1]
    assert not finished(spec)
    spec.folder.mkdir(parents=True)
    other = TrialSpec.from_dict({**spec.to_dict(), "seed": 3})
    (spec.folder / "result.json").write_text(json.dumps({"spec": other.to_dict()}))
    with pytest.raises(ShotfitError, match=r"result.json' was made with other settings \(seed differ\)"):
        finished(spec)
    with pytest.raises(ConfigError, match="give a step budget"):
        QualityOptions(out=tmp_path, steps=None, minutes=None)
    with pytest.raises(ConfigError, match="unknown method 'cyclegan'"):
        QualityOptions(out=tmp_path, methods=("cyclegan",), steps=1)


def test_another_step_budget_reuses_the_identitys_result(tmp_path):
    # the identity takes no snapshots, so its spec must not change with --steps (it would be scored again)
    short, long = (plan_trials(QualityOptions(out=tmp_path, tasks=("sample",), steps=steps)) for steps in (150, 120))
    assert short[0].method == "identity" and short[0] == long[0]
    short[0].folder.mkdir(parents=True)
    (short[0].folder / "result.json").write_text(json.dumps({"spec": short[0].to_dict()}))
    assert finished(long[0])
    assert short[1].snapshot_every == 18 and long[1].snapshot_every == 15  # shotfit's still follow the budget


def test_the_combined_report_names_shotfits_overrides(tmp_path):
    # two runs that differ only by --set must not read as the same config
    options = QualityOptions(out=tmp_path, tasks=("sample",), methods=("shotfit",), steps=10,
                             overrides=("loss.temporal=3",))
    combined = combine([result("sample", "shotfit", 0.1, []), result("sample", "identity", 0.2, [])],
                       settings(options))
    assert combined["settings"]["overrides"] == ["loss.temporal=3"]
    assert "shotfit's overrides: `loss.temporal=3`" in markdown(combined)
    plain = combine([result("sample", "identity", 0.2, [])], settings(QualityOptions(out=tmp_path, steps=10)))
    assert plain["settings"]["overrides"] == [] and "overrides" not in markdown(plain)


def finite_numbers(value):
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_numbers(v) for v in value)
    return not isinstance(value, float) or np.isfinite(value)


def test_a_trials_seed_is_shotfits_training_seed_and_a_set_seed_wins(tmp_path):
    [spec] = [s for s in plan_trials(QualityOptions(out=tmp_path, tasks=("sample",), steps=10, minutes=None, seed=3))
              if s.method == "shotfit"]
    assert apply_overrides(Config(), shotfit_overrides(spec)).train.seed == 3
    spec = TrialSpec.from_dict({**spec.to_dict(), "overrides": ["train.seed=7"]})
    assert apply_overrides(Config(), shotfit_overrides(spec)).train.seed == 7


@pytest.mark.slow
def test_bench_quality_quick_on_the_sample(tmp_path):
    out = tmp_path / "bench"
    command = [sys.executable, str(REPO / "bench" / "quality.py"), "--quick", "--tasks", "sample", "--jobs", "1",
               "--threads", "1", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "quality: 7 trials" in done.stderr and "about " in done.stderr
    combined = json.loads(done.stdout)
    assert combined == json.loads((out / "quality.json").read_text())
    assert combined["missing"] == [] and finite_numbers(combined)
    budgets = combined["results"]["sample"]
    assert set(budgets) == {"steps-2", "minutes-0.05"}
    for budget, methods in budgets.items():
        assert set(methods) == {"shotfit", "pix2pix", "texler", "identity"}
        for method, row in methods.items():
            assert row["frames"] == 4 and 0 < row["ssim"] <= 1 and row["lpips"] >= 0 and row["warping_error"] >= 0
            assert 5 < row["psnr"] < 60
            if method != "identity":
                assert row["curve"] and row["curve"][-1]["elapsed_s"] == pytest.approx(row["train_seconds"], abs=0.01)
        assert methods["shotfit"]["steps"] == 2 if budget == "steps-2" else methods["shotfit"]["steps"] >= 1
        assert set(combined["time_to_reach"]["sample"][budget]) == {"shotfit", "pix2pix", "texler"}
    assert combined["methods"]["pix2pix"]["batch"] == 1 and combined["methods"]["texler"]["batch"] == 40
    assert combined["methods"]["shotfit"]["config"] == "default"
    # the identity is the untouched compressed clip: about 23 dB against the clean one (SOURCES.md)
    assert 20 < budgets["steps-2"]["identity"]["psnr"] < 27

    results = sorted(out.glob("trials/*/*/*/result.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0 and "started" not in again.stderr  # finished trials are not run again
    assert {p: p.stat().st_mtime_ns for p in results} == before
