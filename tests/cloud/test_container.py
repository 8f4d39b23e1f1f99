"""The SageMaker training container, run as SageMaker runs it (``shotfit train``, no options) on a
simulated ``/opt/ml`` tree in a temporary folder: no Docker, no AWS.

A spot interruption is played as SageMaker plays it: SIGTERM (or, worse, SIGKILL) to the process, then
a new start on a fresh tree that holds only the input channels and what the checkpoint folder synced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shots import TINY, same_weights, weights, write_graded_shot

from shotfit.cli.job import EXIT_STOPPED, run_job
from shotfit.cloud.container import train_job
from shotfit.cloud.contract import JobPaths, metric_definitions, parse_metric_line
from shotfit.workflows import training
from shotfit.workflows.requests import TrainRequest

STEPS = 60
HYPERPARAMETERS = {**dict(item.split("=", 1) for item in TINY), "steps": str(STEPS),
                   "train.checkpoint_every": "5", "train.preview_every": "1000",
                   "sagemaker_program": "added-by-the-sdk"}


def job_tree(base: Path, shot: tuple[Path, Path], hyperparameters: dict[str, str]) -> Path:
    """``base`` laid out as SageMaker lays out /opt/ml for a job with the source and keyframes channels."""
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    shutil.copytree(shot[0], base / "input" / "data" / "source")
    shutil.copytree(shot[1], base / "input" / "data" / "keyframes")
    return base


def job_env(base: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SM_", "MLFLOW_"))}
    return {**env, "SAGEMAKER_BASE_DIR": str(base), "TRAINING_JOB_NAME": "shotfit-test-job",
            "PYTHONUNBUFFERED": "1"}


def start_job(base: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shotfit", "train"], env=job_env(base), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def run_job_process(base: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shotfit", "train"], env=job_env(base), text=True,
                          capture_output=True, timeout=300)


def restart_after_interruption(old: Path, new: Path) -> Path:
    """What a restarted spot job finds: fresh channels, the synced checkpoint folder, nothing else."""
    (new / "input").parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(old / "input", new / "input")
    shutil.copytree(old / "checkpoints", new / "checkpoints")
    return new


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_graded_shot(tmp_path_factory.mktemp("shot"))


@pytest.fixture(scope="module")
def finished_job(tmp_path_factory: pytest.TempPathFactory, shot) -> tuple[Path, subprocess.CompletedProcess]:
    """One job trained in one go: the reference for every interrupted one."""
    base = job_tree(tmp_path_factory.mktemp("job") / "opt_ml", shot, HYPERPARAMETERS)
    return base, run_job_process(base)


@pytest.mark.slow
def test_a_job_trains_from_its_hyperparameters_and_leaves_a_render_ready_model(finished_job):
    base, done = finished_job
    assert done.returncode == 0, done.stderr
    model = base / "model" / "run"
    assert {p.name for p in model.iterdir()} >= {"config.yaml", "run.json", "model.pt", "model.onnx",
                                                 "metrics.json", "previews"}
    assert not (model / "checkpoints").exists()  # model.tar.gz carries the model, not the resume state
    config = yaml.safe_load((model / "config.yaml").read_text())
    assert config["train"]["lr"] == 0.01 and config["model"]["width"] == 4 and config["train"]["steps"] == STEPS
    assert json.loads((model / "metrics.json").read_text())["steps_done"] == STEPS
    assert not (base / "output" / "failure").exists()
    assert "ignored sagemaker_program" in done.stderr
    assert f"trained {STEPS} steps" in done.stdout


@pytest.mark.slow
def test_metric_definitions_chart_exactly_the_numbers_the_run_recorded(finished_job):
    base, done = finished_job
    lines = [line for line in done.stdout.splitlines() if parse_metric_line(line) is not None]
    history = json.loads((base / "model" / "run" / "metrics.json").read_text())["history"]
    # SageMaker applies each regex to every log line; these are the values it would chart
    charted = {d["Name"]: [float(m.group(1)) for line in done.stdout.splitlines()
                           if (m := re.search(d["Regex"], line))] for d in metric_definitions()}
    assert charted["step"][: len(history)] == [h["step"] for h in history]
    assert charted["loss/total"] == pytest.approx([h["total"] for h in history], rel=1e-5)
    assert charted["loss/l1"] == pytest.approx([h["l1"] for h in history], rel=1e-5)
    assert charted["loss/lpips"] == []  # switched off by the hyperparameters, so never printed
    assert len(lines) == len(history) + 1  # one per 10-step window, and the final preview's numbers


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_spot_interruption_resumes_to_the_weights_of_an_uninterrupted_job(tmp_path, shot, finished_job, how):
    first = job_tree(tmp_path / "first" / "opt_ml", shot, HYPERPARAMETERS)
    job = start_job(first)
    for line in job.stdout:  # interrupt once the job has trained 10 steps
        if (parsed := parse_metric_line(line)) is not None and parsed[0] >= 10:
            job.send_signal(how)
            break
    stdout, stderr = job.communicate(timeout=120)
    checkpoints = sorted((first / "checkpoints" / "run" / "checkpoints").glob("step_*.pt"))
    stopped_at = int(checkpoints[-1].stem.split("_")[1])
    if how == signal.SIGTERM:  # the notice: the step finishes and is checkpointed, the job exits cleanly
        assert job.returncode == EXIT_STOPPED, stderr
        assert 10 <= stopped_at < STEPS
        assert f"SIGTERM at step {stopped_at}: checkpoint saved" in stderr
        # what SageMaker uploads after StopTrainingJob: that step's weights, renderable, no exports yet
        stopped = first / "model" / "run"
        assert same_weights(weights(stopped / "model.pt"), weights(checkpoints[-1]))
        assert (stopped / "config.yaml").is_file() and not (stopped / "model.onnx").exists()
        assert not (first / "checkpoints" / "run" / "model.pt").exists()  # the run itself is not finished
    else:  # no notice: the newest periodic checkpoint (every 5 steps) is where it goes on from
        assert job.returncode == -signal.SIGKILL
        assert 5 <= stopped_at < STEPS and stopped_at % 5 == 0
        assert not (first / "model" / "run").exists()
    assert not (first / "output" / "failure").exists()

    second = restart_after_interruption(first, tmp_path / "second" / "opt_ml")
    done = run_job_process(second)
    assert done.returncode == 0, done.stderr
    assert f"resuming {second / 'checkpoints' / 'run'} from step {stopped_at}" in done.stderr
    reference = finished_job[0] / "model" / "run" / "model.pt"
    assert same_weights(weights(second / "model" / "run" / "model.pt"), weights(reference))


def test_a_missing_channel_fails_with_the_reason_in_the_failure_file(tmp_path, shot, capsys):
    base = job_tree(tmp_path / "opt_ml", shot, HYPERPARAMETERS)
    shutil.rmtree(base / "input" / "data" / "keyframes")
    assert run_job({"SAGEMAKER_BASE_DIR": str(base)}) == 1
    reason = (base / "output" / "failure").read_text()
    assert reason.count("\n") == 1 and "input channel 'keyframes'" in reason
    assert str(base / "input" / "data" / "keyframes") in reason and "does not exist" in reason
    assert capsys.readouterr().err.strip() == reason.strip()
    assert not (base / "checkpoints" / "run").exists() and not (base / "model" / "run").exists()


@pytest.mark.parametrize(("key", "value", "fragments"), [
    ("learning_rate", "0.1", ["unknown hyperparameter 'learning_rate'", "train.lr"]),
    ("steps", "ten", ["'steps' must be an integer", "'ten'"]),
    ("export", "gif", ["export format 'gif'", "onnx, torchscript, none"]),
    ("train.lr", "-1", ["train.lr"]),
    ("model.arch", "unet9", ["unet9"]),
])
def test_bad_hyperparameters_fail_naming_the_key(tmp_path, shot, key, value, fragments):
    base = job_tree(tmp_path / "opt_ml", shot, {**HYPERPARAMETERS, key: value})
    assert run_job({"SAGEMAKER_BASE_DIR": str(base)}) == 1
    reason = (base / "output" / "failure").read_text()
    assert reason.startswith("shotfit: ") and reason.count("\n") == 1
    assert all(fragment in reason for fragment in fragments), reason
    assert not (base / "model" / "run").exists()


def test_sm_variables_move_single_paths(tmp_path, shot):
    # sagemaker-training-toolkit's variables win over the base folder, one path at a time
    base = job_tree(tmp_path / "opt_ml", shot, HYPERPARAMETERS)
    elsewhere = tmp_path / "frames"
    shutil.move(base / "input" / "data" / "source", elsewhere)
    env = {"SAGEMAKER_BASE_DIR": str(base), "SM_CHANNEL_SOURCE": str(elsewhere),
           "SM_OUTPUT_DIR": str(tmp_path / "out")}
    shutil.rmtree(base / "input" / "data" / "keyframes")
    assert run_job(env) == 1  # the keyframes are missing: the failure lands in SM_OUTPUT_DIR
    reason = (tmp_path / "out" / "failure").read_text()
    assert "input channel 'keyframes'" in reason and "'source'" not in reason


def test_train_without_options_outside_a_job_is_a_usage_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "shotfit", "train"], text=True, capture_output=True,
                          env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path / "nothing")}, timeout=120)
    assert done.returncode == 2
    assert "Missing option '--source'" in done.stderr and "hyperparameters.json does not exist" in done.stderr


def test_a_job_asks_for_only_what_its_hyperparameters_give(tmp_path, shot, monkeypatch):
    """Options it was not given stay None in the request, so the run's config decides them (not a
    comparison with the defaults)."""
    asked: list[TrainRequest] = []
    monkeypatch.setattr(training, "run_training", lambda request, callbacks: asked.append(request) or 1 / 0)
    base = job_tree(tmp_path / "opt_ml", shot, {"train.steps": "7", "minutes": "3", "device": "cpu"})
    with pytest.raises(ZeroDivisionError):
        train_job(JobPaths.from_environment({"SAGEMAKER_BASE_DIR": str(base)}), {})
    (request,) = asked
    assert request.overrides == ("train.steps=7",) and request.steps is None and request.minutes == 3.0
    assert (request.device, request.first, request.colorspace, request.resume) == ("cpu", None, None, False)
    assert request.out == base / "checkpoints" / "run"
