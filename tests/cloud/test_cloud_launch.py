"""``shotfit cloud launch`` against an emulated AWS: the cost printed before anything starts, the guard,
the shot uploaded once, jobs from config files or a sweep's best trials, the record, and the exact
CreateTrainingJob request (checked with botocore's Stubber against the real API model).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
from aws_emulator import BUCKET, IMAGE, REGION, ROLE, make_bucket, s3_keys, training_jobs
from shots import fails, succeeds
from shots import write_graded_shot as write_shot

from shotfit import __version__
from shotfit.cloud import contract
from shotfit.cloud.aws import Clients, CloudError, S3Location
from shotfit.cloud.candidates import Candidate, from_configs
from shotfit.cloud.jobs import LaunchOptions, job_name, plan_launch, start_launch, training_minutes
from shotfit.cloud.prices import hourly_price
from shotfit.cloud.shot_upload import ShotPaths, read_shot
from shotfit.config import Config, apply_overrides, save_config
from shotfit.errors import ShotfitError
from shotfit.search.values import settings_text

A_YAML = "loss:\n  lpips: 0.3\ntrain:\n  lr: 0.001\n  threads: 2\n  device: cpu\nmodel:\n  width: 8\n"
B_YAML = "loss:\n  l1: 2\naugment:\n  patch_size: 64\n"


@pytest.fixture
def shot(tmp_path: Path) -> tuple[Path, Path]:
    """plate/ (6 frames) and kf/ (keyframes 1, 3, 5), plus two config files, in the test's folder."""
    source, keys = write_shot(tmp_path, frames=range(1, 7), keyframes=(1, 3, 5))
    (tmp_path / "a.yaml").write_text(A_YAML)
    (tmp_path / "b.yaml").write_text(B_YAML)
    return source, keys


def aws_args(*extra: str) -> list[str]:
    return ["--image", IMAGE, "--role", ROLE, "--s3", f"s3://{BUCKET}/shotfit", *extra]


def launch_configs(*extra: str) -> list[str]:
    return ["cloud", "launch", "--config", "a.yaml", "--config", "b.yaml", "--source", "plate", "--target", "kf",
            *aws_args(), "--no-tracking", *extra]


# --- cost, guard, dry run ---------------------------------------------------------------------------

def test_dry_run_prints_the_cost_and_the_requests_and_creates_nothing(aws, shot):
    make_bucket()
    result = succeeds(*launch_configs("--minutes", "30", "--dry-run", "--tracking-uri", "https://mlflow.studio:5000"))
    out = result.stdout
    # 2 jobs x 30 min x 1.408 USD/h = 1.408 USD, rounded up to the cent; spot: an upper bound
    assert "cost estimate: 2 jobs x 30 min x 1.408 USD/h (ml.g5.xlarge" in out
    assert "= at most 1.41 USD (the on-demand upper bound" in out
    assert "30 min each (27 min of training)" in out
    assert out.index("cost estimate") < out.index("shot:") < out.index("dry run")
    assert "MLFLOW_TRACKING_URI: https://mlflow.studio:5000" not in out  # --no-tracking wins
    assert "max_runtime_s: 1800" in out and "max_wait_s: 3600" in out and "minutes: '27.0'" in out
    assert "dry run: nothing was uploaded or started" in out
    assert s3_keys() == [] and training_jobs() == [] and not Path("cloud").exists()


def test_max_cost_refuses_with_the_estimate_before_anything_is_created(aws, shot):
    make_bucket()
    line = fails(*launch_configs("--max-cost", "2", "--instance-type", "ml.g4dn.xlarge", "--minutes", "120"))
    # 2 x 2 h x 0.736 = 2.944 -> 2.95 USD
    assert "cost estimate of 2.95 USD is above max_cost 2.00 USD: nothing was started" in line
    assert s3_keys() == [] and training_jobs() == [] and not Path("cloud").exists()


