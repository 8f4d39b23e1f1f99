"""The studios' files in S3 (``files="s3://bucket/prefix"``), against a real S3 endpoint on the loopback: moto's
server. Uploads land in the bucket, names stay data, results stream from the bucket, and a train -> render job
gives the same frames as with a local folder."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import shots
from service_helpers import BUCKET, SMALL_LIMITS, TINY_SETTINGS, Studio, new_studio, upload, upload_folder, wait_for
from shots import KEYFRAMES, edit, fails, plate, same_weights, succeeds, train_tiny, weights, write_png, write_shot

from shotfit.service.app import create_app
from shotfit.service.settings import ServiceSettings


@contextlib.contextmanager
def _recorded(client) -> Iterator[list[dict]]:
    """Every request moto's server answered inside the block, as its recorder wrote them down (method, URL);
    the list is filled in when the block ends."""
    import httpx  # a test dependency only

    endpoint = client.meta.endpoint_url
    for step in ("reset-recording", "start-recording"):
        httpx.post(f"{endpoint}/moto-api/recorder/{step}", timeout=10).raise_for_status()
    found: list[dict] = []
    try:
        yield found
    finally:
        httpx.post(f"{endpoint}/moto-api/recorder/stop-recording", timeout=10).raise_for_status()
        text = httpx.get(f"{endpoint}/moto-api/recorder/download-recording", timeout=10).text
        found.extend(json.loads(line) for line in text.splitlines() if line.strip())


def _listed(recorded: list[dict]) -> list[str]:
    """The prefix of each LIST request recorded (a GET of the bucket itself; '' lists all of it)."""
    prefixes = []
    for request in recorded:
        url = urlsplit(request["url"])
        if request["method"] == "GET" and url.path.strip("/") == BUCKET:
            prefixes.append(parse_qs(url.query).get("prefix", [""])[0])
    return prefixes


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


def _events_of(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """Server-sent events as (name, JSON data), read from a stream's lines as they come."""
    name = ""
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def test_watching_a_training_on_s3_shows_each_sheet_its_worker_put_and_lists_nothing(s3, s3_app, tmp_path: Path
                                                                                     ) -> None:
    """A client watching a training job on S3 (its event stream and latest.png) gets one preview event for each
    new contact sheet the worker put in the bucket, whose URL serves that sheet's bytes; a sheet written but
    not yet put is not named; and the server lists nothing of the job's folder while it is watched (moto's own
    record of the requests it answered): it reads the sheet's name from the job's row, where the worker writes
    it (as here, through the worker's own mirror and naming)."""
    from sqlalchemy import update

    from shotfit.runs.folder import RunFolder
    from shotfit.service.claims import claim
    from shotfit.service.storage import StudioStorage  # the storage as the worker sees it
    from shotfit.service.store import Job
    from shotfit.service.worker import newest_stored_sheet

    client, acme, settings, prefix = s3_app
    shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=acme.headers).json()["id"]
    for role, pixels in (("source", plate(1001)), ("keyframes", edit(plate(1001)))):
        write_png(tmp_path / f"{role}.png", pixels)
        assert upload(client, acme, shot_id, role, "plate.1001.png", (tmp_path / f"{role}.png").read_bytes()
                      ).status_code == 200
    job_id = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot_id, "settings": {}},
                         headers=acme.headers).json()["id"]
    store = client.app.state.store
    assert claim(store, job_id, "test/worker") == 1
    with store.session() as session:
        studio_id = session.get(Job, job_id).studio_id
    storage = StudioStorage.of(settings, studio_id)
    mirror, run = storage.mirror(storage.job(job_id)), RunFolder(storage.job(job_id) / "run")
    run.previews.mkdir(parents=True)
    sheets: dict[str, bytes] = {}

    def write_sheet(name: str, frame: int) -> None:
        write_png(run.previews / name, plate(frame))
        sheets[name] = (run.previews / name).read_bytes()

    def record(**values) -> None:  # what the worker writes at a heartbeat
        with store.session() as session:
            session.execute(update(Job).where(Job.id == job_id).values(preview=newest_stored_sheet(mirror, run),
                                                                       **values))

    latest = f"/v1/jobs/{job_id}/previews/latest.png"
    with _recorded(s3) as recorded:
        assert client.get(latest, headers=acme.headers).status_code == 404  # no sheet yet
        with store.session() as session:  # a name that is no plain file name never forms a path
            session.execute(update(Job).where(Job.id == job_id).values(preview="../../../shots/x.png"))
        assert client.get(latest, headers=acme.headers).status_code == 404
        write_sheet("step_000010.png", 1002)
        mirror.push()
        record()
        seen = []
        with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=acme.headers) as stream:
            for name, data in _events_of(stream.iter_lines()):
                seen.append((name, data.get("state") or data["url"]))
                if name != "preview":
                    continue
                served = client.get(data["url"], headers=acme.headers)
                assert served.status_code == 200 and served.headers["content-type"] == "image/png"
                assert served.content == sheets[data["url"].rsplit("=", 1)[1]]
                if data["url"].endswith("step_000010.png"):
                    write_sheet("step_000020.png", 1003)
                    mirror.push()
                    write_sheet("final.png", 1004)  # written, not put yet: the bucket cannot serve it
                    (run.previews / ".final.partial-host-1-ab12.png").write_bytes(b"half")
                    record()
                elif data["url"].endswith("step_000020.png"):
                    mirror.push()
                    record(state="succeeded")  # the final state and the last sheet, in one write
        final = client.get(latest, headers=acme.headers)
    url = f"/v1/jobs/{job_id}/previews/latest.png?sheet="
    assert seen == [("state", "running"), ("preview", url + "step_000010.png"), ("preview", url + "step_000020.png"),
                    ("preview", url + "final.png"), ("state", "succeeded")]
    assert final.status_code == 200 and final.content == sheets["final.png"]
    job_folder = f"{prefix}/studios/{studio_id}/jobs/{job_id}/"
    assert [p for p in _listed(recorded) if job_folder.startswith(p) or p.startswith(job_folder)] == []
    # the record is of real requests: the results, which are listed, show up in it
    with _recorded(s3) as recorded:
        listed = client.get(f"/v1/jobs/{job_id}/results", headers=acme.headers).json()
    assert {item["name"] for item in listed} == {"preview_step_000010.png", "preview_step_000020.png",
                                                  "preview_final.png"}
    assert any(p.startswith(job_folder) for p in _listed(recorded))


