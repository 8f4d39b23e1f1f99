"""Jobs on real Ray workers, through the app: train -> render -> export with live events and results equal to
the library's own, cancel within 10 s, and a killed worker (a job's, or one render chunk's) whose job resumes."""

from __future__ import annotations

import io
import json
import os
import signal
import time
import zipfile
from pathlib import Path

import pytest
import shots
from service_helpers import TINY_SETTINGS, new_studio, upload_folder, wait_for
from shots import KEYFRAMES, edit, plate, render_tiny, same_weights, train_tiny, weights, write_shot

from shotfit.service.app import create_app
from shotfit.service.dispatch import RayRunner
from shotfit.service.jobwork import config_overrides
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import Job, JobChunk, JobFrame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray for the module (two CPUs), in a short temporary folder removed afterwards."""
    yield from shots.local_ray()


@pytest.fixture(scope="module")
def served(ray_local, tmp_path_factory):
    """An app running jobs on Ray (one at a time), a studio, and a tiny shot uploaded (with its truth)."""
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    root = tmp_path_factory.mktemp("served")
    settings = ServiceSettings(storage=root / "storage", workers=1, poll_s=0.2, heartbeat_s=0.5, stale_s=30)
    app = create_app(settings, RayRunner(settings), send_webhooks=False)
    studio = new_studio(app.state.store, "Acme VFX")
    shot = {"plates": write_shot(root / "plates"),
            "fixed": write_shot(root / "fixed", KEYFRAMES, make=lambda f: edit(plate(f))),
            "truth": write_shot(root / "truth", make=lambda f: edit(plate(f)))}
    with TestClient(app) as client:
        shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
        for role, folder in (("source", "plates"), ("keyframes", "fixed"), ("truth", "truth")):
            upload_folder(client, studio, shot_id, role, shot[folder])
        yield {"client": client, "app": app, "studio": studio, "shot": shot_id, "root": root, "settings": settings}


def _submit(served, kind: str, settings: dict | None = None, run_id: str | None = None) -> dict:
    answer = served["client"].post("/v1/jobs", json={"kind": kind, "shot_id": served["shot"], "run_id": run_id,
                                                     "settings": settings or {}},
                                   headers=served["studio"].headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def _events(served, job_id: str) -> list[tuple[str, dict]]:
    """The job's whole event stream, until it ends (after a final state)."""
    found, event = [], None
    with served["client"].stream("GET", f"/v1/jobs/{job_id}/events", headers=served["studio"].headers) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                found.append((event, json.loads(line[6:])))
    return found


@pytest.fixture(scope="module")
def trained(served, tmp_path_factory) -> dict:
    """A 20-step training job through the service, watched on its event stream until it ended, and the
    library's own render of its run: what a render through the service must equal, byte for byte. A fixture,
    not a test's leftover, so the tests that need it run whatever order pytest-xdist gives them."""
    train = _submit(served, "train", {**TINY_SETTINGS, "train.steps": 20, "train.preview_every": 10})
    events = _events(served, train["id"])
    direct = tmp_path_factory.mktemp("direct")
    if events[-1][1]["state"] == "succeeded":
        run = Path(served["settings"].storage).resolve() / "studios"
        render_tiny(next(run.glob(f"*/jobs/{train['id']}/run")), Path(served["root"]) / "plates", direct)
    return {"id": train["id"], "events": events, "direct": direct}