def test_prices_unknown_instance_needs_an_hourly_price(aws, shot):
    line = fails(*launch_configs("--instance-type", "ml.trn1.2xlarge", "--dry-run"))
    assert "no built-in price for instance type 'ml.trn1.2xlarge': give an hourly_price in USD" in line
    result = succeeds(*launch_configs("--instance-type", "ml.trn1.2xlarge", "--hourly-price", "1.5",
                                      "--no-spot", "--dry-run"))
    assert "2 jobs x 60 min x 1.5 USD/h (ml.trn1.2xlarge, the hourly price given) = at most 3.00 USD" in result.stdout
    assert "upper bound" not in result.stdout  # on-demand: the estimate is the price
    assert "max_wait_s" not in result.stdout
    assert "ml.g5.xlarge" in succeeds("cloud", "prices").stdout


@pytest.mark.parametrize("args, words", [
    (["--minutes", "4"], "minutes 4 is too short"),
    (["--max-wait", "30"], "max_wait 30 must be at least minutes 60"),
    (["--s3", "s3://Bad_Bucket/x"], "'Bad_Bucket' is not a valid S3 bucket name"),
    (["--role", "sagemaker-role"], "role 'sagemaker-role' must be an IAM role ARN"),
    (["--set", "train.steps=100"], "set train.steps: give the steps option instead"),
    (["--set", "loss.nope=1"], "unknown config key 'loss.nope'"),
])
def test_launch_mistakes_are_one_line(aws, shot, args, words):
    assert words in fails(*launch_configs("--dry-run", *args))


