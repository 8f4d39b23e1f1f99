"""The emulated AWS every cloud test talks to: moto's server in this process (see aws_emulator.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

moto_server = pytest.importorskip("moto.server", reason="the AWS emulator needs moto[s3,sagemaker,logs]")

from aws_emulator import REGION  # noqa: E402


@pytest.fixture(scope="module")
def _server() -> Iterator[str]:
    """One emulator per test module (its state is reset before every test)."""
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture
def aws(_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty AWS with fake credentials; boto3 in this process talks to it. Yields the endpoint."""
    import requests

    requests.post(f"{_server}/moto-api/reset", timeout=10).raise_for_status()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE", "MLFLOW_TRACKING_URI", "SHOTFIT_IMAGE", "SHOTFIT_SAGEMAKER_ROLE",
                 "SHOTFIT_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", _server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield _server
