"""The sagemaker image, run as SageMaker runs it: ``IMAGE train`` as root on a simulated ``/opt/ml`` (a
temporary folder mounted there, laid out as tests/cloud/test_container.py lays it out), no network.

What a pipeline TD checks after building it: a job trains and leaves model.onnx, the metric lines
SageMaker charts, files owned by the unprivileged user; a stop (SIGTERM to the container, as ``docker
stop`` and a spot notice send it) ends in 143 with a checkpoint, and a restart resumes to the weights
of an uninterrupted job; bad input ends in 1 with the reason in the failure file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime
import pytest
from engines import Engine
from shots import TINY, grade, same_weights, weights, write_graded_shot

from shotfit.cloud.contract import metric_definitions, parse_metric_line

pytestmark = pytest.mark.slow

STEPS = 120
# the tiny network, with the LPIPS term on: its weights are the one file the image keeps of stlpips-pytorch
HYPERPARAMETERS = {**dict(item.split("=", 1) for item in TINY), "loss.lpips": "0.1", "steps": str(STEPS),
                   "train.checkpoint_every": "5", "train.preview_every": "1000"}
USER = 1000  # the image's unprivileged user
JOB_TIMEOUT = 600


def job_tree(base: Path, shot: tuple[Path, Path], hyperparameters: dict[str, str]) -> Path:
    """``base`` laid out as SageMaker lays out /opt/ml for a job with the source and keyframes channels;
    model/, output/ and checkpoints/ root's, as SageMaker mounts them."""
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    shutil.copytree(shot[0], base / "input" / "data" / "source")
    shutil.copytree(shot[1], base / "input" / "data" / "keyframes")
    for folder in ("model", "output", "checkpoints"):
        (base / folder).mkdir(mode=0o755)
    return base


def job_command(engine: Engine, image: str, base: Path, name: str) -> list[str]:
    return engine.run_args(image, "train", name=name, mounts=[(base, "/opt/ml")],
                           env={"TRAINING_JOB_NAME": name})


