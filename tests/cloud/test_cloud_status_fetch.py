"""``shotfit cloud status`` and ``fetch``: each job's state and latest numbers from its log, spot
interruptions and failures as SageMaker reports them (Stubber), and finished models brought home as
run folders that ``shotfit render`` accepts.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from aws_emulator import BUCKET, IMAGE, REGION, ROLE, client, make_bucket, model_tar, put_log_lines
from rich.console import Console
from shots import fails, render_tiny, shotfit, succeeds, train_tiny, write_graded_shot

from shotfit.cli.cloud import status_table
from shotfit.cloud.aws import Clients
from shotfit.cloud.contract import metric_line
from shotfit.cloud.fetch import fetch_job, fetch_jobs
from shotfit.cloud.status import job_states, watch
from shotfit.config import Config, save_config
from shotfit.errors import RunError

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def launched(aws, tmp_path: Path) -> list[dict]:
    """Two jobs started by the command line (config files a.yaml, b.yaml) on a tiny shot; their records."""
    make_bucket()
    write_graded_shot(tmp_path, frames=range(1, 7), keyframes=(1, 3, 5))
    (tmp_path / "a.yaml").write_text("loss:\n  lpips: 0.3\n")
    (tmp_path / "b.yaml").write_text("loss:\n  l1: 2\n")
    succeeds("cloud", "launch", "--config", "a.yaml", "--config", "b.yaml", "--source", "plate", "--target", "kf",
             "--image", IMAGE, "--role", ROLE, "--s3", f"s3://{BUCKET}/shotfit", "--no-tracking")
    return json.loads(Path("cloud/jobs.json").read_text())["jobs"]


def table_rows(text: str) -> dict[str, list[str]]:
    """A printed rich table: job name -> its cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) >= 10 and cells[0].startswith("shotfit-"):
            rows[cells[0]] = cells
    return rows


# --- status ------------------------------------------------------------------------------------------

def test_status_shows_each_jobs_latest_numbers_from_its_log(launched):
    a, b = (job["name"] for job in launched)
    put_log_lines(a, ["Starting the training job", metric_line(40, {"loss/total": 0.2})], epoch=1700000000)
    put_log_lines(a, [  # the spot job restarted: a new stream, and the numbers go on in it
        "shotfit: resuming from step 80",
        metric_line(100, {"loss/total": 0.0456, "val/psnr": 27.5, "val/lpips": 0.2345}),
        "some other output, loss/total=9 step=999",
        metric_line(120, {"loss/total": 0.0123, "lr": 0.001}),
    ], epoch=1700000900)
    result = succeeds("cloud", "status")
    rows = table_rows(result.stdout)
    # step and loss from the newest line, val/* from the newest validation
    assert rows[a][1:3] == ["a", "Completed"]
    assert rows[a][6:] == ["120", "0.0123", "27.50", "0.2345"]
    assert rows[b][6:] == ["-", "-", "-", "-"]  # no metric line yet
    assert "2 of 2 completed; fetch them: shotfit cloud fetch --out cloud" in result.stdout

    only = succeeds("cloud", "status", b, "--watch", "5")  # every job has ended: one table, no waiting
    assert list(table_rows(only.stdout)) == [b]


def test_status_mistakes_are_one_line(aws):
    assert "no launch recorded in 'cloud' (no jobs.json)" in fails("cloud", "status")
    Path("cloud").mkdir()
    Path("cloud/jobs.json").write_text(json.dumps({"launches": [], "jobs": [{"name": "x-1", "region": REGION}]}))
    assert "job 'nope' is not in 'cloud/jobs.json' (it holds x-1)" in fails("cloud", "status", "nope")
    Path("cloud/jobs.json").write_text("{")
    assert "'cloud/jobs.json' cannot be read" in fails("cloud", "fetch")


