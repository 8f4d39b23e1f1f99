"""Fixtures for the service: a store on SQLite and on a real PostgreSQL, an app with two studios, uploads, and a
real S3 endpoint (moto's server).

The service's tests import their helpers by name (``from service_helpers import ...``): this folder is on
sys.path through this conftest.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from postgres import postgres_bin, postgres_server  # noqa: E402
from service_helpers import BUCKET, SMALL_LIMITS, Studio, new_studio  # noqa: E402

from shotfit.service.app import create_app  # noqa: E402
from shotfit.service.settings import ServiceSettings  # noqa: E402

_SKIP_PG = "PostgreSQL is not installed here (scripts/test-services.sh installs Debian's postgresql)"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server for the session (its own cluster in a temporary folder)."""
    if postgres_bin() is None:
        pytest.skip(_SKIP_PG)
    with postgres_server() as url:
        yield url


def _fresh_database(server_url: str) -> str:
    import psycopg  # only the PostgreSQL half of the tests needs it

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite file, then a database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return _fresh_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(storage=tmp_path / "storage", limits=SMALL_LIMITS)


@pytest.fixture
def app(settings: ServiceSettings):
    """The app, API only (jobs stay queued: no runner), without the webhook sender."""
    return create_app(settings, send_webhooks=False)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def studios(app) -> tuple[Studio, Studio]:
    """Two studios with a key each."""
    return new_studio(app.state.store, "Acme VFX"), new_studio(app.state.store, "Zeta Post")


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """moto's S3 server in a process of its own on a free loopback port, a bucket in it, and the ``AWS_*``
    variables that point at it (set for the module, so the Ray workers started after them inherit them); a
    boto3 client to look inside. Its own process: moto keeps one AWS per process, which the cloud tests'
    emulator resets before each of their tests (a pytest worker may run one between two of these). It keeps
    its record of requests (test_storage_s3.py's ``_recorded``) in a temporary folder."""
    import boto3  # the test's own view of the bucket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    recording = tmp_path_factory.mktemp("moto") / "requests.jsonl"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)})
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:  # not answering yet
                if server.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
                                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}.items():
                patch.setenv(name, value)
            _forget_s3_clients()
            yield client
    finally:
        _forget_s3_clients()
        server.terminate()
        server.wait(timeout=30)


def _forget_s3_clients() -> None:
    """fsspec keeps one file system for the same arguments, bound to the endpoint it was made with: a module's
    new server (another port) needs new ones."""
    from shotfit.service.storage import bucket_store, open_files  # the server's cached stores

    open_files.cache_clear()
    bucket_store.cache_clear()
    for module, name in (("obstore.fsspec", "FsspecStore"), ("s3fs", "S3FileSystem")):
        if importlib.util.find_spec(module.split(".")[0]) is not None:
            getattr(importlib.import_module(module), name).clear_instance_cache()
