"""An AWS that runs in the test process: moto's HTTP server on a free port, fake credentials, no network.

boto3 reaches it through ``AWS_ENDPOINT_URL`` (as it would a real endpoint), so the code under test has
no test hooks. moto 5 emulates S3 and CloudWatch Logs faithfully; its SageMaker creates, lists and
describes training jobs but always describes them as Completed (states it cannot show are tested with
botocore's Stubber, which checks requests and responses against the real API model).

The fixtures (``aws``) are in this folder's conftest.py; the helpers here are imported by name
(``from aws_emulator import make_bucket, ...``).
"""

from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3", reason="the cloud launcher needs the aws extra (boto3)")

REGION = "us-east-1"
BUCKET = "shotfit-test"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shotfit:0.1.0"
ROLE = "arn:aws:iam::123456789012:role/shotfit-sagemaker"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


def client(service: str):
    return boto3.client(service, region_name=REGION)


def make_bucket(name: str = BUCKET) -> str:
    client("s3").create_bucket(Bucket=name)
    return name


def s3_keys(bucket: str = BUCKET) -> list[str]:
    pages = client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))


def training_jobs() -> list[str]:
    return sorted(j["TrainingJobName"] for j in client("sagemaker").list_training_jobs()["TrainingJobSummaries"])


def put_log_lines(job: str, lines: list[str], epoch: int = 1700000000) -> str:
    """Write ``lines`` to the job's log stream as SageMaker names it (``<job>/algo-1-<epoch>``)."""
    logs = client("logs")
    try:
        logs.create_log_group(logGroupName=LOG_GROUP)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job}/algo-1-{epoch}"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])
    return stream


def model_tar(run: Path, top: str = "run") -> bytes:
    """A model.tar.gz as SageMaker packs /opt/ml/model: the run folder under ``top/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(run, arcname=top)
    return buffer.getvalue()