def test_train_render_export_through_the_service_equal_the_library(served, trained) -> None:
    client, studio = served["client"], served["studio"]
    train_id, events, direct = trained["id"], trained["events"], trained["direct"]
    names = [name for name, _ in events]
    assert names[0] == "state" and names[-1] == "state" and "progress" in names and "preview" in names
    done = events[-1][1]
    assert done["state"] == "succeeded" and done["progress"]["step"] == 20 and done["progress"]["steps"] == 20
    assert {"total", "l1"} <= set(done["progress"]["losses"]) and done["mlflow_run_id"]
    steps = [data["progress"]["step"] for name, data in events if name == "progress"]
    assert steps == sorted(steps) and steps[-1] == 20
    preview = [data for name, data in events if name == "preview"][0]["url"]
    assert client.get(preview, headers=studio.headers).content.startswith(b"\x89PNG")
    late = _events(served, train_id)  # a stream opened after the end still shows the last sheet
    assert [name for name, _ in late] == ["state", "preview"] and late[0][1]["state"] == "succeeded"
    assert late[1][1]["url"].endswith("?sheet=final.png"), late
    listed = {r["name"] for r in client.get(f"/v1/jobs/{train_id}/results", headers=studio.headers).json()}
    assert {"model.pt", "metrics.json", "preview_final.png"} <= listed

    render = _submit(served, "render", run_id=train_id)
    rendered = wait_for(client, studio, render["id"])
    assert rendered["state"] == "succeeded", rendered["error"]
    assert (rendered["progress"]["frames_done"], rendered["progress"]["frames_total"]) == (6, 6)
    results = {r["name"]: r for r in client.get(f"/v1/jobs/{render['id']}/results", headers=studio.headers).json()}
    assert {f"plate.{f}.png" for f in range(1001, 1007)} | {"review.mp4", "eval.json"} == set(results)
    # the same run rendered by the library (the fixture): every frame byte-identical
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{render['id']}/results.zip",
                                                     headers=studio.headers).content))
    assert set(archive.namelist()) == set(results)
    assert all(archive.read(f"plate.{f}.png") == (direct / f"plate.{f}.png").read_bytes() for f in range(1001, 1007))
    _assert_frames_are(served, render["id"], direct)
    assert "summary" in json.loads(archive.read("eval.json"))

    export = _submit(served, "export", {"export.format": "onnx"}, run_id=train_id)
    exported = wait_for(client, studio, export["id"])
    assert exported["state"] == "succeeded", exported["error"]
    onnx = client.get(f"/v1/jobs/{export['id']}/results/model.onnx", headers=studio.headers)
    assert onnx.status_code == 200 and b"shotfit.version" in onnx.content


def test_suggest_jobs_before_painting_and_after_a_run_give_their_frames_and_sheet(served, trained) -> None:
    """Before painting: 2 frames besides the 3 keyframes uploaded. After the run: its 3 unpainted frames ranked,
    and the heat-map sheet; progress shows each pass's frames."""
    client, studio = served["client"], served["studio"]
    before = _submit(served, "suggest", {"suggest.count": 2})
    done = wait_for(client, studio, before["id"])
    assert done["state"] == "succeeded", done["error"]
    assert (done["progress"]["frames_done"], done["progress"]["frames_total"]) == (6, 6)
    listed = {r["name"] for r in client.get(f"/v1/jobs/{before['id']}/results", headers=studio.headers).json()}
    assert listed == {"suggest.json"}
    answer = client.get(f"/v1/jobs/{before['id']}/results/suggest.json", headers=studio.headers).json()
    assert len(answer["frames"]) == 2 and not {f["frame"] for f in answer["frames"]} & set(KEYFRAMES)

    after = _submit(served, "suggest", {"suggest.sheet_frames": 2}, run_id=trained["id"])
    events = _events(served, after["id"])
    assert events[-1][1]["state"] == "succeeded", events[-1][1]["error"]
    stages = {data["progress"]["stage"] for name, data in events if name == "progress"}
    assert stages & {"features", "flips", "sheet"}, stages
    results = {r["name"]: r for r in client.get(f"/v1/jobs/{after['id']}/results", headers=studio.headers).json()}
    assert set(results) == {"suggest.json", "suggest.png"}
    ranked = client.get(results["suggest.json"]["url"], headers=studio.headers).json()
    assert sorted(f["frame"] for f in ranked["frames"]) == [1002, 1003, 1005] and ranked["suggest"]["mode"] == "after"
    assert client.get(results["suggest.png"]["url"], headers=studio.headers).content.startswith(b"\x89PNG")


def test_a_render_shared_by_two_ray_workers_writes_each_frame_once_and_the_same_bytes(served, trained) -> None:
    client, studio = served["client"], served["studio"]
    run_id, direct = trained["id"], trained["direct"]
    render = _submit(served, "render", {"render.workers": 2, "render.evaluate": False}, run_id=run_id)
    done = wait_for(client, studio, render["id"])
    assert done["state"] == "succeeded", done["error"]
    assert (done["progress"]["frames_done"], done["progress"]["frames_total"]) == (6, 6)
    _assert_frames_are(served, render["id"], direct)
    with served["app"].state.store.session() as session:
        frames = sorted(row.frame for row in session.query(JobFrame).filter(JobFrame.job_id == render["id"]))
    assert frames == list(range(1001, 1007))


