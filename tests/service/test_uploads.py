"""Uploads: resumable with offsets, names that are data and never paths, content checked from the bytes."""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from service_helpers import Studio, upload
from shots import plate, write_exr, write_png, write_video
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from shotfit.service.storage import StudioStorage
from shotfit.service.store import ShotFile, Upload
from shotfit.service.store.models import now

BAD_NAMES = ["../escape.png", "..\\escape.png", "/etc/passwd.png", "a/b.png", "sub/../../x.png", ".hidden.png",
             "C:\\temp\\x.png", "x.png\x00.txt", "%2e%2e%2fx.png", "..", "plate .png", "pl\nate.png"]


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def png(tmp_path: Path) -> bytes:
    write_png(tmp_path / "frame.png", plate(1001))
    return (tmp_path / "frame.png").read_bytes()


@pytest.fixture
def shot_id(client, studios: tuple[Studio, Studio]) -> str:
    return client.post("/v1/shots", json={"name": "sh010"}, headers=studios[0].headers).json()["id"]


def test_a_frame_sent_in_chunks_arrives_whole_and_decoded(client, studios, shot_id, png, settings) -> None:
    acme = studios[0]
    done = upload(client, acme, shot_id, "source", "plate.1001.png", png, chunk=500)
    assert done.status_code == 200 and done.json()["complete"] and done.json()["offset"] == len(png)
    files = client.get(f"/v1/shots/{shot_id}/files?role=source", headers=acme.headers).json()
    assert files == [{"role": "source", "name": "plate.1001.png", "size": len(png), "format": ".png", "width": 48,
                      "height": 40, "channels": 3, "url": f"/v1/shots/{shot_id}/files/source/plate.1001.png"}]
    placed = list(Path(settings.storage).rglob("plate.1001.png"))
    assert len(placed) == 1 and placed[0].read_bytes() == png
    assert client.get(f"/v1/shots/{shot_id}", headers=acme.headers).json()["files"] == {
        "source": 1, "keyframes": 0, "truth": 0}


def test_an_interrupted_upload_resumes_from_its_offset_and_a_wrong_offset_gets_409(client, studios, shot_id,
                                                                                  png) -> None:
    acme = studios[0]
    made = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "keyframes", "name": "plate.1001.png",
                                                             "size": len(png)}, headers=acme.headers).json()
    url, half = f"/v1/uploads/{made['id']}", len(png) // 2
    first = client.patch(url, content=png[:half], headers={**acme.headers, "Upload-Offset": "0"})
    assert first.json()["offset"] == half and not first.json()["complete"]
    # the client lost track: it asks where the upload stands
    state = client.get(url, headers=acme.headers)
    assert state.json()["offset"] == half and state.headers["Upload-Offset"] == str(half)
    stale = client.patch(url, content=png, headers={**acme.headers, "Upload-Offset": "0"})
    assert stale.status_code == 409 and stale.headers["Upload-Offset"] == str(half)
    assert str(half) in stale.json()["detail"]
    rest = client.patch(url, content=png[half:], headers={**acme.headers, "Upload-Offset": str(half)})
    assert rest.status_code == 200 and rest.json()["complete"]
    again = client.patch(url, content=b"x", headers={**acme.headers, "Upload-Offset": str(len(png))})
    assert again.status_code == 409


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_name_that_is_a_path_is_refused_and_nothing_is_written(client, studios, shot_id, png, name,
                                                                 tmp_path) -> None:
    before = _tree(tmp_path)
    answer = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": name, "size": len(png)},
                         headers=studios[0].headers)
    assert answer.status_code in (400, 415, 422), answer.text
    assert isinstance(answer.json()["detail"], str) and "\n" not in answer.json()["detail"]
    after = _tree(tmp_path)
    assert after == before or set(after) - set(before) <= {"storage/shotfit.db-wal", "storage/shotfit.db-shm"}


