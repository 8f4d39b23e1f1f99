"""The studios' files in S3 (``files="s3://bucket/prefix"``), against a real S3 endpoint on the loopback: moto's
server. Uploads land in the bucket, names stay data, results stream from the bucket, and a train -> render job
gives the same frames as with a local folder."""

from __future__ import annotations

import io
import os
import shutil
import signal
import time
import zipfile
from pathlib import Path

import pytest
import shots
from service_helpers import BUCKET, SMALL_LIMITS, TINY_SETTINGS, new_studio, upload, upload_folder, wait_for
from shots import KEYFRAMES, edit, fails, plate, same_weights, succeeds, train_tiny, weights, write_png, write_shot

from shotfit.service.app import create_app
from shotfit.service.settings import ServiceSettings


def _keys(client, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listed}


@pytest.fixture
def s3_app(s3, tmp_path: Path):
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    prefix = f"uploads-{tmp_path.name}"
    settings = ServiceSettings(storage=tmp_path / "scratch", files=f"s3://{BUCKET}/{prefix}", limits=SMALL_LIMITS)
    app = create_app(settings, send_webhooks=False)
    with TestClient(app) as client:
        yield client, new_studio(app.state.store, "Acme VFX"), settings, prefix


def test_uploads_land_in_the_bucket_and_names_stay_data(s3, s3_app, tmp_path: Path) -> None:
    client, acme, settings, prefix = s3_app
    write_png(tmp_path / "frame.png", plate(1001))
    png = (tmp_path / "frame.png").read_bytes()
    shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=acme.headers).json()["id"]
    done = upload(client, acme, shot_id, "source", "plate.1001.png", png, chunk=700)
    assert done.status_code == 200 and done.json()["complete"], done.text
    stored = _keys(s3, prefix)
    [(key, data)] = stored.items()
    assert key.endswith(f"/shots/{shot_id}/source/plate.1001.png") and data == png
    # nothing of the file stays on the server's disk once it is in the bucket
    assert not [p for p in settings.storage.rglob("*.png")]
    [listed] = client.get(f"/v1/shots/{shot_id}/files", headers=acme.headers).json()
    sent = client.get(listed["url"], headers=acme.headers)  # streamed from the bucket, not cached on the disk
    assert sent.status_code == 200 and sent.content == png and not [p for p in settings.storage.rglob("*.png")]
    for name, status in (("../escape.png", 422), ("a/b.png", 422), ("/etc/x.png", 422), ("..\\x.png", 422),
                         ("plate.1001.png", 409)):
        answer = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": name, "size": len(png)},
                             headers=acme.headers)
        assert answer.status_code == status, (name, answer.text)
    assert _keys(s3, prefix) == stored  # nothing else written, anywhere in the bucket
    assert {k["Key"] for k in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])} == set(stored)


def test_a_storage_url_keeps_the_database_in_the_scratch_folder_and_a_bad_one_is_one_line(s3, tmp_path: Path
                                                                                          ) -> None:
    made = succeeds("keys", "create", "--studio", "Acme VFX", "--storage", f"s3://{BUCKET}/cli", "--scratch",
                    tmp_path / "scratch")
    assert made.stdout.startswith("sfk_") and (tmp_path / "scratch" / "shotfit.db").is_file()
    line = fails("serve", "--storage", "s3://no-such-bucket/x", "--scratch", tmp_path / "scratch", "--workers", "0")
    assert "storage 's3://no-such-bucket/x' is not writable" in line and line.endswith("(--storage)")