def test_a_local_tracking_store_is_refused(aws, shot, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    cmd = [a for a in launch_configs("--dry-run") if a != "--no-tracking"]
    assert "is a store on this machine, which a cloud job cannot reach" in fails(*cmd)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.studio")
    assert "MLFLOW_TRACKING_URI: https://mlflow.studio" in succeeds(*cmd).stdout


def test_the_shot_is_checked_before_anything_is_uploaded(aws, shot, tmp_path):
    make_bucket()
    (tmp_path / "plate" / "plate.0005.png").unlink()
    line = fails(*launch_configs())
    assert "keyframe 'kf/plate.0005.png' has no source frame 5" in line
    assert s3_keys() == [] and training_jobs() == []


def test_without_boto3_the_command_says_which_extra_to_install(aws, shot, monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if shotfit[aws] were not installed
    assert fails(*launch_configs()) == "shotfit: shotfit cloud needs the aws extra: pip install 'shotfit[aws]'"


def test_aws_refusals_are_one_line_naming_the_bucket(aws, shot, tmp_path, monkeypatch):
    line = fails(*launch_configs())  # no bucket made
    assert line == f"shotfit: S3 bucket '{BUCKET}' does not exist (create it in {REGION}, or give another s3 location)"
    make_bucket()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    line = fails(*launch_configs())
    assert line.startswith(f"shotfit: checking S3 bucket '{BUCKET}': no AWS credentials found")
    assert s3_keys() == [] and training_jobs() == [] and not Path("cloud").exists()


# --- a launch from config files ------------------------------------------------------------------

def test_launch_uploads_the_shot_once_starts_the_jobs_and_records_them(aws, shot):
    make_bucket()
    first = succeeds(*launch_configs())
    record = json.loads(Path("cloud/jobs.json").read_text())
    names = [job["name"] for job in record["jobs"]]
    assert sorted(names) == training_jobs() and len(names) == 2
    assert [job["trial"] for job in record["jobs"]] == ["a", "b"]
    assert all(name.startswith("shotfit-") for name in names)

    digest = record["launches"][0]["shot"]["digest"]
    keys = s3_keys()
    assert keys[-1].endswith(f"shots/{digest}/source/plate.0006.png")
    assert f"shotfit/shots/{digest}/manifest.json" in keys
    assert sum(f"/{digest}/source/" in k for k in keys) == 6 and sum(f"/{digest}/keyframes/" in k for k in keys) == 3
    assert "uploaded 9 files" in first.stdout and "2 jobs started, recorded in cloud/jobs.json" in first.stdout

    job = record["jobs"][0]
    assert job["instance"] == "ml.g5.xlarge" and job["spot"] is True and job["region"] == REGION
    assert job["arn"].endswith(f":training-job/{job['name']}") and job["launched_at"]
    assert job["channels"]["source"] == f"s3://{BUCKET}/shotfit/shots/{digest}/source/"
    assert job["checkpoints"] == f"s3://{BUCKET}/shotfit/checkpoints/{job['name']}/"
    # a.yaml's edit as hyperparameters; the machine's keys (threads, device) are left to the job
    assert job["hyperparameters"] == {"model.width": "8", "loss.lpips": "0.3", "train.lr": "0.001",
                                      "minutes": "54.0"}
    sagemaker = Clients(REGION).sagemaker
    described = sagemaker.describe_training_job(TrainingJobName=job["name"])
    assert described["HyperParameters"] == job["hyperparameters"]
    assert described["EnableManagedSpotTraining"] is True
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}

    second = succeeds(*launch_configs("--no-spot"))
    assert "shot already in S3" in second.stdout and "uploaded" not in second.stdout
    assert s3_keys() == keys
    record = json.loads(Path("cloud/jobs.json").read_text())
    assert len(record["launches"]) == 2 and len(record["jobs"]) == 4 and len(training_jobs()) == 4
    assert record["launches"][0]["id"] != record["launches"][1]["id"]


def test_hyperparameters_rebuild_the_config_in_the_container(shot, tmp_path):
    """What the container does with them (contract.job_settings + apply_overrides) gives the file's config,
    less the machine's keys (threads, device: the job's own)."""
    (tmp_path / "c.yaml").write_text("model:\n  arch: unet\n  width: 6\nloss:\n  extra:\n    - {name: ssim, "
                                     "weight: 0.5}\n  lpips: 0.1\ncolour:\n  source: 'on'\ndata:\n  validation_frames: [3]\n")
    machine = Config().train
    for candidate in from_configs([tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"]):
        settings = contract.job_settings(candidate.hyperparameters())
        rebuilt = apply_overrides(Config(), settings.overrides)
        train = dataclasses.replace(candidate.config.train, threads=machine.threads, device=machine.device)
        assert rebuilt == dataclasses.replace(candidate.config, train=train)
    c = from_configs([tmp_path / "c.yaml"])[0].hyperparameters()
    assert c["colour.source"] == '"on"' and c["model.arch"] == "unet" and c["data.validation_frames"] == "[3]"
    assert c["loss.lpips"] == "0.1"  # the file gives it (it is also the default): it travels, no guessing


# --- a launch from a sweep --------------------------------------------------------------------------

def fake_sweep(folder: Path, source: Path, keys: Path) -> Path:
    """A finished sweep folder as 'shotfit sweep' leaves it: sweep.json, base.yaml, trials/*/trial.json."""
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({"name": "loss-ablation", "sweep_file": {
        "name": "loss-ablation", "source": "plate", "keyframes": "kf", "metric": "val/lpips"},
        "base_keys": ["model.width", "data.validation_frames"]}))
    base = apply_overrides(Config(), ["model.width=4", "data.validation_frames=[3]"])
    save_config(base, folder / "base.yaml")
    trials = {"trial-000": ("finished", 0.30, 0.0), "trial-001": ("finished", 0.12, 0.3),
              "trial-002": ("finished", 0.20, 0.05), "trial-003": ("error", None, 1.0),
              "trial-004": ("stopped", 0.05, 0.5)}
    for name, (status, lpips, weight) in trials.items():
        run = folder / "trials" / name / "run"
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"source": str(source.resolve()), "keyframes": str(keys.resolve()),
                                                  "masks": None}))
        params = {"loss.lpips": weight}
        (run.parent / "trial.json").write_text(json.dumps({
            "name": name, "phase": "search", "params": params, "overrides": list(settings_text(params)),
            "status": status, "step": 300 if status == "finished" else 50,
            "metrics": {} if lpips is None else {"val/lpips": lpips}, "seconds": 60.0, "run": str(run),
            "error": "boom" if status == "error" else None}))
    return folder


