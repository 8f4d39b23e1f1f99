"""A real ``shotfit serve`` for the browser and OpenAPI tests: its own process (uvicorn, local Ray, SQLite,
files in a temporary folder) on a free loopback port, with a studio's key made by ``shotfit keys create``.
"""

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
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LiveServer:
    url: str
    key: str
    storage: Path
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def job_folder(self, job_id: str) -> Path:
        """Where the server keeps a job's work (``studios/STUDIO/jobs/JOB``, the storage layout)."""
        [folder] = self.storage.glob(f"studios/*/jobs/{job_id}")
        return folder

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(home: Path, ray_tmp: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               TORCH_HOME=str(home / ".cache" / "torch"), MPLCONFIGDIR=str(home / ".config" / "matplotlib"),
               RAY_TMPDIR=ray_tmp, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p))
    for name in ("MLFLOW_TRACKING_URI", "SHOTFIT_STORAGE", "SHOTFIT_DB", "SHOTFIT_TRACKING_URI", "OCIO"):
        env.pop(name, None)
    return env


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"shotfit serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.ConnectionError):
            if requests.get(f"{url}/v1/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"shotfit serve did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def live_server(folder: Path, studio: str = "Acme VFX", *extra: str, timeout: float = 180.0) -> Iterator[LiveServer]:
    """``shotfit serve`` in ``folder`` (storage, SQLite store, HOME, log); stopped with SIGTERM afterwards."""
    storage, home, log = folder / "storage", folder / "home", folder / "serve.log"
    home.mkdir(parents=True, exist_ok=True)
    ray_tmp = tempfile.mkdtemp(prefix="sf-ray-", dir="/tmp")  # short: Ray's Unix sockets live there
    env = _environment(home, ray_tmp)
    made = subprocess.run([sys.executable, "-m", "shotfit", "keys", "create", "--studio", studio,
                           "--storage", str(storage)], env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.split()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "shotfit", "serve", "--host", "127.0.0.1", "--port",
                                    str(port), "--storage", str(storage), *extra],
                                   env=env, stdout=out, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    try:
        _wait_healthy(url, process, log, timeout)
        yield LiveServer(url, key, storage, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: Ray's processes it left go too
            process.wait(timeout=30)
        shutil.rmtree(ray_tmp, ignore_errors=True)