def test_the_preview_of_a_job_whose_results_retention_removed_is_one_head_and_no_listing(s3, s3_app, tmp_path: Path
                                                                                        ) -> None:
    """A finished training job whose row still names its last sheet, after retention removed its results from the
    bucket: latest.png answers 404 after one HEAD of that sheet, and lists nothing (fsspec's ``info``, through
    obstore's adapter, followed the failed HEAD with a LIST of the name as a folder: a request per poll)."""
    from datetime import timedelta

    from sqlalchemy import select, update

    from shotfit.service.retention import purge
    from shotfit.service.store import Job, Studio
    from shotfit.service.store.models import new_id, now

    client, acme, settings, prefix = s3_app
    shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=acme.headers).json()["id"]
    store, job_id = client.app.state.store, new_id("job")
    with store.session() as session:  # a training that ended a month ago, its last sheet named in its row
        studio_id = session.scalars(select(Studio.id).where(Studio.name == acme.name)).one()
        session.add(Job(id=job_id, studio_id=studio_id, key_id=acme.key_id, kind="train", shot_id=shot_id,
                        state="succeeded", finished=now() - timedelta(days=30), preview="final.png"))
        session.execute(update(Studio).where(Studio.id == studio_id).values(retention_days=7))
    sheet = f"{prefix}/studios/{studio_id}/jobs/{job_id}/run/previews/final.png"
    write_png(tmp_path / "final.png", plate(1001))
    s3.put_object(Bucket=BUCKET, Key=sheet, Body=(tmp_path / "final.png").read_bytes())
    latest = f"/v1/jobs/{job_id}/previews/latest.png"
    assert client.get(latest, headers=acme.headers).content == (tmp_path / "final.png").read_bytes()
    assert purge(store, settings)["jobs"] == 1 and not _keys(s3, f"{prefix}/studios/{studio_id}/jobs/")
    with _recorded(s3) as recorded:
        assert client.get(latest, headers=acme.headers).status_code == 404
    asked = [(request["method"], urlsplit(request["url"]).path) for request in recorded]
    assert asked == [("HEAD", f"/{BUCKET}/{sheet}")], asked


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