def test_a_job_folder_rewritten_elsewhere_is_fetched_fresh_and_hidden_files_stay_local(s3, tmp_path: Path) -> None:
    """Two machines' scratch folders over one bucket: a checkpoint rewritten at the same size on B is what A
    resumes from, and A's lock file is neither put nor removed."""
    from shotfit.service.storage import StudioStorage  # the storage as workers see it

    url = f"s3://{BUCKET}/{tmp_path.name}"
    a, b = (StudioStorage(tmp_path / machine, "studio_x", url) for machine in ("a", "b"))
    work_a = a.job("job_1")
    (work_a / "run").mkdir(parents=True)
    (work_a / "run" / "last.pt").write_bytes(b"step 10")
    (work_a / ".attempt.lock").write_bytes(b"")
    assert a.mirror(work_a).push() == 1
    on_b = b.mirror(b.job("job_1"))
    assert on_b.pull() == 1 and (b.job("job_1") / "run" / "last.pt").read_bytes() == b"step 10"
    (b.job("job_1") / "run" / "last.pt").write_bytes(b"step 20")  # the same size: only the content tells
    assert on_b.push() == 1
    assert a.mirror(work_a).pull() == 0 and (work_a / "run" / "last.pt").read_bytes() == b"step 10"
    assert a.mirror(work_a).pull(fresh=True) == 1 and (work_a / "run" / "last.pt").read_bytes() == b"step 20"
    assert (work_a / ".attempt.lock").exists()
    assert set(_keys(s3, tmp_path.name)) == {f"{tmp_path.name}/studios/studio_x/jobs/job_1/run/last.pt"}


@pytest.fixture(scope="module")
def ray_local(s3):
    """A local Ray for the module, started after the ``AWS_*`` variables are set (its workers inherit them)."""
    yield from shots.local_ray()


def _train_and_render(settings: ServiceSettings, shots: dict[str, Path]) -> tuple[dict[str, bytes], str, str]:
    """Upload the tiny shot, train, render (two Ray workers sharing the frames): the results zip's files, and
    the two jobs' ids."""
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    from shotfit.service.dispatch import RayRunner  # jobs on Ray: only this test runs them

    app = create_app(settings, RayRunner(settings), send_webhooks=False)
    studio = new_studio(app.state.store, "Acme VFX")
    with TestClient(app) as client:
        shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
        for role, folder in shots.items():
            upload_folder(client, studio, shot_id, role, folder)
        jobs = {}
        for kind, body in (("train", {"settings": {**TINY_SETTINGS, "train.steps": 20, "train.preview_every": 10}}),
                           ("render", {"settings": {"render.workers": 2}})):
            made = client.post("/v1/jobs", json={"kind": kind, "shot_id": shot_id, "run_id": jobs.get("train"),
                                                 **body}, headers=studio.headers)
            assert made.status_code == 201, made.text
            done = wait_for(client, studio, made.json()["id"])
            assert done["state"] == "succeeded", done["error"]
            jobs[kind] = done["id"]
        preview = client.get(f"/v1/jobs/{jobs['train']}/previews/latest.png", headers=studio.headers)
        assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
        archive = zipfile.ZipFile(io.BytesIO(client.get(f"/v1/jobs/{jobs['render']}/results.zip",
                                                         headers=studio.headers).content))
        files = {name: archive.read(name) for name in archive.namelist()}
        for name in ("plate.1001.png", "eval.json"):
            one = client.get(f"/v1/jobs/{jobs['render']}/results/{name}", headers=studio.headers)
            assert one.status_code == 200 and one.content == files[name], name
    return files, jobs["train"], jobs["render"]


