"""The whole loop, with SageMaker's part played by the test: launch -> the job's container -> status -> fetch
-> render, against the emulated AWS (moto's server) and the real container process.

The test does what SageMaker does between the two halves: copies each channel's S3 prefix into
``input/data/<channel>``, writes the job's HyperParameters to ``hyperparameters.json``, runs the image's
``train`` (here ``python -m shotfit train``), sends its stdout to the job's CloudWatch log stream and
packs ``/opt/ml/model`` as ``model.tar.gz`` where the job's ModelArtifacts say.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from aws_emulator import BUCKET, IMAGE, ROLE, client, make_bucket, put_log_lines
from shots import TINY, succeeds, write_graded_shot

from shotfit.cloud.aws import split_s3_uri
from shotfit.cloud.status import Regions, job_states


def play_sagemaker(name: str, base: Path) -> subprocess.CompletedProcess:
    """Run the training job ``name`` as SageMaker would, in the simulated /opt/ml at ``base``."""
    s3, described = client("s3"), client("sagemaker").describe_training_job(TrainingJobName=name)
    for channel in described["InputDataConfig"]:
        bucket, prefix = split_s3_uri(channel["DataSource"]["S3DataSource"]["S3Uri"])
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", ()):
                target = base / "input" / "data" / channel["ChannelName"] / item["Key"][len(prefix):].lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(target))
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(described["HyperParameters"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    done = subprocess.run([sys.executable, "-m", "shotfit", "train"], text=True, capture_output=True, timeout=300,
                          env={**env, "SAGEMAKER_BASE_DIR": str(base), "TRAINING_JOB_NAME": name})
    put_log_lines(name, done.stdout.splitlines())
    archive = base / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # SageMaker tars the folder's contents
        for entry in sorted((base / "model").iterdir()):
            tar.add(entry, arcname=entry.name)
    s3.upload_file(str(archive), *split_s3_uri(described["ModelArtifacts"]["S3ModelArtifacts"]))
    return done


@pytest.mark.slow
def test_launch_train_watch_fetch_render(aws, tmp_path):
    make_bucket()
    write_graded_shot(tmp_path, frames=range(1, 7), keyframes=(1, 3, 5))
    tiny = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in TINY)}
    config: dict = {}
    for key, value in tiny.items():
        section, field = key.split(".")
        config.setdefault(section, {})[field] = value
    Path("tiny.yaml").write_text(yaml.safe_dump(config))
    succeeds("cloud", "launch", "--config", "tiny.yaml", "--source", "plate", "--target", "kf", "--image", IMAGE,
             "--role", ROLE, "--s3", f"s3://{BUCKET}/shotfit", "--minutes", "10", "--steps", "20", "--no-tracking")
    (job,) = json.loads(Path("cloud/jobs.json").read_text())["jobs"]

    done = play_sagemaker(job["name"], tmp_path / "opt_ml")
    assert done.returncode == 0, done.stderr
    history = json.loads((tmp_path / "opt_ml" / "model" / "run" / "metrics.json").read_text())["history"]

    status = succeeds("cloud", "status")
    row = next(line for line in status.stdout.splitlines() if line.lstrip("│┃ ").startswith(job["name"][:20]))
    assert "Completed" in row and " 20 " in row  # the job's newest step, read from its log
    (state,) = job_states([job], Regions())
    assert state.metrics_from == "log" and state.step == 20
    assert state.metrics["loss/total"] == pytest.approx(history[-1]["total"], rel=1e-5)

    succeeds("cloud", "fetch")
    run = Path("cloud") / job["name"]
    trained = yaml.safe_load((run / "config.yaml").read_text())
    assert trained["model"]["width"] == 4 and trained["train"]["lr"] == 0.01 and trained["train"]["steps"] == 20
    assert (run / "model.onnx").is_file()
    rendered = succeeds("render", "--run", run, "--source", "plate", "--out", "render", "--device", "cpu")
    assert "rendered 6 frames" in rendered.stdout