def described(name: str, status: str, secondary: str, **extra) -> dict:
    """A DescribeTrainingJob response as SageMaker sends it (the Stubber checks it against the API model)."""
    return {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/{name}",
            "ModelArtifacts": {"S3ModelArtifacts": f"s3://{BUCKET}/shotfit/jobs/{name}/output/model.tar.gz"},
            "TrainingJobStatus": status, "SecondaryStatus": secondary,
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
            "CreationTime": NOW - timedelta(minutes=30), **extra}


def record(*names: str) -> list[dict]:
    return [{"name": n, "trial": n.split("-")[1], "region": REGION, "hourly_usd": 1.408} for n in names]


def test_status_follows_spot_interruptions_failures_and_billing(aws):
    from botocore.stub import Stubber

    clients = Clients(REGION)
    jobs = record("s-training-1", "s-interrupted-1", "s-failed-1", "s-done-1")
    with Stubber(clients.sagemaker) as stub:
        stub.add_response("describe_training_job", described(
            "s-training-1", "InProgress", "Training", TrainingStartTime=NOW - timedelta(seconds=725)))
        stub.add_response("describe_training_job", described(
            "s-interrupted-1", "InProgress", "Interrupted", TrainingStartTime=NOW - timedelta(minutes=20),
            SecondaryStatusTransitions=[{"Status": "Interrupted", "StartTime": NOW,
                                         "StatusMessage": "Training job interrupted by a spot reclaim"}]))
        stub.add_response("describe_training_job", described(
            "s-failed-1", "Failed", "Failed",
            FailureReason="AlgorithmError: keyframe 'kf/0042.png' has no source frame"))
        stub.add_response("describe_training_job", described(
            "s-done-1", "Completed", "Completed", TrainingTimeInSeconds=3000, BillableTimeInSeconds=1200,
            FinalMetricDataList=[{"MetricName": "step", "Value": 4800.0, "Timestamp": NOW},
                                 {"MetricName": "loss/total", "Value": 0.0078, "Timestamp": NOW}]))
        states = job_states(jobs, lambda region: clients, now=NOW)
    training, interrupted, failed, done = states
    assert (training.state, training.elapsed_s, training.done) == ("Training", 725.0, False)
    assert interrupted.state == "Interrupted" and interrupted.message == "Training job interrupted by a spot reclaim"
    assert failed.state == "Failed" and failed.done and failed.failure.startswith("AlgorithmError: keyframe")
    # spot: 3000 s trained, 1200 s billed at the on-demand price
    assert done.elapsed_s == 3000 and done.cost_usd == pytest.approx(1200 * 1.408 / 3600)
    assert (done.step, done.metrics, done.metrics_from) == (4800, {"loss/total": 0.0078}, "final metrics")

    console = Console(record=True, width=200)
    console.print(status_table(states))
    rows = {r[0]: r for r in (line.strip("│ ").split("│") for line in console.export_text().splitlines())
            if r[0].strip().startswith("s-")}
    cells = {name.strip(): [c.strip() for c in row] for name, row in rows.items()}
    assert cells["s-training-1"][2:6] == ["Training", "12m05s", "-", "-"]
    assert cells["s-done-1"][2:8] == ["Completed", "50m00s", "20m00s", "0.47", "4800", "0.0078"]


def test_watch_refreshes_until_every_job_has_ended(aws):
    from botocore.stub import Stubber

    clients = Clients(REGION)
    shown = []
    with Stubber(clients.sagemaker) as stub:
        for status, secondary in (("InProgress", "Downloading"), ("InProgress", "Training"),
                                  ("Completed", "Completed")):
            stub.add_response("describe_training_job", described("w-a-1", status, secondary))
        final = watch(record("w-a-1"), lambda region: clients, lambda states: shown.append(states[0].state), every=0.01)
        stub.assert_no_pending_responses()
    assert shown == ["Downloading", "Training", "Completed"] and final[0].done


# --- fetch -------------------------------------------------------------------------------------------

