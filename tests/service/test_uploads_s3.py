"""Uploads on a files' store (moto's real S3 server) behind a load balancer: two servers on one database and
one bucket, each with its own scratch folder, and any PATCH of an upload may reach either of them."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from service_helpers import BUCKET, SMALL_LIMITS, Studio, new_studio
from shots import plate, write_png
from sqlalchemy import select, update

from shotfit.service.app import create_app
from shotfit.service.retention import purge
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import ShotFile, Upload
from shotfit.service.store import Studio as StudioRow
from shotfit.service.store.models import now


def bucket_keys(client: Any, prefix: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listed}


class Servers:
    """Two servers' clients (``a``, ``b``) on one store and bucket prefix, a studio, and the shot it uploads to."""

    def __init__(self, a: TestClient, b: TestClient, studio: Studio, shot_id: str, prefix: str,
                 scratch: tuple[Path, Path]) -> None:
        self.a, self.b, self.studio, self.shot_id, self.prefix, self.scratch = a, b, studio, shot_id, prefix, scratch

    def create(self, name: str, size: int, role: str = "source") -> str:
        made = self.a.post(f"/v1/shots/{self.shot_id}/uploads", json={"role": role, "name": name, "size": size},
                           headers=self.studio.headers)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def patch(self, client: TestClient, upload_id: str, offset: int, data: bytes) -> Any:
        return client.patch(f"/v1/uploads/{upload_id}", content=data,
                            headers={**self.studio.headers, "Upload-Offset": str(offset),
                                     "Content-Type": "application/offset+octet-stream"})

    def studio_id(self, store: Any) -> str:
        with store.session() as session:
            return str(session.scalar(select(StudioRow.id).where(StudioRow.name == self.studio.name)))

    def stored(self, s3: Any) -> dict[str, bytes]:
        return bucket_keys(s3, f"{self.prefix}/")

    def pieces(self, s3: Any) -> list[str]:
        return [key for key in self.stored(s3) if "/uploads/" in key]

    def placed(self, s3: Any, name: str, role: str = "source") -> bytes:
        [data] = [v for k, v in self.stored(s3).items() if k.endswith(f"/shots/{self.shot_id}/{role}/{name}")]
        return data


@contextlib.contextmanager
def two_servers(tmp_path: Path, db: str) -> Iterator[Servers]:
    """Two apps as two server processes would be: their own engine and scratch folder, one database and bucket."""
    prefix = f"lb-{tmp_path.name}"
    scratch = (tmp_path / "scratch-a", tmp_path / "scratch-b")
    apps = [create_app(ServiceSettings(storage=folder, files=f"s3://{BUCKET}/{prefix}", db=db, limits=SMALL_LIMITS),
                       send_webhooks=False) for folder in scratch]
    studio = new_studio(apps[0].state.store, "Acme VFX")
    with TestClient(apps[0]) as a, TestClient(apps[1]) as b:
        shot_id = a.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
        yield Servers(a, b, studio, shot_id, prefix, scratch)


@pytest.fixture
def servers(s3: Any, tmp_path: Path, db_url: str) -> Iterator[Servers]:
    """Two servers on one SQLite file, then on one database of the real PostgreSQL."""
    with two_servers(tmp_path, db_url) as both:
        yield both


@pytest.fixture
def png(tmp_path: Path) -> bytes:
    write_png(tmp_path / "frame.png", plate(1001))
    return (tmp_path / "frame.png").read_bytes()


def _patch_straight(client: TestClient, upload_id: str, offset: int, studio: Studio, body: bytes, declared: int,
                    gate: threading.Event | None, waiting: threading.Event | None = None) -> Future[tuple[int, str]]:
    """A PATCH sent to the app as an ASGI server would pass it: ``body`` arrives (``declared`` bytes announced),
    then the client goes away (``gate`` None) or, once ``gate`` is set, the body ends (``waiting`` is set
    while the app waits for that end). Its status and body, to come."""
    path = f"/v1/uploads/{upload_id}"
    headers = {**studio.headers, "Upload-Offset": str(offset), "Content-Length": str(declared),
               "Content-Type": "application/offset+octet-stream"}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PATCH", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": client.app_state.copy()}
    messages = [{"type": "http.request", "body": body, "more_body": True}]
    status: list[int] = []
    sent: list[bytes] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if gate is None:
            return {"type": "http.disconnect"}
        if waiting is not None:
            waiting.set()
        while not gate.is_set():
            await anyio.sleep(0.01)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message["type"] == "http.response.body":
            sent.append(message.get("body", b""))

    async def call() -> tuple[int, str]:
        await client.app(scope, receive, send)
        return status[0], b"".join(sent).decode()

    assert client.portal is not None
    return client.portal.start_task_soon(call)