def test_launch_from_a_sweep_trains_its_best_trials_on_its_own_shot(aws, shot, tmp_path):
    make_bucket()
    fake_sweep(tmp_path / "sweep", *shot)
    result = succeeds("cloud", "launch", "--sweep", "sweep", "--top", "2", *aws_args(), "--no-tracking",
                      "--out", "gpu")
    jobs = json.loads(Path("gpu/jobs.json").read_text())["jobs"]
    # ranked as the sweep ranks them: finished trials by val/lpips, lowest first
    assert [j["trial"] for j in jobs] == ["trial-001", "trial-002"]
    assert jobs[0]["name"].startswith("loss-ablation-trial-001-") and len(training_jobs()) == 2
    assert "trial trial-001 (val/lpips 0.12)" in result.stdout
    # base.yaml's settings, the trial's own, and the sweep's hold-out, so val/* curves compare
    assert jobs[0]["hyperparameters"] == {"model.width": "4", "loss.lpips": "0.3", "data.validation_frames": "[3]",
                                          "minutes": "54.0"}
    assert jobs[1]["hyperparameters"]["loss.lpips"] == "0.05"
    uploaded = [k.rsplit("/", 2)[-2:] for k in s3_keys() if "/source/" in k or "/keyframes/" in k]
    assert len(uploaded) == 9  # the sweep's shot: 6 frames, 3 keyframes

    more = succeeds("cloud", "launch", "--sweep", "sweep", "--top", "9", "--no-hold-out", *aws_args(),
                    "--no-tracking", "--dry-run")
    assert "sweep 'loss-ablation' has 3 finished trials; launching 3" in more.stdout
    assert "data.validation_frames" not in more.stdout and "trial-003" not in more.stdout


def test_a_folder_that_is_not_a_sweep_is_one_line(aws, shot, tmp_path):
    assert "is not a sweep folder (no readable sweep.json)" in fails("cloud", "launch", "--sweep", "plate",
                                                                     *aws_args(), "--dry-run")
    assert "give a sweep folder (its best trials) or config files" in fails("cloud", "launch", *aws_args(), "--dry-run")


# --- the exact request, and a launch AWS stops half way --------------------------------------------

def plan_two(tmp_path: Path, shot: tuple[Path, Path], **options) -> object:
    candidates = [Candidate("a", apply_overrides(Config(), ["loss.lpips=0.3"]), ("loss.lpips",), "config 'a.yaml'"),
                  Candidate("b", Config(), (), "config 'b.yaml'")]
    paths = ShotPaths(str(shot[0]), str(shot[1]))
    launch = LaunchOptions(image=IMAGE, role=ROLE, s3=S3Location(BUCKET, "shotfit"), **options)
    return plan_launch(candidates, paths, read_shot(paths), launch, hourly_price(launch.instance_type),
                       label="look dev", launch_id="abc123")