def fake_run(folder: Path) -> Path:
    """What fetch checks of a run folder (render's own test below uses a real one)."""
    folder.mkdir(parents=True)
    save_config(Config(), folder / "config.yaml")
    (folder / "model.pt").write_bytes(b"weights")
    (folder / "previews").mkdir()
    (folder / "previews" / "final.png").write_bytes(b"png")
    return folder


def put_model(job: dict, data: bytes) -> None:
    bucket, key = job_artifact(job)
    client("s3").put_object(Bucket=bucket, Key=key, Body=data)


def job_artifact(job: dict) -> tuple[str, str]:
    uri = client("sagemaker").describe_training_job(TrainingJobName=job["name"])["ModelArtifacts"]["S3ModelArtifacts"]
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def test_fetch_brings_completed_jobs_home_and_says_which_could_not(launched, tmp_path):
    a, b = (job["name"] for job in launched)
    put_model(launched[0], model_tar(fake_run(tmp_path / "made" / "run")))
    result = shotfit("cloud", "fetch")
    assert result.exit_code == 1
    assert f"{a}: fetched into cloud/{a}" in result.stdout
    assert f"{b}: error: " in result.stdout and "model.tar.gz is not there" in result.stdout
    assert result.stderr.strip() == f"shotfit: 1 of 2 jobs has no model ({b} error); 1 run folders are in cloud"
    run = Path("cloud") / a
    assert (run / "model.pt").read_bytes() == b"weights" and (run / "previews" / "final.png").is_file()
    assert sorted(p.name for p in Path("cloud").iterdir()) == sorted([a, "jobs.json"])  # no partial folder left

    again = succeeds("cloud", "fetch", a)
    assert f"{a}: already fetched (cloud/{a})" in again.stdout
    assert "render one: shotfit render --run cloud/" in again.stdout


def tar_with(members: dict[str, bytes | Path]) -> bytes:
    """A tar.gz of files (bytes) and symbolic links (a Path: the link's target)."""
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, Path):
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("members, words", [
    ({"run/config.yaml": b"{}", "../escaped.txt": b"x"}, "cannot be unpacked safely"),
    ({"run/config.yaml": b"{}", "run/model.pt": Path("/etc/passwd")}, "cannot be unpacked safely"),
    ({"run/config.yaml": b"{}", "run/model.pt": Path("../../../escaped.txt")}, "cannot be unpacked safely"),
    # an absolute name is unpacked inside the temporary folder (as tar does), so nothing escapes
    ({"/shotfit-cloud-test-absolute.txt": b"x"}, "holds no run folder (run/config.yaml and run/model.pt)"),
    ({"run/config.yaml": b"{}"}, "holds no run folder (run/config.yaml and run/model.pt)"),
])
def test_an_unsafe_or_unfinished_archive_is_refused_and_leaves_nothing(launched, tmp_path, members, words):
    put_model(launched[0], tar_with(members))
    out = tmp_path / "fetched"
    with pytest.raises(RunError, match=words.replace("(", r"\(").replace(")", r"\)")):
        fetch_job(Clients(REGION), launched[0]["name"], out)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/shotfit-cloud-test-absolute.txt").exists()
    assert list(out.iterdir()) == []


