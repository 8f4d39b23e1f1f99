"""The service benchmark's harness: a real ``shotfit serve`` on the loopback (its files in a storage folder or in
S3), and the client's requests and CPU accounting. Used by ``bench/service.py``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.moto_s3 import MotoS3

ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
TIMEOUT = 60.0


# --- the server ---------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(folder: Path, src: Path = ROOT / "src") -> dict[str, str]:
    env = {**os.environ, "HOME": str(folder / "home"), "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "RAY_TMPDIR": tempfile.mkdtemp(prefix="sf-bench-ray-", dir="/tmp"),
           "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)}
    for name in ("MLFLOW_TRACKING_URI", "SHOTFIT_STORAGE", "SHOTFIT_DB", "SHOTFIT_TRACKING_URI"):
        env.pop(name, None)
    return env


@contextlib.contextmanager
def serve(folder: Path, workers: int, src: Path = ROOT / "src",
          s3: MotoS3 | None = None) -> Iterator[tuple[str, dict[str, str], int]]:
    """``shotfit serve --workers N`` (the code in ``src``) on a free loopback port, its files in a storage folder
    or (``s3``) in the bucket under a prefix of the folder's name; yields its URL, a key's headers and its pid."""
    folder.mkdir(parents=True)
    env, storage = _environment(folder, src), ["--storage", str(folder / "storage")]
    if s3 is not None:
        env.update(s3.env)
        storage = ["--storage", f"s3://{s3.bucket}/{folder.name}", "--scratch", str(folder / "scratch")]
    made = subprocess.run([sys.executable, "-m", "shotfit", "keys", "create", "--studio", "bench", *storage],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    headers = {"Authorization": f"Bearer {made.stdout.split()[0]}"}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (folder / "serve.log").open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "shotfit", "serve", "--port", str(port), *storage,
                                    "--workers", str(workers)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"shotfit serve exited: {(folder / 'serve.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("shotfit serve did not answer in 180 s")
            time.sleep(0.3)
        yield url, headers, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)


# --- the client -----------------------------------------------------------------------------------

def upload(client: httpx.Client, shot_id: str, role: str, path: Path, chunk: int) -> None:
    size = path.stat().st_size
    made = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": role, "name": path.name, "size": size})
    made.raise_for_status()
    upload_id, offset = made.json()["id"], 0
    with path.open("rb") as source:
        while offset < size:
            source.seek(offset)
            answer = client.patch(f"/v1/uploads/{upload_id}", content=source.read(chunk),
                                  headers={"Upload-Offset": str(offset),
                                           "Content-Type": "application/offset+octet-stream"})
            answer.raise_for_status()
            offset = answer.json()["offset"]
    assert answer.json()["complete"], answer.text


def new_shot(client: httpx.Client, name: str) -> str:
    made = client.post("/v1/shots", json={"name": name})
    made.raise_for_status()
    return made.json()["id"]


def submit(client: httpx.Client, body: dict) -> dict:
    made = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": os.urandom(8).hex()})
    made.raise_for_status()
    return made.json()


def wait(client: httpx.Client, job_id: str, until, timeout: float, poll: float = 0.05) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if until(job):
            return job
        if job["state"] in ("failed", "cancelled"):
            raise RuntimeError(f"job {job_id} {job['state']}: {job['error']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {job['state']} after {timeout} s")
        time.sleep(poll)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc (None elsewhere than Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def cpu_cost(pid: int, into: dict, per: str, others: dict[str, int] | None = None) -> Iterator[None]:
    """Adds the server's and this client's CPU milliseconds (per ``into[per]`` when set, else in all), and those
    of the ``others`` processes by name: figures that a busy machine stretches less than wall-clock latency."""
    processes = {"server": pid, **(others or {})}
    before, client = {name: cpu_seconds(p) for name, p in processes.items()}, time.process_time()
    yield
    count = into.get(per) or 1
    for name, p in processes.items():
        after = cpu_seconds(p)
        if before[name] is not None and after is not None:
            into[f"{name}_cpu_ms_per_{per}"] = round(1000 * (after - before[name]) / count, 3)
    into[f"client_cpu_ms_per_{per}"] = round(1000 * (time.process_time() - client) / count, 3)