@contextlib.contextmanager
def _training_on_s3(tmp_path: Path, name: str) -> Iterator[tuple[Any, Any, Studio, str, str]]:
    """A server whose studios' files are in the bucket under ``NAME-...`` and whose jobs run on the module's Ray
    (one worker), with the tiny shot's source and keyframes (written to ``plates/`` and ``fixed/``) uploaded:
    (app, client, studio, shot id, prefix)."""
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    from shotfit.service.dispatch import RayRunner  # jobs on Ray: only these tests run them

    plates, fixed = write_shot(tmp_path / "plates"), write_shot(tmp_path / "fixed", KEYFRAMES,
                                                                  make=lambda f: edit(plate(f)))
    prefix = f"{name}-{tmp_path.name}"
    settings = ServiceSettings(storage=tmp_path / "scratch", files=f"s3://{BUCKET}/{prefix}", workers=1, poll_s=0.2,
                               heartbeat_s=0.5)
    app = create_app(settings, RayRunner(settings), send_webhooks=False)
    studio = new_studio(app.state.store, "Acme VFX")
    with TestClient(app) as client:
        shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
        upload_folder(client, studio, shot_id, "source", plates)
        upload_folder(client, studio, shot_id, "keyframes", fixed)
        yield app, client, studio, shot_id, prefix


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_checkpoint_in_the_bucket_not_its_local_copy(s3, ray_local,
                                                                                      tmp_path: Path) -> None:
    """kill -9 of the worker mid-training, and its scratch copy of the job wiped (the next attempt may run on
    another machine): the job resumes from the checkpoint put in the bucket, to the model an uninterrupted
    run makes, bit for bit."""
    from shotfit.service.jobwork import config_overrides
    from shotfit.service.store import Job

    train = {**TINY_SETTINGS, "train.steps": 300, "train.checkpoint_every": 25, "train.preview_every": 1000}
    with _training_on_s3(tmp_path, "resume") as (app, client, studio, shot_id, prefix):
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
    train_tiny(tmp_path / "plates", tmp_path / "fixed", tmp_path / "reference", *config_overrides(train, {}))
    assert same_weights(weights(tmp_path / "served.pt"), weights(tmp_path / "reference" / "model.pt"))


@pytest.mark.slow
def test_a_training_watched_through_a_killed_worker_keeps_its_preview_and_no_poll_lists_the_bucket(
        s3, ray_local, tmp_path: Path) -> None:
    """A client watches a training job on S3 whose worker is killed (kill -9) after its first contact sheet, its
    scratch copy wiped: latest.png keeps serving the recorded sheet from the bucket while the job waits and
    while its next attempt starts; each preview event's URL serves that sheet's bytes as the bucket holds them,
    the last one final.png. The server's polls list nothing of the previews folder: moto's record of requests
    shows it listed at most once an attempt (its worker fetching the job's folder), where each poll of each
    watcher listed it before."""
    from shotfit.service.store import Job

    train = {**TINY_SETTINGS, "train.steps": 300, "train.checkpoint_every": 25, "train.preview_every": 25}
    with _training_on_s3(tmp_path, "watch") as (app, client, studio, shot_id, prefix):
        with _recorded(s3) as recorded:
            job_id = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot_id, "settings": train},
                                 headers=studio.headers).json()["id"]
            with app.state.store.session() as session:
                studio_id = session.get(Job, job_id).studio_id
            previews = f"{prefix}/studios/{studio_id}/jobs/{job_id}/run/previews/"

            def in_bucket(name: str) -> bytes:
                return s3.get_object(Bucket=BUCKET, Key=previews + name)["Body"].read()

            shown, kept, states = [], [], []
            with client.stream("GET", f"/v1/jobs/{job_id}/events", headers=studio.headers) as stream:
                for name, data in _events_of(stream.iter_lines()):
                    if name != "preview":
                        states.append((data["state"], data["attempt"]))
                        # the job queued again, or its next attempt's first report (made before it fetches the
                        # job's folder): the sheet recorded by the dead worker is what latest.png serves
                        if shown and (data["state"] == "queued" or (data["attempt"] == 2 and not kept)):
                            served = client.get(f"/v1/jobs/{job_id}/previews/latest.png", headers=studio.headers)
                            assert served.status_code == 200, (data["state"], served.text)
                            kept.append(served.content == in_bucket(shown[-1]))
                        continue
                    sheet = data["url"].rsplit("?sheet=", 1)[1]
                    served = client.get(data["url"], headers=studio.headers)
                    assert served.status_code == 200 and served.content == in_bucket(sheet), sheet
                    shown.append(sheet)
                    if len(shown) == 1:  # the first sheet: its worker dies, with what it had locally
                        with app.state.store.session() as session:
                            job = session.get(Job, job_id)
                            assert job.state == "running", job.state
                            os.kill(job.progress["worker_pid"], signal.SIGKILL)
                        [work] = (tmp_path / "scratch").glob(f"studios/*/jobs/{job_id}")
                        shutil.rmtree(work / "run")
    assert states[-1] == ("succeeded", 2), states
    assert kept and all(kept), kept
    assert shown[-1] == "final.png" and len(set(shown)) == len(shown) >= 2, shown
    listed = _listed(recorded)
    assert any(p and previews.startswith(p) for p in listed)  # the record holds the workers' fetches
    assert len([p for p in listed if p.startswith(previews)]) <= 2, [p for p in listed if p.startswith(previews)]