def test_a_render_chunk_killed_mid_render_queues_the_job_and_the_next_attempt_renders_only_the_rest(
        served, trained) -> None:
    """kill -9 of one render chunk's process, found in the store (``job_chunks``), after it recorded a frame and
    before its last: the job is queued again and its second attempt renders only the frames not yet written;
    every frame is the library's bytes. No frame is recorded twice (``job_frames``, both attempts), and the
    second attempt's chunks are given no frame the first recorded. The one frame the killed chunk had in hand
    is rendered by the second attempt, or, if its file was already in place when the kill came (between the
    rename and the record), kept unrecorded: that frame alone may be missing from ``job_frames``."""
    client, studio, store = served["client"], served["studio"], served["app"].state.store
    render = _submit(served, "render", {"render.workers": 2, "render.evaluate": False}, run_id=trained["id"])
    chunk, recorded = _stop_a_chunk_mid_render(store, render["id"])
    os.kill(chunk.pid, signal.SIGKILL)  # stopped, inside this chunk: exactly its process, nothing else
    in_hand = chunk.frames[len(recorded)]
    assert recorded == chunk.frames[:len(recorded)], (chunk.frames, recorded)  # a chunk renders its frames in order

    done = wait_for(client, studio, render["id"], timeout=300)
    assert done["state"] == "succeeded" and done["attempt"] == 2, done
    assert (done["progress"]["frames_done"], done["progress"]["frames_total"]) == (6, 6)
    _assert_frames_are(served, render["id"], trained["direct"])
    with store.session() as session:
        rows = [(row.frame, row.attempt) for row in session.query(JobFrame).filter(JobFrame.job_id == render["id"])]
        chunks = session.query(JobChunk).filter(JobChunk.job_id == render["id"]).all()
    frames = [frame for frame, _ in rows]
    assert len(frames) == len(set(frames)), f"frames recorded twice: {sorted(rows)}"
    first = {frame for frame, attempt in rows if attempt == 1}
    assert set(recorded) <= first and set(range(1001, 1007)) - set(frames) <= {in_hand}, (rows, in_hand)
    second = [c for c in chunks if c.attempt == 2]
    assert second and not {f for c in second for f in c.frames} & first, [(c.attempt, c.frames) for c in chunks]
    killed = next(c for c in chunks if c.attempt == 1 and c.first_frame == chunk.first_frame)
    assert killed.pid == chunk.pid and killed.ended is None  # a killed chunk never ends
    # the first attempt's other chunk ended (finished, or stopped) before the second attempt's chunks began
    others = [c for c in chunks if c.attempt == 1 and c.first_frame != chunk.first_frame]
    assert all(c.ended is not None and c.ended <= min(s.started for s in second) for c in others), chunks


def _stop_a_chunk_mid_render(store, job_id: str, timeout: float = 120.0, step_s: float = 0.02):
    """SIGSTOP the process of a chunk of the job's first attempt at a moment it has recorded at least one of its
    frames and not yet its last (it runs in short steps once found, so that moment is not missed); the chunk's
    row and the frames it recorded, its process left stopped. The process is read from the chunk's row, and
    checked after it is stopped: a row not ended means the process is still inside that chunk (a process whose
    chunk ended may be running other work of Ray's: it is let go at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with store.session() as session:
            chunk = session.query(JobChunk).filter(JobChunk.job_id == job_id, JobChunk.attempt == 1,
                                                   JobChunk.ended.is_(None)).order_by(JobChunk.first_frame).first()
        if chunk is None:
            time.sleep(0.05)
            continue
        os.kill(chunk.pid, signal.SIGSTOP)
        stopped = True
        try:
            while time.monotonic() < deadline:
                row, recorded = _chunk_now(store, chunk)
                if row.ended is not None:
                    break  # its process is Ray's again: another chunk, or none
                if 1 <= len(recorded) < len(row.frames):
                    stopped = False
                    return row, recorded
                assert len(recorded) < len(row.frames), f"the chunk recorded all its frames in one step: {recorded}"
                os.kill(chunk.pid, signal.SIGCONT)
                time.sleep(step_s)
                os.kill(chunk.pid, signal.SIGSTOP)
        finally:
            if stopped:
                os.kill(chunk.pid, signal.SIGCONT)
    raise AssertionError(f"no chunk of job {job_id} was caught between its first and its last frame")


def _chunk_now(store, chunk) -> tuple:
    """The chunk's row as the store has it now, and the frames of it that its attempt recorded, in order."""
    with store.session() as session:
        row = session.get(JobChunk, (chunk.job_id, chunk.attempt, chunk.first_frame))
        recorded = sorted(f for (f,) in session.query(JobFrame.frame).filter(
            JobFrame.job_id == chunk.job_id, JobFrame.attempt == chunk.attempt, JobFrame.frame.in_(row.frames)))
    return row, recorded


def _assert_frames_are(served, job_id: str, direct: Path) -> None:
    """The render job's six frames, fetched through the service, are the library's render byte for byte."""
    for frame in range(1001, 1007):
        name = f"plate.{frame}.png"
        got = served["client"].get(f"/v1/jobs/{job_id}/results/{name}", headers=served["studio"].headers).content
        assert got == (direct / name).read_bytes(), name