def test_failed_and_stopped_jobs_are_reported_with_their_reason(aws, tmp_path):
    from botocore.stub import Stubber

    clients = Clients(REGION)
    with Stubber(clients.sagemaker) as stub:
        stub.add_response("describe_training_job", described(
            "f-oom-1", "Failed", "Failed", FailureReason="AlgorithmError: CUDA out of memory"))
        stub.add_response("describe_training_job", described("f-stop-1", "Stopped", "MaxWaitTimeExceeded"))
        stub.add_response("describe_training_job", described("f-run-1", "InProgress", "Training"))
        results = fetch_jobs(record("f-oom-1", "f-stop-1", "f-run-1"), tmp_path, lambda region: clients)
    assert [(r.outcome, r.detail) for r in results] == [
        ("failed", "AlgorithmError: CUDA out of memory"), ("stopped", "stopped (MaxWaitTimeExceeded)"),
        ("not finished", "Training")]
    assert [r.ok for r in results] == [False, False, True] and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_fetched_run_renders_the_shot(launched, tmp_path):
    """A real (tiny) run packed as SageMaker packs /opt/ml/model, fetched, rendered by the command line."""
    source, keys = tmp_path / "plate", tmp_path / "kf"
    train_tiny(source, keys, tmp_path / "made" / "run", steps=2)
    shutil.rmtree(tmp_path / "made" / "run" / "checkpoints")  # /opt/ml/model holds the final model only
    put_model(launched[0], model_tar(tmp_path / "made" / "run"))
    name = launched[0]["name"]
    succeeds("cloud", "fetch", name)
    result = succeeds("render", "--run", f"cloud/{name}", "--source", "plate", "--out", "render", "--device", "cpu")
    assert "rendered 6 frames" in result.stdout
    assert sorted(p.name for p in Path("render").iterdir()) == [f"plate.{f:04d}.png" for f in range(1, 7)]
    direct = render_tiny(tmp_path / "made" / "run", source, tmp_path / "direct")
    assert direct.rendered == 6
    for frame in range(1, 7):  # the fetched run is the same model
        name_png = f"plate.{frame:04d}.png"
        assert (Path("render") / name_png).read_bytes() == (tmp_path / "direct" / name_png).read_bytes()


# --- stop ----------------------------------------------------------------------------------------------

def test_stop_asks_sagemaker_to_stop_only_the_jobs_still_running(aws):
    from botocore.stub import Stubber

    from shotfit.cloud.jobs import stop_jobs

    clients = Clients(REGION)
    with Stubber(clients.sagemaker) as stub:
        stub.add_response("describe_training_job", described("t-run-1", "InProgress", "Training"))
        stub.add_response("stop_training_job", {}, {"TrainingJobName": "t-run-1"})
        stub.add_response("describe_training_job", described("t-done-1", "Completed", "Completed"))
        outcomes = stop_jobs(record("t-run-1", "t-done-1"), lambda region: clients)
        stub.assert_no_pending_responses()  # stop_training_job was called, for t-run-1 only
    assert outcomes == [("t-run-1", "stopping"), ("t-done-1", "already completed")]


def test_stop_needs_names_or_all(launched):
    assert "name the jobs to stop, or stop every job" in fails("cloud", "stop")
    result = succeeds("cloud", "stop", "--all")  # moto shows every job as Completed
    assert all(f"{job['name']}: already completed" in result.stdout for job in launched)


@pytest.mark.slow
def test_a_job_stopped_while_training_is_fetched_with_its_last_weights(launched, tmp_path):
    """The container's SIGTERM model (weights of the step it stopped at, no exports) comes home and renders."""
    from botocore.stub import Stubber

    source = tmp_path / "plate"
    train_tiny(source, tmp_path / "kf", tmp_path / "made" / "run", steps=3)
    stopped_run = tmp_path / "made" / "run"
    for path in (stopped_run / "checkpoints", stopped_run / "metrics.json"):  # as the container leaves it
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    put_model(launched[0], model_tar(stopped_run))
    name = launched[0]["name"]
    clients = Clients(REGION)
    with Stubber(clients.sagemaker) as stub:
        stub.add_response("describe_training_job", described(name, "Stopped", "Stopped",
                                                              ModelArtifacts={"S3ModelArtifacts": "s3://{}/{}".format(*job_artifact(launched[0]))}))
        (result,) = fetch_jobs([launched[0]], Path("cloud"), lambda region: clients)
    assert (result.outcome, result.stopped_early) == ("fetched", True)
    assert result.detail == "stopped (Stopped): the weights of its last step"
    rendered = succeeds("render", "--run", f"cloud/{name}", "--source", "plate", "--out", "render", "--device", "cpu")
    assert "rendered 6 frames" in rendered.stdout
