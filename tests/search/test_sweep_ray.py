"""``shotfit sweep`` end to end on a local Ray instance (2 CPUs): 4 tiny trials with ASHA, the best one
trained further (top_k), everything tracked, then resumed. About a minute on two shared cores.

The grid runs the two good learning rates first, so by the time the two useless ones (lr 1e-5) reach
the first rung there are better numbers recorded there, and ASHA stops at least one of them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shots import succeeds, train_tiny, write_graded_shot

from shotfit.config import load_config

pytestmark = pytest.mark.slow

SWEEP = """\
name: tiny
source: shot/plate
keyframes: shot/kf
set: [model.width=4, model.depth=2, augment.patch_size=32, data.batch_size=2, loss.lpips=0,
      train.warmup_steps=0, train.validate_every=10, train.checkpoint_every=10, train.preview_every=1000]
metric: val/psnr
budget: {steps: 30}
strategy: grid
early_stop: {type: asha, grace_period: 10, reduction_factor: 2}
top_k: 1
top_k_budget: {steps: 40}
space:
  loss.l1: [0.5, 1.0]
  train.lr: [0.01, 0.00001]
"""


def test_a_sweep_ranks_tracks_resumes_and_hands_over_a_config_that_trains(tmp_path, ray_tmpdir, isolated_home):
    source, keys = write_graded_shot(tmp_path / "shot", frames=range(1, 9), keyframes=(1, 3, 5, 8))
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(SWEEP)
    out = tmp_path / "out"

    result = succeeds("sweep", sweep, "--out", out, "--cpus", "2", "--device", "cpu")
    assert "5 trials ranked by val/psnr (higher is better" in result.stdout
    records = {p.parent.name: json.loads(p.read_text()) for p in out.glob("trials/*/trial.json")}
    search = {name: r for name, r in records.items() if r["phase"] == "search"}
    assert sorted(search) == ["trial-000", "trial-001", "trial-002", "trial-003"]
    assert {r["status"] for r in search.values()} <= {"finished", "stopped"}
    stopped = [name for name, r in search.items() if r["status"] == "stopped"]
    assert stopped, "ASHA stopped no trial"
    assert all(search[name]["step"] < 30 for name in stopped)
    best_search = max((r for r in search.values() if r["status"] == "finished"), key=lambda r: r["metrics"]["val/psnr"])
    assert records[f"{best_search['name']}-top"]["step"] == 40  # the best config, trained to top_k_budget
    assert f"best: {best_search['name']}-top (val/psnr" in " ".join(result.stdout.split())

    # MLflow: one parent, a child per trial with its params and numbers; stopped ones KILLED, none RUNNING
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert [p.info.run_name for p in parents] == ["tiny"] and parents[0].info.status == "FINISHED"
    assert parents[0].data.params["best.trial"] == f"{best_search['name']}-top"
    assert "best/val/psnr" in parents[0].data.metrics
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"trials.csv", "best.yaml", "metric_vs_params.png", "sweep.json"} <= logged
    children = {r.info.run_name: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id}
    assert sorted(children) == sorted(records)
    for name, child in children.items():
        assert child.info.status == ("KILLED" if records[name]["status"] == "stopped" else "FINISHED"), name
        assert float(child.data.params["loss.l1"]) == records[name]["params"]["loss.l1"]
        assert child.data.metrics["val/psnr"] == pytest.approx(records[name]["metrics"]["val/psnr"])

    # TensorBoard: every loss term of every trial, as the trainer logged it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    finished = next(Path(r["run"]) for r in records.values() if r["status"] == "finished")
    history = json.loads((finished / "metrics.json").read_text())["history"]
    terms = {f"loss/{k}" for k in history[0] if k not in ("step", "lr", "steps_per_s")}
    assert {"loss/l1", "loss/total"} <= terms
    for name, record in records.items():
        events = EventAccumulator(str(Path(record["run"]) / "tensorboard"))
        events.Reload()
        assert terms <= set(events.Tags()["scalars"]), (name, record["status"], events.Tags()["scalars"])

    # the files a user opens
    assert (out / "metric_vs_params.png").stat().st_size > 1000
    assert len((out / "trials.csv").read_text().splitlines()) == 1 + 5

    # resumed: Ray restores both phases, nothing runs again
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/run/model.pt")}
    again = succeeds("sweep", sweep, "--out", out, "--cpus", "2", "--device", "cpu", "--resume")
    assert {p: p.stat().st_mtime_ns for p in out.glob("trials/*/run/model.pt")} == stamps
    assert len(client.search_runs([parents[0].info.experiment_id])) == len(runs)
    assert again.stdout.splitlines()[-1] == result.stdout.splitlines()[-1]

    # the best config trains on every keyframe
    best = load_config(out / "best.yaml")
    assert best.data.validation_frames == () and best.train.steps == 40
    train_tiny(source, keys, tmp_path / "final", steps=2, config=out / "best.yaml")
    info = json.loads((tmp_path / "final" / "run.json").read_text())
    assert info["keyframe_frames"] == [1, 3, 5, 8] and info["validation_frames"] == []
    assert not (isolated_home / "ray_results").exists()  # Tune wrote into the sweep folder, not HOME
