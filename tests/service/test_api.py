"""The API's contract without workers: auth, isolation between studios, idempotent submits, limits, errors."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from service_helpers import SMALL_LIMITS, TINY_SETTINGS, Studio, new_studio, upload, upload_folder
from shots import KEYFRAMES, edit, plate, write_png, write_shot
from sqlalchemy import update

from shotfit.runs.folder import RunFolder
from shotfit.service.app import create_app
from shotfit.service.deps import admit
from shotfit.service.keys import revoke_key
from shotfit.service.settings import Limits, ServiceSettings
from shotfit.service.storage import StudioStorage
from shotfit.service.store import Job, open_store
from shotfit.service.worker import newest_stored_sheet


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> ServiceSettings:
    """This module's tests run on SQLite and on the real PostgreSQL (conftest's ``db_url``)."""
    return ServiceSettings(storage=tmp_path / "storage", db=db_url, limits=SMALL_LIMITS)


@pytest.fixture
def shot_folders(tmp_path: Path) -> tuple[Path, Path]:
    source = write_shot(tmp_path / "plates")
    keys = write_shot(tmp_path / "fixed", KEYFRAMES, make=lambda f: edit(plate(f)))
    return source, keys


def _ready_shot(client, studio: Studio, folders: tuple[Path, Path]) -> str:
    shot_id = client.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
    upload_folder(client, studio, shot_id, "source", folders[0])
    upload_folder(client, studio, shot_id, "keyframes", folders[1])
    return shot_id


def _job(client, studio: Studio, shot_id: str, key: str | None = None, **body) -> object:
    headers = {**studio.headers, **({"Idempotency-Key": key} if key else {})}
    return client.post("/v1/jobs", json={"kind": "train", "shot_id": shot_id, "settings": TINY_SETTINGS, **body},
                       headers=headers)


def test_health_needs_no_key_and_everything_else_does(client, studios) -> None:
    assert client.get("/v1/health").json()["status"] == "ok"
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers={"Authorization": "Bearer sfk_nope_nope"}).status_code == 401
    assert client.get("/v1/me", headers=studios[0].headers).json() == {"studio": "Acme VFX",
                                                                        "key_id": studios[0].key_id}


def test_a_revoked_key_is_refused_at_once(client, app, studios) -> None:
    assert client.get("/v1/shots", headers=studios[0].headers).status_code == 200
    revoke_key(app.state.store, studios[0].key_id)
    answer = client.get("/v1/shots", headers=studios[0].headers)
    assert answer.status_code == 401 and answer.json() == {"detail": "unknown or revoked API key"}


def test_every_route_answers_404_to_another_studios_ids(client, app, studios, shot_folders, png_bytes) -> None:
    """Studio Zeta, with its own key, tries every route on Acme's objects: 404 each time, and its lists hold
    none of them. The routes come from the OpenAPI document, so a new route must be added here."""
    acme, zeta = studios
    shot = _ready_shot(client, acme, shot_folders)
    pending = client.post(f"/v1/shots/{shot}/uploads", json={"role": "truth", "name": "t.png", "size": 99},
                          headers=acme.headers).json()["id"]
    job = _job(client, acme, shot).json()["id"]
    with app.state.store.session() as session:  # as though it had run: render and export may name it
        session.execute(update(Job).where(Job.id == job).values(state="succeeded"))
    hook = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=acme.headers).json()["id"]
    own_shot = client.post("/v1/shots", json={"name": "mine"}, headers=zeta.headers).json()["id"]
    upload(client, zeta, own_shot, "source", "plate.1001.png", png_bytes)

    tried = {
        ("get", "/v1/shots/{shot_id}"): lambda: client.get(f"/v1/shots/{shot}", headers=zeta.headers),
        ("get", "/v1/shots/{shot_id}/files"): lambda: client.get(f"/v1/shots/{shot}/files", headers=zeta.headers),
        ("get", "/v1/shots/{shot_id}/files/{role}/{name}"): lambda: client.get(
            f"/v1/shots/{shot}/files/source/plate.1001.png", headers=zeta.headers),
        ("post", "/v1/shots/{shot_id}/uploads"): lambda: client.post(
            f"/v1/shots/{shot}/uploads", json={"role": "source", "name": "x.png", "size": 5}, headers=zeta.headers),
        ("get", "/v1/uploads/{upload_id}"): lambda: client.get(f"/v1/uploads/{pending}", headers=zeta.headers),
        ("patch", "/v1/uploads/{upload_id}"): lambda: client.patch(
            f"/v1/uploads/{pending}", content=b"x" * 99, headers={**zeta.headers, "Upload-Offset": "0"}),
        ("get", "/v1/jobs/{job_id}"): lambda: client.get(f"/v1/jobs/{job}", headers=zeta.headers),
        ("post", "/v1/jobs/{job_id}/cancel"): lambda: client.post(f"/v1/jobs/{job}/cancel", headers=zeta.headers),
        ("get", "/v1/jobs/{job_id}/events"): lambda: client.get(f"/v1/jobs/{job}/events", headers=zeta.headers),
        ("get", "/v1/jobs/{job_id}/results"): lambda: client.get(f"/v1/jobs/{job}/results", headers=zeta.headers),
        ("get", "/v1/jobs/{job_id}/results.zip"): lambda: client.get(f"/v1/jobs/{job}/results.zip",
                                                                     headers=zeta.headers),
        ("get", "/v1/jobs/{job_id}/results/{name}"): lambda: client.get(f"/v1/jobs/{job}/results/model.pt",
                                                                        headers=zeta.headers),
        ("get", "/v1/jobs/{job_id}/previews/latest.png"): lambda: client.get(
            f"/v1/jobs/{job}/previews/latest.png", headers=zeta.headers),
        ("delete", "/v1/webhooks/{hook_id}"): lambda: client.delete(f"/v1/webhooks/{hook}", headers=zeta.headers),
    }
    routes = {(method, path) for path, item in app.openapi()["paths"].items() for method in item if "{" in path}
    assert routes == set(tried), f"routes with ids not tried: {routes - set(tried)}"
    for route, call in tried.items():
        answer = call()
        assert answer.status_code == 404, (route, answer.status_code, answer.text)
        assert "not found" in answer.json()["detail"]
    # ids in bodies too: Acme's shot, and Acme's run on Zeta's own shot
    assert _job(client, zeta, shot).status_code == 404
    assert client.post("/v1/jobs", json={"kind": "render", "shot_id": own_shot, "run_id": job},
                       headers=zeta.headers).status_code == 404
    for listing in ("/v1/shots", "/v1/jobs", "/v1/webhooks"):
        seen = str(client.get(listing, headers=zeta.headers).json())
        assert shot not in seen and job not in seen and hook not in seen
    assert client.get(f"/v1/jobs/{job}", headers=acme.headers).json()["state"] == "succeeded"  # untouched
    assert client.get(f"/v1/uploads/{pending}", headers=acme.headers).json()["offset"] == 0


def test_latest_png_serves_the_sheet_the_worker_named_and_404_without_one(client, app, studios, shot_folders) -> None:
    """Files in a local folder: latest.png is 404 before a sheet is named, then serves the one the job's worker
    named (its newest: final.png; a write guard's temporary never counts), and is 404, not an error, once that
    file is gone (a job's files removed)."""
    acme, _ = studios
    job_id = _job(client, acme, _ready_shot(client, acme, shot_folders)).json()["id"]
    latest = f"/v1/jobs/{job_id}/previews/latest.png"
    assert client.get(latest, headers=acme.headers).status_code == 404
    with app.state.store.session() as session:
        studio_id = session.get(Job, job_id).studio_id
    storage = StudioStorage.of(app.state.settings, studio_id)
    run = RunFolder(storage.job(job_id) / "run")
    run.previews.mkdir(parents=True)
    for name, frame in (("step_000010.png", 1002), ("final.png", 1003), ("step_000020.png", 1004)):
        write_png(run.previews / name, plate(frame))
    (run.previews / ".final.partial-host-1-ab12.png").write_bytes(b"half")
    named = newest_stored_sheet(storage.mirror(storage.job(job_id)), run)
    with app.state.store.session() as session:  # what the worker writes at a heartbeat
        session.execute(update(Job).where(Job.id == job_id).values(preview=named))
    served = client.get(latest, headers=acme.headers)
    assert named == "final.png" and served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content == (run.previews / "final.png").read_bytes()
    (run.previews / "final.png").unlink()
    assert client.get(latest, headers=acme.headers).status_code == 404


def test_a_shot_file_downloads_as_uploaded_by_its_listed_url_and_by_no_other_name(
        client, studios, shot_folders) -> None:
    acme, zeta = studios
    shot = _ready_shot(client, acme, shot_folders)
    listed = {f["name"]: f for f in client.get(f"/v1/shots/{shot}/files?role=source", headers=acme.headers).json()}
    assert listed["plate.1003.png"]["url"] == f"/v1/shots/{shot}/files/source/plate.1003.png"
    for name, file in listed.items():
        got = client.get(file["url"], headers=acme.headers)
        assert got.status_code == 200 and got.content == (shot_folders[0] / name).read_bytes(), name
    keyframe = client.get(f"/v1/shots/{shot}/files/keyframes/plate.1004.png", headers=acme.headers)
    assert keyframe.content == (shot_folders[1] / "plate.1004.png").read_bytes()
    # Zeta's own shot holding a file of that name changes nothing: the shot is Acme's
    zeta_shot = client.post("/v1/shots", json={"name": "z"}, headers=zeta.headers).json()["id"]
    upload(client, zeta, zeta_shot, "source", "plate.1001.png", (shot_folders[0] / "plate.1002.png").read_bytes())
    assert client.get(f"/v1/shots/{shot}/files/source/plate.1001.png", headers=zeta.headers).status_code == 404
    assert client.get(f"/v1/shots/{zeta_shot}/files/source/plate.1001.png", headers=zeta.headers).content == \
        (shot_folders[0] / "plate.1002.png").read_bytes()
    for wrong in ("source/plate.1009.png", "truth/plate.1001.png", "keyframes/plate.1002.png", "source/..%2F..%2Fstore.db",
                  "source/.%2Fplate.1001.png", "source/%2Fetc%2Fpasswd"):
        answer = client.get(f"/v1/shots/{shot}/files/{wrong}", headers=acme.headers)
        assert answer.status_code == 404 and "not found" in answer.json()["detail"].lower(), (wrong, answer.text)
    for malformed in ("paint/plate.1001.png", "source/plate.1001.png%00", "source/.plate.1001.png", "source/a.txt"):
        answer = client.get(f"/v1/shots/{shot}/files/{malformed}", headers=acme.headers)
        assert answer.status_code == 422 and "\n" not in answer.json()["detail"], (malformed, answer.text)


@pytest.fixture
def png_bytes(shot_folders: tuple[Path, Path]) -> bytes:
    return (shot_folders[0] / "plate.1001.png").read_bytes()


def test_the_same_idempotency_key_and_body_give_the_same_job(client, studios, shot_folders) -> None:
    acme, zeta = studios
    shot = _ready_shot(client, acme, shot_folders)
    first = _job(client, acme, shot, key="retry-me")
    again = _job(client, acme, shot, key="retry-me")
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    other_body = _job(client, acme, shot, key="retry-me", settings={**TINY_SETTINGS, "train.steps": 7})
    assert other_body.status_code == 409 and "Idempotency-Key" in other_body.json()["detail"]
    unkeyed = [_job(client, acme, shot).json()["id"] for _ in range(2)]
    assert len({first.json()["id"], *unkeyed}) == 3
    assert len(client.get("/v1/jobs", headers=acme.headers).json()) == 3


def test_too_many_jobs_for_a_key_is_429_with_retry_after(client, studios, shot_folders) -> None:
    acme = studios[0]
    shot = _ready_shot(client, acme, shot_folders)
    jobs = [_job(client, acme, shot) for _ in range(3)]  # the limit in these tests
    assert all(j.status_code == 201 for j in jobs)
    over = _job(client, acme, shot)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1 and "limit" in over.json()["detail"]
    cancelled = client.post(f"/v1/jobs/{jobs[0].json()['id']}/cancel", headers=acme.headers).json()
    assert cancelled["state"] == "cancelled" and cancelled["finished"] is not None
    assert _job(client, acme, shot).status_code == 201  # a slot came free
    assert [j["state"] for j in client.get("/v1/jobs?state=cancelled", headers=acme.headers).json()] == ["cancelled"]


def test_too_many_requests_a_minute_is_429_with_retry_after(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    app = create_app(ServiceSettings(storage=tmp_path / "s", limits=Limits(requests_per_minute=5)),
                     send_webhooks=False)
    studio = new_studio(app.state.store, "Acme VFX")
    with TestClient(app) as client:
        codes = [client.get("/v1/shots", headers=studio.headers).status_code for _ in range(6)]
        over = client.get("/v1/me", headers=studio.headers)
    assert codes == [200] * 5 + [429]
    assert over.status_code == 429 and 1 <= int(over.headers["Retry-After"]) <= 60


def test_a_limit_holds_exactly_under_many_threads_at_once(tmp_path: Path) -> None:
    """The server's 40 threads counting one key at once (each write waits its turn, then commits): exactly the
    limit's worth of requests is admitted, none lost and none over."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    studio = new_studio(store, "Acme VFX")
    token = studio.headers["Authorization"].split()[1]
    at = time.time()
    with ThreadPoolExecutor(40) as pool:
        waits = list(pool.map(lambda _: admit(store, token, 150, at)[2], range(200)))
    store.close()
    assert sum(wait is None for wait in waits) == 150 and sum(wait is not None for wait in waits) == 50


def test_the_entry_point_settles_the_process_after_start_up_and_before_the_first_request(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    happened: list[str] = []
    app = create_app(ServiceSettings(storage=tmp_path / "s"), send_webhooks=False,
                     started=lambda: happened.append("started"))
    assert happened == []
    with TestClient(app) as client:
        happened.append(f"health {client.get('/v1/health').status_code}")
    assert happened == ["started", "health 200"]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"kind": "train", "settings": {"loss.extra": "evil.module:run"}}, 422, "plug-ins"),
    ({"kind": "train", "settings": {"colour.config": "/etc/passwd"}}, 422, "colour.config"),
    ({"kind": "train", "settings": {"train.stepz": 5}}, 422, "train.stepz"),
    ({"kind": "train", "settings": {"train.steps": -1}}, 422, "steps"),
    ({"kind": "render"}, 422, "run_id"),
    ({"kind": "export", "run_id": "job_0000000000000000"}, 404, "run not found"),
    ({"kind": "train", "run_id": "job_0000000000000000"}, 422, "no run_id"),
    ({"kind": "sweep"}, 422, "sweep.preset"),
    ({"kind": "sweep", "settings": {"sweep.preset": "../../etc/passwd"}}, 422, "sweep.preset"),
    ({"kind": "sweep", "settings": {"sweep.values.loss.extra": ["evil.module:run"]}}, 422, "plug-ins"),
    ({"kind": "sweep", "settings": {"sweep.values.colour.config": ["/etc/passwd"]}}, 422, "colour.config"),
    ({"kind": "sweep", "settings": {"sweep.values.train.steps": [5, 10]}}, 422, "set by the sweep itself"),
    ({"kind": "sweep", "settings": {"sweep.values.train.lr": ["fast"]}}, 422, "train.lr"),
    ({"kind": "sweep", "settings": {"sweep.uniform.train.lr": [0.1]}}, 422, "low, high"),
    ({"kind": "sweep", "settings": {"sweep.values.loss.l1": [1], "sweep.config": "/etc/x.yaml"}}, 422, "sweep.config"),
    ({"kind": "sweep", "settings": {"sweep.values.loss.l1": [1], "sweep.metric": "test/lpips"}}, 422, "truth"),
    ({"kind": "train", "settings": {"sweep.preset": "temporal"}}, 422, "for sweep jobs"),
    ({"kind": "suggest"}, 422, "suggest.count"),
    ({"kind": "suggest", "settings": {"suggest.count": 0}}, 422, "suggest.count"),
    ({"kind": "suggest", "settings": {"suggest.count": 2, "train.steps": 5}}, 422, "only suggest.*"),
    ({"kind": "suggest", "settings": {"suggest.count": 2, "suggest.strategy": "best"}}, 422, "suggest.strategy"),
    ({"kind": "suggest", "settings": {"suggest.count": 2}, "run_id": "job_0000000000000000"}, 404, "run not found"),
    ({"kind": "train", "settings": {"suggest.count": 2}}, 422, "for suggest jobs"),
    ({"kind": "render", "settings": {"render.workers": 0}}, 422, "render.workers"),
    ({"kind": "paint"}, 422, "kind"),
    ({"kind": "train", "settings": {"train.steps": {"a": 1}}}, 422, "settings"),
])
def test_a_job_the_server_cannot_run_is_refused_in_one_line(client, studios, shot_folders, body, status, says) -> None:
    shot = _ready_shot(client, studios[0], shot_folders)
    answer = client.post("/v1/jobs", json={"shot_id": shot, **body}, headers=studios[0].headers)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and says in detail and "--set" not in detail


def test_a_sweep_job_of_a_built_in_sweep_or_a_searched_space_is_queued(client, studios, shot_folders) -> None:
    shot = _ready_shot(client, studios[0], shot_folders)
    for settings in ({"sweep.preset": "loss_ablation", "sweep.metric": "val/psnr", "sweep.steps": 10},
                     {"sweep.values.loss.l1": [0.5, 1], "sweep.loguniform.train.lr": [1e-4, 1e-2],
                      "sweep.strategy": "random", "sweep.samples": 3, "model.width": 4}):
        answer = client.post("/v1/jobs", json={"kind": "sweep", "shot_id": shot, "settings": settings},
                             headers=studios[0].headers)
        assert answer.status_code == 201 and answer.json()["kind"] == "sweep", answer.text


def test_a_render_of_an_unfinished_run_waits_for_it(client, studios, shot_folders) -> None:
    shot = _ready_shot(client, studios[0], shot_folders)
    run = _job(client, studios[0], shot).json()["id"]
    answer = client.post("/v1/jobs", json={"kind": "render", "shot_id": shot, "run_id": run},
                         headers=studios[0].headers)
    assert answer.status_code == 409 and "queued" in answer.json()["detail"]


def test_a_train_job_needs_source_and_keyframes(client, studios) -> None:
    shot = client.post("/v1/shots", json={"name": "empty"}, headers=studios[0].headers).json()["id"]
    answer = _job(client, studios[0], shot)
    assert answer.status_code == 422 and "source" in answer.json()["detail"]


def test_the_openapi_document_promises_one_line_errors(client) -> None:
    document = client.get("/openapi.json").json()
    assert document["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]["type"] == "string"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", document["info"]["version"])
    for path, item in document["paths"].items():
        if path != "/v1/health":
            for method, operation in item.items():
                assert "401" in operation["responses"], (method, path)