def test_the_create_training_job_request_is_exactly_what_the_container_expects(aws, shot, tmp_path):
    from botocore.stub import Stubber

    make_bucket()
    plan = plan_two(tmp_path, shot, minutes=30, tracking_uri="https://mlflow.studio", experiment="shot-010")
    digest = plan.content.digest
    clients = Clients(REGION)
    expected = {
        "TrainingJobName": "look-dev-a-abc123",
        "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File",
                                   "MetricDefinitions": contract.metric_definitions(),
                                   "EnableSageMakerMetricsTimeSeries": True},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {"ChannelName": channel, "InputMode": "File", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/shotfit/shots/{digest}/{channel}/",
                "S3DataDistributionType": "FullyReplicated"}}} for channel in ("source", "keyframes")],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/shotfit/jobs/"},
        "ResourceConfig": {"InstanceType": "ml.g5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 1800, "MaxWaitTimeInSeconds": 3600},
        "HyperParameters": {"loss.lpips": "0.3", "minutes": "27.0"},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": f"s3://{BUCKET}/shotfit/checkpoints/look-dev-a-abc123/",
                             "LocalPath": "/opt/ml/checkpoints"},
        "TensorBoardOutputConfig": {"LocalPath": "/opt/ml/checkpoints/run/tensorboard",
                                    "S3OutputPath": f"s3://{BUCKET}/shotfit/tensorboard/look-dev-a-abc123/"},
        "Environment": {"MLFLOW_TRACKING_URI": "https://mlflow.studio", "MLFLOW_EXPERIMENT_NAME": "shot-010"},
        "Tags": [{"Key": "shotfit:launch", "Value": "abc123"}, {"Key": "shotfit:trial", "Value": "a"},
                 {"Key": "shotfit:sweep", "Value": "look dev"}, {"Key": "shotfit:version", "Value": __version__}],
    }
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:training-job/"
    with Stubber(clients.sagemaker) as stub:  # checks both requests against SageMaker's API model
        stub.add_response("create_training_job", {"TrainingJobArn": arn + "look-dev-a-abc123"}, expected)
        stub.add_response("create_training_job", {"TrainingJobArn": arn + "look-dev-b-abc123"})
        started = start_launch(plan, clients, tmp_path / "cloud")
        stub.assert_no_pending_responses()
    assert [j["name"] for j in started] == ["look-dev-a-abc123", "look-dev-b-abc123"]
    # the metric regexes catch the container's own metric line
    line = contract.metric_line(120, {"loss/total": 0.0123, "val/lpips": 0.25})
    import re
    caught = {d["Name"]: float(m[1]) for d in expected["AlgorithmSpecification"]["MetricDefinitions"]
              if (m := re.search(d["Regex"], line))}
    assert caught == {"step": 120.0, "loss/total": 0.0123, "val/lpips": 0.25}


@pytest.mark.parametrize("code, message, words", [
    ("ResourceLimitExceeded", "The account-level service limit 'ml.g5.xlarge for spot training job usage' is 1",
     "a SageMaker quota is reached"),
    ("AccessDeniedException", "not authorized to perform: sagemaker:CreateTrainingJob", "access denied"),
    ("ThrottlingException", "Rate exceeded", "AWS is throttling requests"),
])
def test_a_launch_refused_half_way_keeps_the_record_of_the_jobs_started(aws, shot, tmp_path, code, message, words):
    from botocore.stub import Stubber

    make_bucket()
    plan = plan_two(tmp_path, shot)
    clients = Clients(REGION)
    with Stubber(clients.sagemaker) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:1:training-job/x"})
        stub.add_client_error("create_training_job", code, message, 400)
        with pytest.raises(CloudError) as caught:
            start_launch(plan, clients, tmp_path / "cloud")
    text = str(caught.value)
    assert text.startswith("creating training job 'look-dev-b-abc123': ") and words in text and "\n" not in text
    assert text.endswith(f"the 1 job started before it is recorded in {tmp_path / 'cloud' / 'jobs.json'}")
    record = json.loads((tmp_path / "cloud" / "jobs.json").read_text())
    assert [j["name"] for j in record["jobs"]] == ["look-dev-a-abc123"]


# --- names and budgets --------------------------------------------------------------------------------

@pytest.mark.parametrize("label, trial", [
    ("loss-ablation", "trial-003"), ("shot_010 comp v2!", "lr=3e-4"), ("x" * 80, "y" * 80), ("---", "..."),
])
def test_job_names_are_valid_for_sagemaker_and_readable(label, trial):
    import re

    name = job_name(label, trial, "3fa9c2")
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name) and name.endswith("-3fa9c2")
    assert len(name) <= 63