@pytest.mark.parametrize(("name", "make", "status"), [
    ("plate.1001.exr", "png", 415),  # PNG bytes named EXR
    ("plate.1001.png", "text", 415),  # not an image at all
    ("plate.1001.jpg", "png", 415),
    ("shot.mp4", "png", 415),  # a PNG named as a video
    ("plate.1001.png", "truncated", 422),  # a real PNG cut short
])
def test_a_file_whose_bytes_are_not_what_its_name_says_is_refused_and_discarded(client, studios, shot_id, png,
                                                                              settings, name, make, status) -> None:
    data = {"png": png, "text": b"hello, this is not an image at all" * 4, "truncated": png[: len(png) // 2]}[make]
    answer = upload(client, studios[0], shot_id, "source", name, data)
    assert answer.status_code == status, answer.text
    assert name in answer.json()["detail"] and "discarded" in answer.json()["detail"]
    assert client.get(f"/v1/shots/{shot_id}/files", headers=studios[0].headers).json() == []
    leftover = [p for p in Path(settings.storage).rglob("*") if p.is_file() and "shotfit.db" not in p.name]
    assert leftover == []


def test_exr_and_video_uploads_are_decoded(client, studios, shot_id, tmp_path) -> None:
    write_exr(tmp_path / "plate.1001.exr", plate(1001))
    write_video(tmp_path / "shot.mp4")
    for name in ("plate.1001.exr", "shot.mp4"):
        role = "source" if name.endswith("exr") else "truth"
        assert upload(client, studios[0], shot_id, role, name, (tmp_path / name).read_bytes()).status_code == 200
    files = {f["name"]: f for f in client.get(f"/v1/shots/{shot_id}/files", headers=studios[0].headers).json()}
    assert (files["plate.1001.exr"]["format"], files["plate.1001.exr"]["width"]) == (".exr", 48)
    assert (files["shot.mp4"]["format"], files["shot.mp4"]["height"], files["shot.mp4"]["channels"]) == ("video", 40, 3)


def test_an_exr_cut_short_or_with_a_broken_offset_table_is_refused(client, studios, shot_id, tmp_path) -> None:
    """Only the header and the last line are decoded on upload: both of these breaks are caught there."""
    write_exr(tmp_path / "plate.1001.exr", plate(1001))
    whole = (tmp_path / "plate.1001.exr").read_bytes()
    cut = whole[: len(whole) * 3 // 4]
    answer = upload(client, studios[0], shot_id, "source", "plate.1001.exr", cut)
    assert answer.status_code == 422 and "plate.1001.exr" in answer.json()["detail"], answer.text
    assert str(tmp_path) not in answer.json()["detail"]
    assert client.get(f"/v1/shots/{shot_id}/files", headers=studios[0].headers).json() == []


def test_a_part_file_lost_on_the_server_rewinds_the_upload_instead_of_padding_it(client, studios, shot_id, png,
                                                                                settings) -> None:
    acme = studios[0]
    made = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "plate.1001.png",
                                                             "size": len(png)}, headers=acme.headers).json()
    url, half = f"/v1/uploads/{made['id']}", len(png) // 2
    assert client.patch(url, content=png[:half], headers={**acme.headers, "Upload-Offset": "0"}).status_code == 200
    [part] = Path(settings.storage).rglob(f"{made['id']}.png")
    part.unlink()  # a wiped scratch disk, or a PATCH that reached another server
    lost = client.patch(url, content=png[half:], headers={**acme.headers, "Upload-Offset": str(half)})
    assert lost.status_code == 409 and lost.headers["Upload-Offset"] == "0" and "holds 0 bytes" in lost.json()["detail"]
    assert client.get(url, headers=acme.headers).json()["offset"] == 0
    done = client.patch(url, content=png, headers={**acme.headers, "Upload-Offset": "0"})
    assert done.status_code == 200 and done.json()["complete"]
    [placed] = Path(settings.storage).rglob("plate.1001.png")
    assert placed.read_bytes() == png


def test_limits_on_size_count_pixels_and_chunks_are_clear_4xx(client, studios, shot_id, png, tmp_path) -> None:
    acme = studios[0]
    big = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "big.exr", "size": 10**9},
                      headers=acme.headers)
    assert big.status_code == 413 and "200000" in big.json()["detail"]
    made = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "a.png", "size": 10},
                       headers=acme.headers).json()
    past = client.patch(f"/v1/uploads/{made['id']}", content=png, headers={**acme.headers, "Upload-Offset": "0"})
    assert past.status_code == 413 and client.get(f"/v1/uploads/{made['id']}", headers=acme.headers).json()["offset"] == 0
    twin = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "a.png", "size": 10},
                       headers=acme.headers)
    assert twin.status_code == 409
    for n in range(7):  # the role's limit is 8, a.png included
        assert client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": f"f{n}.png", "size": 5},
                           headers=acme.headers).status_code == 201
    full = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "f9.png", "size": 5},
                       headers=acme.headers)
    assert full.status_code == 413 and "limit" in full.json()["detail"]
    write_png(tmp_path / "huge.png", plate(1001).repeat(8, axis=0).repeat(8, axis=1))  # 384x320 > 256x256
    huge = upload(client, acme, shot_id, "keyframes", "huge.png", (tmp_path / "huge.png").read_bytes())
    assert huge.status_code == 413 and "pixels" in huge.json()["detail"]
    bad_offset = client.patch(f"/v1/uploads/{made['id']}", content=b"x", headers={**acme.headers, "Upload-Offset": "-1"})
    assert bad_offset.status_code == 422 and "upload-offset" in bad_offset.json()["detail"]