@pytest.mark.slow
def test_train_then_render_on_s3_gives_the_frames_of_a_local_folder(s3, ray_local, tmp_path: Path) -> None:
    shots = {"source": write_shot(tmp_path / "plates"),
             "keyframes": write_shot(tmp_path / "fixed", KEYFRAMES, make=lambda f: edit(plate(f))),
             "truth": write_shot(tmp_path / "truth", make=lambda f: edit(plate(f)))}
    common = {"workers": 1, "poll_s": 0.2, "heartbeat_s": 0.5}
    local, _, _ = _train_and_render(ServiceSettings(storage=tmp_path / "local", **common), shots)
    scratch = tmp_path / "scratch"
    on_s3, train_id, render_id = _train_and_render(
        ServiceSettings(storage=scratch, files=f"s3://{BUCKET}/jobs", **common), shots)
    frames = {f"plate.{f}.png" for f in range(1001, 1007)}
    assert frames | {"review.mp4", "eval.json"} == set(local) == set(on_s3)
    for name in sorted(frames):
        assert on_s3[name] == local[name], name
    # the results live in the bucket (what the API streamed), and the run the render read was put there too
    stored = _keys(s3, "jobs/")
    for name in frames:
        [key] = [k for k in stored if k.endswith(f"/jobs/{render_id}/frames/{name}")]
        assert stored[key] == local[name]
    assert any(k.endswith(f"/jobs/{train_id}/run/model.pt") for k in stored)
    # the server's scratch copy can go: the results still come from the bucket
    shutil.rmtree(scratch / "studios")
    s3_again = ServiceSettings(storage=scratch, files=f"s3://{BUCKET}/jobs")
    from shotfit.service.storage import StudioStorage  # the storage as the server sees it

    [studio_id] = {k.split("/")[2] for k in stored}
    storage = StudioStorage.of(s3_again, studio_id)
    assert storage.files(storage.job(render_id))["frames/plate.1001.png"].open().read() == local["plate.1001.png"]


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_checkpoint_in_the_bucket_not_its_local_copy(s3, ray_local,
                                                                                      tmp_path: Path) -> None:
    """kill -9 of the worker mid-training, and its scratch copy of the job wiped (the next attempt may run on
    another machine): the job resumes from the checkpoint put in the bucket, to the model an uninterrupted
    run makes, bit for bit."""
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    from shotfit.service.dispatch import RayRunner  # jobs on Ray: only these tests run them
    from shotfit.service.jobwork import config_overrides
    from shotfit.service.store import Job

    plates, fixed = write_shot(tmp_path / "plates"), write_shot(tmp_path / "fixed", KEYFRAMES,
                                                                  make=lambda f: edit(plate(f)))
    prefix = f"resume-{tmp_path.name}"
    settings = ServiceSettings(storage=tmp_path / "scratch", files=f"s3://{BUCKET}/{prefix}", workers=1, poll_s=0.2,
                               heartbeat_s=0.5)
    app = create_app(settings, RayRunner(settings), send_webhooks=False)
    studio = new_studio(app.state.store, "Acme VFX")
    train = {**TINY_SETTINGS, "train.steps": 300, "train.checkpoint_every": 25, "train.preview_every": 1000}
    with TestClient(app) as client:
        shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
        upload_folder(client, studio, shot_id, "source", plates)
        upload_folder(client, studio, shot_id, "keyframes", fixed)
        job = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot_id, "settings": train},
                          headers=studio.headers).json()
        deadline = time.monotonic() + 240
        while not any("/checkpoints/" in key for key in _keys(s3, f"{prefix}/")):  # one put in the bucket
            state = client.get(f"/v1/jobs/{job['id']}", headers=studio.headers).json()["state"]
            assert time.monotonic() < deadline and state in ("queued", "running"), state
            time.sleep(0.2)
        with app.state.store.session() as session:  # the row's internal progress: the worker's pid
            pid = session.get(Job, job["id"]).progress["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        [work] = (tmp_path / "scratch").glob(f"studios/*/jobs/{job['id']}")
        shutil.rmtree(work / "run")
        done = wait_for(client, studio, job["id"], timeout=300)
        assert done["state"] == "succeeded" and done["attempt"] == 2, done
        with app.state.store.session() as session:
            first = session.get(Job, job["id"]).progress["first_step"]
        assert first > 25, f"the second attempt started at step {first}"
        model = client.get(f"/v1/jobs/{job['id']}/results/model.pt", headers=studio.headers)
        assert model.status_code == 200
    (tmp_path / "served.pt").write_bytes(model.content)
    train_tiny(plates, fixed, tmp_path / "reference", *config_overrides(train, {}))
    assert same_weights(weights(tmp_path / "served.pt"), weights(tmp_path / "reference" / "model.pt"))