def test_job_names_keep_sweep_and_trial():
    assert job_name("loss-ablation", "trial-003", "3fa9c2") == "loss-ablation-trial-003-3fa9c2"
    assert job_name("shot_010 comp", "lr=3e-4", "3fa9c2") == "shot-010-comp-lr-3e-4-3fa9c2"


@pytest.mark.parametrize("budget, training", [(5, 2.0), (20, 17.0), (30, 27.0), (60, 54.0), (240, 216.0)])
def test_training_leaves_a_reserve_of_a_tenth_or_three_minutes(budget, training):
    assert training_minutes(budget) == training


def test_mattes_travel_as_a_channel_and_alpha_as_an_option(aws, tmp_path):
    from shotfit.io import PixelFormat

    grey, rgba = PixelFormat(".png", "uint8", 1), PixelFormat(".png", "uint8", 4)
    write_shot(tmp_path, frames=range(1, 5), keyframes=(1, 3))
    mattes, _ = write_shot(tmp_path / "m", frames=(1, 3), keyframes=(), fmt=grey)
    (tmp_path / "c.yaml").write_text("loss:\n  l1: 2\n")
    base = ["cloud", "launch", "--config", "c.yaml", "--source", "plate", "--target", "kf", *aws_args(),
            "--no-tracking", "--dry-run"]
    with_mattes = succeeds(*base, "--mask", str(mattes)).stdout
    assert "shot: 8 files" in with_mattes and "(source, keyframes, masks)" in with_mattes
    assert "/masks/" in with_mattes and "mask:" not in with_mattes
    write_shot(tmp_path / "a", frames=range(1, 5), keyframes=(1, 3), fmt=rgba)
    with_alpha = succeeds(*base[:5], "a/plate", "--target", "a/kf", *base[8:], "--mask", "alpha").stdout
    assert "(source, keyframes)" in with_alpha and "mask: alpha" in with_alpha


def test_the_python_api_honours_max_cost_too(shot):
    # the guard is the library's, not only the command line's: a script cannot start a launch above it
    candidates = [Candidate("a", Config(), (), "config 'a.yaml'")]
    paths = ShotPaths(str(shot[0]), str(shot[1]))
    launch = LaunchOptions(image=IMAGE, role=ROLE, s3=S3Location(BUCKET, "shotfit"), minutes=60)
    price = hourly_price("ml.g5.xlarge")
    with pytest.raises(ShotfitError, match=r"estimate of 1\.41 USD is above max_cost 1\.40 USD"):
        plan_launch(candidates, paths, read_shot(paths), launch, price, max_cost=1.40)
    assert plan_launch(candidates, paths, read_shot(paths), launch, price, max_cost=1.41).estimate.total == 1.41


def test_the_python_api_launches_from_a_request(aws, shot, tmp_path):
    # what the command line builds: typed options, progress as callbacks; a dry run creates nothing
    from shotfit import api

    lines: list[str] = []
    hashed: list[tuple[int, int]] = []
    request = api.LaunchRequest(configs=(tmp_path / "a.yaml",), source=str(shot[0]), keyframes=str(shot[1]),
                                image=IMAGE, role=ROLE, s3=f"s3://{BUCKET}/shotfit", minutes=30, dry_run=True,
                                out=tmp_path / "cloud")
    result = api.launch(request, say=lines.append, on_hash=lambda done, total: hashed.append((done, total)))
    assert result.dry_run and result.started == () and not (tmp_path / "cloud").exists()
    assert [s["hyperparameters"] for s in result.summaries()] == [
        {"model.width": "8", "loss.lpips": "0.3", "train.lr": "0.001", "minutes": "27.0"}]
    assert lines[1].startswith("cost estimate: 1 job x 30 min") and hashed[-1] == (9, 9)
    with pytest.raises(ShotfitError, match="source and keyframes go together"):
        api.launch(dataclasses.replace(request, keyframes=None))
