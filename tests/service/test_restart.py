"""kill -9 of the server in the middle of a training job and of a render job, then a restart: the jobs finish
from their last checkpoint / last written frame, with results equal to an uninterrupted run (the model bit
for bit, every frame byte for byte), and no frame is written twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from service_helpers import TINY_SETTINGS, Studio, upload_folder, wait_for
from shots import disc_plate, edit, render_tiny, same_weights, train_tiny, weights, write_shot

from shotfit.service.jobwork import config_overrides
from shotfit.service.keys import create_key
from shotfit.service.store import Job, JobFrame, open_store

pytestmark = pytest.mark.slow

BIG = (240, 320)  # frames large enough that a render takes a few seconds, so a kill lands mid-way


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """``shotfit serve`` in its own process (and its local Ray), started and killed as an operator would."""

    def __init__(self, storage: Path, ray_tmp: Path) -> None:
        self.storage, self.port = storage, _free_port()
        self.env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "RAY_USAGE_STATS_ENABLED": "0"}
        self.process: subprocess.Popen | None = None
        self.groups: list[int] = []
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shotfit", "serve", "--port", str(self.port), "--storage", str(self.storage),
             "--stale-after", "60"], env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self.groups.append(self.process.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise AssertionError("the server did not start in 120 s")

    def kill(self) -> None:
        """kill -9 of the server process alone (its Ray goes the way Ray goes when its driver dies)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """Stop the running server; then whatever a killed one left (Ray's agents outlive their driver)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def server(tmp_path: Path):
    ray_tmp = Path(os.path.join("/tmp", f"sf-ray-{os.getpid()}-{tmp_path.name[-8:]}"))
    server = Server(tmp_path / "storage", ray_tmp)
    yield server
    server.stop()


def _client(server: Server, studio: Studio) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=studio.headers, timeout=60)


def _progress(client: httpx.Client, job_id: str, field: str, at_least: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["state"] in ("queued", "running"), job
        if (job["progress"][field] or 0) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {field} {at_least}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_killing_the_server_mid_train_and_mid_render_loses_nothing_and_repeats_nothing(server, tmp_path) -> None:
    shot = {"plates": write_shot(tmp_path / "plates", range(1, 41), make=lambda f: disc_plate(f, *BIG)),
            "fixed": write_shot(tmp_path / "fixed", (1, 20, 40), make=lambda f: edit(disc_plate(f, *BIG)))}
    store_url = f"sqlite:///{(tmp_path / 'storage').resolve() / 'shotfit.db'}"
    store = open_store(store_url)
    key_id, key = create_key(store, "Acme VFX")
    studio = Studio("Acme VFX", key_id, key)
    settings = {**TINY_SETTINGS, "train.steps": 300, "train.checkpoint_every": 25, "train.preview_every": 1000}

    server.start()
    with _client(server, studio) as client:
        shot_id = client.post("/v1/shots", json={"name": "sh010"}).json()["id"]
        upload_folder(client, studio, shot_id, "source", shot["plates"])
        upload_folder(client, studio, shot_id, "keyframes", shot["fixed"])
        train = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot_id, "settings": settings}).json()
        _progress(client, train["id"], "step", 60)
    with store.session() as session:
        worker = session.get(Job, train["id"]).progress["worker_pid"]
    server.kill()
    deadline = time.monotonic() + 15
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the killed server's worker goes on training"
    run = next((tmp_path / "storage").resolve().glob(f"studios/*/jobs/{train['id']}/run"))
    assert list((run / "checkpoints").glob("step_*.pt")), "no checkpoint to resume from"

    server.start()
    with _client(server, studio) as client:
        trained = wait_for(client, studio, train["id"])
        assert trained["state"] == "succeeded" and trained["attempt"] == 2, trained
        with store.session() as session:
            assert session.get(Job, train["id"]).progress["first_step"] > 25  # resumed, not from step 1
        reference = tmp_path / "reference"
        train_tiny(shot["plates"], shot["fixed"], reference, *config_overrides(settings, {}))
        assert same_weights(weights(run / "model.pt"), weights(reference / "model.pt"))

        render = client.post("/v1/jobs", json={"kind": "render", "shot_id": shot_id, "run_id": train["id"],
                                               "settings": {"render.review": False, "render.evaluate": False}}).json()
        _progress(client, render["id"], "frames_done", 4)
    server.kill()
    frames = next((tmp_path / "storage").resolve().glob(f"studios/*/jobs/{render['id']}/frames"))
    written_at_kill = len(list(frames.glob("*.png")))
    assert 0 < written_at_kill < 40, written_at_kill

    server.start()
    with _client(server, studio) as client:
        rendered = wait_for(client, studio, render["id"])
        # on a fast machine the killed server's worker may finish the render before anyone re-queues it
        assert rendered["state"] == "succeeded" and rendered["attempt"] in (1, 2), rendered
    with store.session() as session:
        writes = [(row.frame, row.attempt) for row in session.query(JobFrame).filter(JobFrame.job_id == render["id"])]
    numbers = [frame for frame, _ in writes]
    assert sorted(numbers) == list(range(1, 41)), "a frame written twice, or one missing"
    # the killed server's worker may finish frames before it notices its driver is gone (fenced by its
    # attempt, so never a frame twice); the restarted server's attempt 2 finishes the job either way
    assert {attempt for _, attempt in writes} <= {1, 2} and 1 in {attempt for _, attempt in writes}
    render_tiny(reference, shot["plates"], tmp_path / "direct")
    for frame in range(1, 41):
        name = f"plate.{frame:04d}.png"
        assert (frames / name).read_bytes() == (tmp_path / "direct" / name).read_bytes(), name
    store.close()