def test_a_sweep_job_runs_its_trials_on_the_services_ray_and_gives_the_best_config(served) -> None:
    """Two trials (loss.l1 0.5 and 1, 10 steps each) as Tune trials beside the job's own task: the summary ranks
    both by val/psnr on the held-out keyframe, best.yaml is the best trial's config."""
    client, studio = served["client"], served["studio"]
    settings = {**TINY_SETTINGS, "sweep.values.loss.l1": [0.5, 1], "sweep.steps": 10, "sweep.metric": "val/psnr",
                "train.validate_every": 5}
    job = _submit(served, "sweep", settings)
    done = wait_for(client, studio, job["id"], timeout=600)
    assert done["state"] == "succeeded", done["error"]
    assert (done["progress"]["trials_started"], done["progress"]["trials_done"]) == (2, 2), done["progress"]
    assert done["mlflow_run_id"]  # the sweep's parent run, its trials nested under it
    results = {r["name"]: r for r in client.get(f"/v1/jobs/{job['id']}/results", headers=studio.headers).json()}
    assert {"summary.json", "best.yaml", "trials.csv", "sweep.yaml"} <= set(results), set(results)
    summary = client.get(results["summary.json"]["url"], headers=studio.headers).json()
    assert summary["metric"] == "val/psnr" and summary["mode"] == "max"
    assert sorted(t["params"]["loss.l1"] for t in summary["trials"]) == [0.5, 1]
    assert all(t["status"] == "finished" and t["step"] == 10 and t["metrics"]["val/psnr"] > 0
               for t in summary["trials"]), summary["trials"]
    best = max(summary["trials"], key=lambda t: t["metrics"]["val/psnr"])
    assert summary["best"]["name"] == best["name"]
    best_yaml = client.get(results["best.yaml"]["url"], headers=studio.headers).text
    assert f"l1: {best['params']['loss.l1']}" in best_yaml


def test_a_cancelled_sweep_stops_its_trials_within_10_s(served) -> None:
    client, studio = served["client"], served["studio"]
    settings = {**TINY_SETTINGS, "sweep.values.loss.l1": [0.5, 1], "sweep.steps": 100000, "sweep.metric": "val/psnr"}
    job = _submit(served, "sweep", settings)
    while (client.get(f"/v1/jobs/{job['id']}", headers=studio.headers).json()["progress"]["step"] or 0) < 5:
        time.sleep(0.2)  # a trial is training
    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=studio.headers).json()["state"] == "running"
    stopped = wait_for(client, studio, job["id"], timeout=120, poll=0.1)
    took = time.monotonic() - asked
    assert stopped["state"] == "cancelled" and stopped["error"] is None and took < 10.0, (stopped, took)
    import ray  # the module's Ray: no trial of the sweep is left holding a CPU

    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2