def test_an_upload_whose_patches_alternate_between_two_servers_arrives_whole(s3, servers: Servers, png) -> None:
    upload_id, offset, turn = servers.create("plate.1001.png", len(png)), 0, 0
    while offset < len(png):
        answer = servers.patch((servers.a, servers.b)[turn % 2], upload_id, offset, png[offset:offset + 500])
        assert answer.status_code == 200, answer.text
        assert answer.headers["Upload-Offset"] == str(min(offset + 500, len(png)))
        offset, turn = answer.json()["offset"], turn + 1
    assert turn >= 4 and answer.json()["complete"]
    assert servers.placed(s3, "plate.1001.png") == png and servers.pieces(s3) == []
    # either server lists and sends it; neither keeps a copy of it, nor of any piece
    [listed] = servers.b.get(f"/v1/shots/{servers.shot_id}/files", headers=servers.studio.headers).json()
    assert (listed["size"], listed["width"], listed["height"]) == (len(png), 48, 40)
    assert servers.a.get(listed["url"], headers=servers.studio.headers).content == png
    assert [p for folder in servers.scratch for p in folder.rglob("*") if "studios" in p.parts and p.is_file()] == []
    again = servers.patch(servers.a, upload_id, len(png), b"")
    assert again.status_code == 409 and "complete" in again.json()["detail"]


def test_a_patch_cut_short_on_one_server_is_resumed_on_the_other(s3, servers: Servers, png) -> None:
    upload_id, half = servers.create("plate.1001.png", len(png)), len(png) // 2
    cut = _patch_straight(servers.a, upload_id, 0, servers.studio, png[:half], len(png), gate=None)
    cut.result(timeout=60)
    # the client lost its connection mid-body: it asks the other server where the upload stands
    state = servers.b.get(f"/v1/uploads/{upload_id}", headers=servers.studio.headers)
    assert state.json()["offset"] == half and state.headers["Upload-Offset"] == str(half)
    stale = servers.patch(servers.b, upload_id, 0, png)
    assert stale.status_code == 409 and stale.headers["Upload-Offset"] == str(half)
    rest = servers.patch(servers.b, upload_id, half, png[half:])
    assert rest.status_code == 200 and rest.json()["complete"], rest.text
    assert servers.placed(s3, "plate.1001.png") == png and servers.pieces(s3) == []


def test_two_patches_at_one_offset_on_two_servers_count_once(s3, servers: Servers, png) -> None:
    """A retried PATCH reaching the other server while the first is still sending: the one committed first
    counts, the other is answered 409 with the offset, and its bytes are never part of the file."""
    upload_id = servers.create("plate.1001.png", len(png))
    gate, waiting = threading.Event(), threading.Event()
    slow = _patch_straight(servers.a, upload_id, 0, servers.studio, b"\0" * 1000, 1000, gate=gate, waiting=waiting)
    assert waiting.wait(timeout=60)  # A took the PATCH at offset 0 and is receiving its body
    fast = servers.patch(servers.b, upload_id, 0, png[:700])
    assert fast.status_code == 200 and fast.json()["offset"] == 700
    gate.set()
    code, body = slow.result(timeout=60)
    assert code == 409 and "another request sent this upload's bytes from 0 first; it is at 700" in body, body
    state = servers.a.get(f"/v1/uploads/{upload_id}", headers=servers.studio.headers).json()
    assert state["offset"] == 700
    done = servers.patch(servers.a, upload_id, 700, png[700:])
    assert done.status_code == 200 and done.json()["complete"], done.text
    assert servers.placed(s3, "plate.1001.png") == png and servers.pieces(s3) == []


@pytest.mark.parametrize(("name", "status"), [("plate.1001.exr", 415), ("shot.mp4", 415)])
def test_a_mistyped_file_is_refused_and_its_pieces_are_removed(s3, servers: Servers, png, name, status) -> None:
    upload_id = servers.create(name, len(png))
    assert servers.patch(servers.a, upload_id, 0, png[:900]).status_code == 200
    assert len(servers.pieces(s3)) == 1  # the first PATCH's bytes wait in the bucket
    refused = servers.patch(servers.b, upload_id, 900, png[900:])
    assert refused.status_code == status, refused.text
    detail = refused.json()["detail"]
    assert name in detail and "discarded" in detail and "\n" not in detail
    assert servers.stored(s3) == {}  # nothing of it left in the bucket, nor on either server
    assert [p for folder in servers.scratch for p in folder.rglob("*") if "studios" in p.parts and p.is_file()] == []
    assert servers.a.get(f"/v1/uploads/{upload_id}", headers=servers.studio.headers).status_code == 404
    assert servers.b.get(f"/v1/shots/{servers.shot_id}/files", headers=servers.studio.headers).json() == []


def test_a_piece_lost_from_the_bucket_rewinds_the_upload_to_it(s3, servers: Servers, png) -> None:
    upload_id = servers.create("plate.1001.png", len(png))
    assert servers.patch(servers.a, upload_id, 0, png[:800]).json()["offset"] == 800
    assert servers.patch(servers.b, upload_id, 800, png[800:1600]).json()["offset"] == 1600
    [second] = [key for key in servers.pieces(s3) if "/pieces/0000000000000800." in key]
    s3.delete_object(Bucket=BUCKET, Key=second)  # behind the service's back
    lost = servers.patch(servers.a, upload_id, 1600, png[1600:])
    assert lost.status_code == 409 and lost.headers["Upload-Offset"] == "800", lost.text
    assert "from 800" in lost.json()["detail"]
    done = servers.patch(servers.b, upload_id, 800, png[800:])
    assert done.status_code == 200 and done.json()["complete"], done.text
    assert servers.placed(s3, "plate.1001.png") == png and servers.pieces(s3) == []