def run_job(engine: Engine, image: str, base: Path, name: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(job_command(engine, image, base, name), capture_output=True, text=True,
                              timeout=JOB_TIMEOUT)
    finally:
        engine.remove(name)


def container_pid(engine: Engine, name: str) -> int:
    """The host's process id of the container's first process (shotfit, once the entry point exec'd it)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = engine("inspect", "--format", "{{.State.Pid}}", name, check=False)
        if done.returncode == 0 and done.stdout.strip() not in ("", "0"):
            return int(done.stdout.strip())
        time.sleep(0.2)
    raise AssertionError(f"container {name} did not start")


def owners(folder: Path) -> set[int]:
    return {path.stat().st_uid for path in [folder, *folder.rglob("*")]}


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_graded_shot(tmp_path_factory.mktemp("shot"))


@pytest.fixture(scope="module")
def finished_job(engine, sagemaker_image, shot, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """One job trained in one go: the reference for the interrupted one."""
    base = job_tree(tmp_path_factory.mktemp("job") / "opt_ml", shot, HYPERPARAMETERS)
    return base, run_job(engine, sagemaker_image, base, f"shotfit-test-job-{os.getpid()}")


def test_a_job_trains_as_the_user_and_leaves_an_onnx_file_that_does_the_edit(finished_job, shot):
    base, done = finished_job
    assert done.returncode == 0, done.stderr
    assert f"trained {STEPS} steps" in done.stdout
    model = base / "model" / "run"
    assert {p.name for p in model.iterdir()} >= {"config.yaml", "run.json", "model.pt", "model.onnx", "metrics.json"}
    assert not (base / "output" / "failure").exists()
    # shotfit ran as the unprivileged user, never as root: every file it wrote is the user's
    for folder in (base / "model" / "run", base / "checkpoints"):
        assert owners(folder) == {USER}, folder
    # the job's MLflow store (sqlite, beside the run) holds the run and its logged network
    assert (base / "checkpoints" / "mlflow.db").is_file()
    assert list((base / "checkpoints").glob("mlartifacts/models/*/artifacts/data/model.pt2"))
    # the exported file, run here by onnxruntime, does the edit it learned on a keyframe's source frame
    session = onnxruntime.InferenceSession(str(model / "model.onnx"), providers=["CPUExecutionProvider"])
    frame = cv2.cvtColor(cv2.imread(str(shot[0] / "plate.0004.png")), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    (edited,) = session.run(None, {"image": frame.transpose(2, 0, 1)[None]})
    edited = edited[0].transpose(1, 2, 0)
    assert edited.shape == frame.shape
    wanted = grade(frame)
    assert np.abs(edited - wanted).mean() < 0.5 * np.abs(frame - wanted).mean()


def test_the_metric_lines_chart_the_numbers_the_run_recorded(finished_job):
    base, done = finished_job
    history = json.loads((base / "model" / "run" / "metrics.json").read_text())["history"]
    charted = {d["Name"]: [float(m.group(1)) for line in done.stdout.splitlines()
                           if (m := re.search(d["Regex"], line))] for d in metric_definitions()}
    assert charted["step"][: len(history)] == [h["step"] for h in history]
    assert charted["loss/total"] == pytest.approx([h["total"] for h in history], rel=1e-5)
    assert charted["loss/lpips"] == pytest.approx([h["lpips"] for h in history], rel=1e-5)
    assert all(value > 0 for value in charted["loss/lpips"])


def test_a_stopped_container_checkpoints_and_a_restart_resumes_to_the_same_weights(
        engine, sagemaker_image, shot, finished_job, tmp_path, container_name):
    first = job_tree(tmp_path / "first" / "opt_ml", shot, HYPERPARAMETERS)
    job = subprocess.Popen(job_command(engine, sagemaker_image, first, container_name), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        pid = container_pid(engine, container_name)
        for line in job.stdout:  # stop it once it has trained 10 steps, as `docker stop` does: SIGTERM
            if (parsed := parse_metric_line(line)) is not None and parsed[0] >= 10:
                os.kill(pid, signal.SIGTERM)
                break
        stdout, stderr = job.communicate(timeout=JOB_TIMEOUT)
    finally:
        job.kill()
    assert job.returncode == 143, stderr
    checkpoints = sorted((first / "checkpoints" / "run" / "checkpoints").glob("step_*.pt"))
    stopped_at = int(checkpoints[-1].stem.split("_")[1])
    assert 10 <= stopped_at < STEPS
    assert f"SIGTERM at step {stopped_at}: checkpoint saved" in stderr
    assert same_weights(weights(first / "model" / "run" / "model.pt"), weights(checkpoints[-1]))
    assert not (first / "output" / "failure").exists()

    # a spot restart: fresh channels and the synced checkpoint folder, nothing else
    second = job_tree(tmp_path / "second" / "opt_ml", shot, HYPERPARAMETERS)
    shutil.rmtree(second / "checkpoints")
    shutil.copytree(first / "checkpoints", second / "checkpoints")
    done = run_job(engine, sagemaker_image, second, f"{container_name}-restart")
    assert done.returncode == 0, done.stderr
    assert f"resuming /opt/ml/checkpoints/run from step {stopped_at}" in done.stderr
    reference = finished_job[0] / "model" / "run" / "model.pt"
    assert same_weights(weights(second / "model" / "run" / "model.pt"), weights(reference))
    assert (second / "model" / "run" / "model.onnx").is_file()


@pytest.mark.parametrize(("spoil", "fragments"), [
    ("keyframes", ["input channel 'keyframes'", "/opt/ml/input/data/keyframes", "does not exist"]),
    ("steps", ["'steps' must be an integer", "'ten'"]),
], ids=["missing-channel", "bad-hyperparameter"])
def test_bad_input_fails_with_the_reason_in_the_failure_file(engine, sagemaker_image, shot, tmp_path,
                                                             container_name, spoil, fragments):
    base = job_tree(tmp_path / "opt_ml", shot, {**HYPERPARAMETERS, **({"steps": "ten"} if spoil == "steps" else {})})
    if spoil == "keyframes":
        shutil.rmtree(base / "input" / "data" / "keyframes")
    done = run_job(engine, sagemaker_image, base, container_name)
    assert done.returncode == 1, done.stderr
    reason = (base / "output" / "failure").read_text()
    assert reason.startswith("shotfit: ") and reason.count("\n") == 1
    assert all(fragment in reason for fragment in fragments), reason
    assert (base / "output" / "failure").stat().st_uid == USER
    assert not (base / "model" / "run").exists()
