"""Retention: uploads and results past a studio's retention are deleted; records stay; live jobs' inputs stay."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from service_helpers import TINY_SETTINGS, upload, upload_folder
from shots import KEYFRAMES, edit, plate, write_shot
from sqlalchemy import update

from shotfit.service.retention import purge
from shotfit.service.store import Job, JobChunk, JobFrame, Shot, Studio, Upload
from shotfit.service.store.models import now


def test_old_files_and_results_go_and_a_queued_jobs_shot_stays(client, app, studios, settings, tmp_path) -> None:
    acme, zeta = studios
    store = app.state.store
    write_shot(tmp_path / "plates")
    write_shot(tmp_path / "fixed", KEYFRAMES, make=lambda f: edit(plate(f)))
    old, busy, other = (client.post("/v1/shots", json={"name": n}, headers=s.headers).json()["id"]
                        for n, s in (("old", acme), ("busy", acme), ("zeta", zeta)))
    for shot, studio in ((old, acme), (busy, acme), (other, zeta)):
        upload_folder(client, studio, shot, "source", tmp_path / "plates")
        upload_folder(client, studio, shot, "keyframes", tmp_path / "fixed")
    half = (tmp_path / "plates" / "plate.1001.png").read_bytes()
    unfinished = client.post(f"/v1/shots/{old}/uploads", json={"role": "truth", "name": "t.png", "size": len(half)},
                             headers=acme.headers).json()["id"]
    client.patch(f"/v1/uploads/{unfinished}", content=half[:100], headers={**acme.headers, "Upload-Offset": "0"})
    done = client.post("/v1/jobs", json={"kind": "train", "shot_id": old, "settings": TINY_SETTINGS},
                       headers=acme.headers).json()["id"]
    live = client.post("/v1/jobs", json={"kind": "train", "shot_id": busy, "settings": TINY_SETTINGS},
                       headers=acme.headers).json()["id"]
    with store.session() as session:
        acme_id = session.query(Studio.id).filter(Studio.name == acme.name).scalar()
    result = Path(settings.storage).resolve() / "studios" / acme_id / "jobs" / done / "run"
    result.mkdir(parents=True)
    (result / "model.pt").write_bytes(b"weights")
    month_ago = now() - timedelta(days=30)
    with store.session() as session:
        session.execute(update(Job).where(Job.id == done).values(state="succeeded", finished=month_ago))
        session.execute(update(Studio).where(Studio.name == "Acme VFX").values(retention_days=7))
        for job in (done, live):  # what a chunked render records: it goes with the results, and only then
            session.add_all([JobChunk(job_id=job, attempt=1, first_frame=1001, frames=[1001], pid=1, host="node"),
                             JobFrame(job_id=job, frame=1001, attempt=1)])
    with store.session() as session:  # the rows aged by hand, as a month would
        session.execute(update(Shot).values(created=month_ago))
        session.execute(update(Upload).values(updated=month_ago))
    counts = purge(store, settings)
    assert counts == {"shots": 1, "uploads": 1, "jobs": 1}
    files = {shot: client.get(f"/v1/shots/{shot}", headers=s.headers).json()["files"]
             for shot, s in ((old, acme), (busy, acme), (other, zeta))}
    assert files[old] == {"source": 0, "keyframes": 0, "truth": 0}  # the record stays, its files went
    assert files[busy]["source"] == 6  # a queued job needs it
    assert files[other]["source"] == 6  # Zeta keeps everything: no retention set
    assert not result.exists() and client.get(f"/v1/jobs/{done}/results", headers=acme.headers).json() == []
    assert not list(Path(settings.storage).resolve().glob(f"studios/*/shots/{old}/*/*"))
    with store.session() as session:
        assert {row.job_id for row in session.query(JobChunk)} == {live}
        assert {row.job_id for row in session.query(JobFrame)} == {live}
    assert upload(client, acme, old, "source", "plate.1001.png", half).status_code == 200  # the shot takes files again