def test_an_upload_is_checked_and_placed_by_one_request_at_a_time(s3, servers: Servers, png) -> None:
    """The last bytes' server is completing it (its claim is fresh): the other answers 409; once the claim
    lapsed (that server died), an empty PATCH at the end completes it, once."""
    upload_id = servers.create("plate.1001.png", len(png))
    store = servers.a.app.state.store  # type: ignore[attr-defined]
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(completing=now()))
    busy = servers.patch(servers.a, upload_id, 0, png)
    assert busy.status_code == 409 and busy.headers["Upload-Offset"] == str(len(png)), busy.text
    assert "another request" in busy.json()["detail"]
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == upload_id)
                        .values(completing=now() - timedelta(minutes=10)))
    done = servers.patch(servers.b, upload_id, len(png), b"")
    assert done.status_code == 200 and done.json()["complete"], done.text
    with store.session() as session:
        assert session.query(ShotFile).filter_by(shot_id=servers.shot_id).count() == 1
    assert servers.placed(s3, "plate.1001.png") == png and servers.pieces(s3) == []


def test_a_file_put_by_a_completion_that_died_before_recording_it_is_finished_by_the_next(s3, servers: Servers,
                                                                                         png) -> None:
    """Server A put the checked file in the bucket and died before the shot's file row was written: once its
    claim lapsed, an empty PATCH on server B completes the upload (it used to be refused as a file the shot
    already held, and the upload discarded: the name stuck for good)."""
    upload_id = servers.create("plate.1001.png", len(png))
    store = servers.a.app.state.store  # type: ignore[attr-defined]
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(completing=now()))
    assert servers.patch(servers.a, upload_id, 0, png).status_code == 409  # all bytes in, A "completing"
    [piece_key] = servers.pieces(s3)
    target = f"{servers.prefix}/studios/{servers.studio_id(store)}/shots/{servers.shot_id}/source/plate.1001.png"
    s3.put_object(Bucket=BUCKET, Key=target, Body=png)  # what A's put left before it died
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(completing=now() - timedelta(minutes=10)))
    done = servers.patch(servers.b, upload_id, len(png), b"")
    assert done.status_code == 200 and done.json()["complete"], done.text
    files = servers.b.get(f"/v1/shots/{servers.shot_id}/files", headers=servers.studio.headers).json()
    assert [(f["name"], f["size"], f["width"]) for f in files] == [("plate.1001.png", len(png), 48)]
    assert servers.placed(s3, "plate.1001.png") == png and servers.pieces(s3) == [] and piece_key


def test_housekeeping_removes_pieces_left_behind_and_retention_an_unfinished_uploads(s3, servers: Servers,
                                                                                     png) -> None:
    done_id = servers.create("plate.1001.png", len(png))
    assert servers.patch(servers.a, done_id, 0, png).json()["complete"]
    # a server that died after placing a file, before removing its pieces
    stray = f"{servers.prefix}/studios/{_studio_id(servers)}/uploads/{done_id}/pieces/0000000000000000.dead"
    s3.put_object(Bucket=BUCKET, Key=stray, Body=b"left behind")
    unfinished = servers.create("plate.1002.png", len(png))
    assert servers.patch(servers.b, unfinished, 0, png[:500]).status_code == 200
    arriving = servers.create("plate.1003.png", len(png))
    assert servers.patch(servers.b, arriving, 0, png[:500]).status_code == 200
    store, url = servers.a.app.state.store, f"s3://{BUCKET}/{servers.prefix}"  # type: ignore[attr-defined]
    # no retention: only what no upload needs goes
    assert purge(store, ServiceSettings(storage=servers.scratch[0], files=url))["uploads"] == 0
    assert {key.split("/uploads/")[1].split("/")[0] for key in servers.pieces(s3)} == {unfinished, arriving}
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == unfinished).values(updated=now() - timedelta(days=3)))
    assert purge(store, ServiceSettings(storage=servers.scratch[0], files=url, retention_days=2))["uploads"] == 1
    left = servers.pieces(s3)
    assert len(left) == 1 and f"/uploads/{arriving}/pieces/" in left[0]  # the one still arriving stays
    assert servers.placed(s3, "plate.1001.png") == png
    assert servers.a.get(f"/v1/uploads/{unfinished}", headers=servers.studio.headers).status_code == 404
    assert servers.patch(servers.a, arriving, 500, png[500:]).json()["complete"]
    assert purge(store, ServiceSettings(storage=servers.scratch[0], files=url))["uploads"] == 0
    assert servers.pieces(s3) == [] and servers.placed(s3, "plate.1003.png") == png


def _studio_id(servers: Servers) -> str:
    with servers.a.app.state.store.session() as session:  # type: ignore[attr-defined]
        return str(session.scalar(select(StudioRow.id).where(StudioRow.name == servers.studio.name)))
