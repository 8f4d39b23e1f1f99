"""S3 on the loopback for the service's benchmarks: moto's server (a test dependency) in a process of its own,
with one bucket, started and stopped within bounded time.

moto keeps every object in its own process's memory and answers in Python: what a benchmark measures against
it is the cost on the service's side of talking S3 (requests, copies, the extra trips an upload makes),
plus moto's own, never what a real S3 endpoint would give.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_S = 60.0  # moto's server answers within this, or the benchmark stops with its log
STOP_S = 30.0  # after SIGTERM, then SIGKILL
BUCKET = "shotfit-bench"


@dataclass(frozen=True)
class MotoS3:
    """A running moto server: its URL, its pid (for its CPU time), and the ``AWS_*`` variables that point
    the service's S3 clients at it."""

    endpoint: str
    pid: int
    bucket: str

    @property
    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}


@contextlib.contextmanager
def moto_s3(folder: Path) -> Iterator[MotoS3]:
    """moto's S3 on a free loopback port with an empty bucket (its log in ``folder``); stopped on leaving."""
    import boto3  # a test dependency, as moto is: only the S3 measurements need them

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "moto.log").open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        deadline = time.monotonic() + START_S
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception as err:  # not answering yet
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto's server did not start ({err}): "
                                       f"{(folder / 'moto.log').read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield MotoS3(endpoint, server.pid, BUCKET)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=STOP_S)