def test_a_sweep_whose_driver_was_killed_resumes_on_the_same_ray_and_finishes(served) -> None:
    """kill -9 of a sweep job's Ray worker (Tune's driver) mid-trial, with Ray and the server going on. Its
    trial's placement group outlives it holding both CPUs (it belongs to the Ray job, not to the killed
    process), which once left the next attempt waiting forever; now the attempt frees it, keeps the trial that
    finished, continues the killed one from its checkpoint and runs the last."""
    client, studio = served["client"], served["studio"]
    settings = {**TINY_SETTINGS, "sweep.values.loss.l1": [0.5, 1, 2], "sweep.steps": 60, "sweep.metric": "val/psnr",
                "sweep.trials_at_once": 1, "train.validate_every": 10, "train.checkpoint_every": 10,
                "train.keep_checkpoints": 10, "train.preview_every": 1000}
    job = _submit(served, "sweep", settings)
    trials = Path(served["settings"].storage).resolve()
    deadline = time.monotonic() + 300
    while True:
        found = list(trials.glob(f"studios/*/jobs/{job['id']}/sweep/trials/trial-001/trial.json"))
        if found and json.loads(found[0].read_text()).get("step", 0) >= 20:
            break
        assert time.monotonic() < deadline, "trial-001 never reached step 20"
        time.sleep(0.05)
    trials = found[0].parents[1]
    with served["app"].state.store.session() as session:
        pid = session.get(Job, job["id"]).progress["worker_pid"]
    done_before = {p: p.stat().st_mtime_ns for p in (trials / "trial-000").rglob("*") if p.is_file()}
    os.kill(pid, signal.SIGKILL)
    checkpoints = trials / "trial-001" / "run" / "checkpoints"
    kept = {p.name: p.stat().st_mtime_ns for p in checkpoints.glob("step_*.pt")}

    done = wait_for(client, studio, job["id"], timeout=400)
    assert done["state"] == "succeeded" and done["attempt"] == 2, done
    assert {p: p.stat().st_mtime_ns for p in (trials / "trial-000").rglob("*") if p.is_file()} == done_before
    assert kept and all((checkpoints / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())
    results = {r["name"]: r for r in client.get(f"/v1/jobs/{job['id']}/results", headers=studio.headers).json()}
    summary = client.get(results["summary.json"]["url"], headers=studio.headers).json()
    assert sorted((t["name"], t["status"], t["step"]) for t in summary["trials"]) == [
        ("trial-000", "finished", 60), ("trial-001", "finished", 60), ("trial-002", "finished", 60)]
    assert done["progress"]["trials_done"] == 3, done["progress"]  # the kept trial counts as done
    import ray  # the module's Ray: nothing of either attempt is left holding a CPU

    deadline = time.monotonic() + 10
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2


def test_a_job_that_fails_says_why_in_one_line_without_the_servers_folders(served) -> None:
    client, studio = served["client"], served["studio"]
    job = _submit(served, "train", {**TINY_SETTINGS, "data.validation_frames": [1002]})
    failed = wait_for(client, studio, job["id"])
    assert failed["state"] == "failed" and failed["finished"] is not None
    error = failed["error"]
    assert "data.validation_frames names frame 1002" in error and "\n" not in error
    assert str(Path(served["settings"].storage).resolve()) not in error and "studios/" not in error


def test_a_cancelled_training_stops_within_10_s_with_a_checkpoint(served) -> None:
    client, studio = served["client"], served["studio"]
    job = _submit(served, "train", {**TINY_SETTINGS, "train.steps": 100000, "train.checkpoint_every": 50})
    wait_for(client, studio, job["id"], ("running",))
    while (client.get(f"/v1/jobs/{job['id']}", headers=studio.headers).json()["progress"]["step"] or 0) < 5:
        time.sleep(0.2)
    asked = time.monotonic()
    assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=studio.headers).json()["state"] == "running"
    stopped = wait_for(client, studio, job["id"], timeout=60, poll=0.1)
    took = time.monotonic() - asked
    assert stopped["state"] == "cancelled" and stopped["error"] is None and took < 10.0, (stopped, took)
    run = next(Path(served["settings"].storage).resolve().glob(f"studios/*/jobs/{job['id']}/run"))
    assert list((run / "checkpoints").glob("step_*.pt")) and not (run / "model.pt").exists()


def test_a_killed_worker_is_noticed_and_its_training_resumes_to_the_same_model(served, tmp_path) -> None:
    """kill -9 of the Ray worker mid-training: the job is queued again, resumes from its checkpoint (not
    from step 1) and ends with the model an uninterrupted run makes, bit for bit."""
    client, studio = served["client"], served["studio"]
    settings = {**TINY_SETTINGS, "train.steps": 300, "train.checkpoint_every": 25, "train.preview_every": 1000}
    job = _submit(served, "train", settings)
    store = served["app"].state.store
    while True:
        body = client.get(f"/v1/jobs/{job['id']}", headers=studio.headers).json()
        if (body["progress"]["step"] or 0) >= 60:
            break
        assert body["state"] in ("queued", "running"), body
        time.sleep(0.1)
    with store.session() as session:  # the row's internal progress: the worker's pid
        pid = session.get(Job, job["id"]).progress["worker_pid"]
    os.kill(pid, signal.SIGKILL)
    done = wait_for(client, studio, job["id"], timeout=300)
    assert done["state"] == "succeeded" and done["attempt"] == 2, done
    with store.session() as session:
        first = session.get(Job, job["id"]).progress["first_step"]
    assert first > 25, f"the second attempt started at step {first}"
    run = next(Path(served["settings"].storage).resolve().glob(f"studios/*/jobs/{job['id']}/run"))
    reference = _train_reference(served, settings, tmp_path)
    assert same_weights(weights(run / "model.pt"), weights(reference / "model.pt"))
    with store.session() as session:
        assert session.query(JobFrame).filter(JobFrame.job_id == job["id"]).count() == 0


def _train_reference(served, settings: dict, tmp_path: Path) -> Path:
    """The same training, uninterrupted, by the library in this process."""
    root = Path(served["root"])
    train_tiny(root / "plates", root / "fixed", tmp_path / "reference", *config_overrides(settings, {}))
    return tmp_path / "reference"