def _all_sent_while_claimed(client, studio: Studio, shot_id: str, data: bytes) -> tuple[dict, Any]:
    """An upload of ``data`` whose completion another request has claimed (just now), and the answer to the
    PATCH that sent all its bytes meanwhile."""
    made = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "plate.1001.png",
                                                             "size": len(data)}, headers=studio.headers).json()
    with client.app.state.store.session() as session:
        session.execute(update(Upload).where(Upload.id == made["id"]).values(completing=now()))
    return made, client.patch(f"/v1/uploads/{made['id']}", content=data,
                              headers={**studio.headers, "Upload-Offset": "0"})


def _lapse_claim(store, upload_id: str) -> None:
    """The claim's server died an hour ago."""
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == upload_id).values(completing=now() - timedelta(hours=1)))


def test_an_upload_being_checked_elsewhere_gets_409_and_an_empty_patch_finishes_it_once(client, studios, shot_id,
                                                                                       png, settings) -> None:
    """Another request holds the claim on checking the upload's last bytes: 409 with its offset; once that
    claim lapsed (its server died), an empty PATCH at the end checks and places the file, once."""
    acme, store = studios[0], client.app.state.store
    made, busy = _all_sent_while_claimed(client, acme, shot_id, png)
    url = f"/v1/uploads/{made['id']}"
    assert busy.status_code == 409 and busy.headers["Upload-Offset"] == str(len(png)), busy.text
    assert client.get(url, headers=acme.headers).json()["complete"] is False
    _lapse_claim(store, made["id"])
    done = client.patch(url, content=b"", headers={**acme.headers, "Upload-Offset": str(len(png))})
    assert done.status_code == 200 and done.json()["complete"], done.text
    with store.session() as session:
        assert session.query(ShotFile).filter_by(shot_id=shot_id).count() == 1
    [placed] = Path(settings.storage).rglob("plate.1001.png")
    assert placed.read_bytes() == png


def test_a_file_placed_by_a_completion_that_died_before_recording_it_is_finished_by_the_next(client, studios,
                                                                                           shot_id, png,
                                                                                           settings) -> None:
    """The completing request renamed the checked file into the shot and its server died before the file row was
    written: once its claim lapsed, an empty PATCH completes the upload with that file (it used to fail, and the
    name stuck for good)."""
    acme, store = studios[0], client.app.state.store
    made, busy = _all_sent_while_claimed(client, acme, shot_id, png)
    url = f"/v1/uploads/{made['id']}"
    assert busy.status_code == 409
    with store.session() as session:
        studio_id = session.get(Upload, made["id"]).studio_id
    storage = StudioStorage.of(settings, studio_id)
    part, target = storage.part(made["id"], "plate.1001.png"), storage.shot_file(shot_id, "source", "plate.1001.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, target)  # the dead server's rename
    _lapse_claim(store, made["id"])
    done = client.patch(url, content=b"", headers={**acme.headers, "Upload-Offset": str(len(png))})
    assert done.status_code == 200 and done.json()["complete"], done.text
    files = client.get(f"/v1/shots/{shot_id}/files", headers=acme.headers).json()
    assert [(f["name"], f["size"], f["width"], f["height"]) for f in files] == [("plate.1001.png", len(png), 48, 40)]
    assert client.get(files[0]["url"], headers=acme.headers).content == png


def test_one_name_is_announced_once_when_many_ask_at_the_same_moment(client, studios, shot_id, png) -> None:
    """Sixteen requests announce the same file at once: one upload is made, the rest get 409, so two uploads can
    never race to place one name."""
    acme, start = studios[0], threading.Barrier(16)

    def announce(_: int) -> int:
        start.wait()
        return client.post(f"/v1/shots/{shot_id}/uploads", json={"role": "source", "name": "plate.1001.png",
                                                                 "size": len(png)}, headers=acme.headers).status_code

    with ThreadPoolExecutor(16) as pool:
        answers = sorted(pool.map(announce, range(16)))
    assert answers == [201] + [409] * 15
    with client.app.state.store.session() as session:
        assert session.query(Upload).filter_by(shot_id=shot_id).count() == 1
    with pytest.raises(IntegrityError), client.app.state.store.session() as session:  # the store's own rule
        session.add(Upload(id="upload_0123456789abcdef", studio_id=session.query(Upload).one().studio_id,
                           shot_id=shot_id, role="source", name="plate.1001.png", size=1, offset=0, complete=False))
