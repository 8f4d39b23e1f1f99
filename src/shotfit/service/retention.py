"""Retention: a studio's uploads and results are deleted once older than its retention (the studio's own
``retention_days``, else the server's). The records stay (a shot with no files, a job with no results),
so a client sees what was there and why it is gone; nothing a queued or running job needs is touched.
Every round also removes, for every studio, upload pieces left in a files' store by finished uploads."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select

from shotfit.service.settings import ServiceSettings
from shotfit.service.storage import StudioStorage
from shotfit.service.store import Job, JobChunk, JobFrame, Shot, ShotFile, Store, Studio, Upload
from shotfit.service.store.models import FINAL_STATES, now

log = logging.getLogger(__name__)


def purge(store: Store, settings: ServiceSettings, at: datetime | None = None) -> dict[str, int]:
    """Delete what is past retention; how many shots' files, uploads and jobs' results went."""
    at = at or now()
    counts = {"shots": 0, "uploads": 0, "jobs": 0}
    with store.session() as session:
        studios = session.execute(select(Studio.id, Studio.retention_days)).all()
    for studio_id, days in studios:
        storage = StudioStorage.of(settings, studio_id)
        if stray := _drop_stray_pieces(store, storage, studio_id):
            log.info("housekeeping: removed the pieces left in the store by %d finished uploads", stray)
        days = days if days is not None else settings.retention_days
        if days is None:
            continue
        cutoff = at - timedelta(days=days)
        counts["jobs"] += _purge_jobs(store, storage, studio_id, cutoff)
        counts["uploads"] += _purge_uploads(store, storage, studio_id, cutoff)
        counts["shots"] += _purge_shots(store, storage, studio_id, cutoff)
    if any(counts.values()):
        log.info("retention: deleted the files of %(shots)d shots, %(uploads)d uploads, %(jobs)d jobs' results",
                 counts)
    return counts


def _purge_jobs(store: Store, storage: StudioStorage, studio_id: str, cutoff: datetime) -> int:
    with store.session() as session:
        done = session.scalars(select(Job.id).where(Job.studio_id == studio_id, Job.state.in_(FINAL_STATES),
                                                    Job.finished < cutoff)).all()
        # a run that a live job renders or exports stays until that job ends
        needed = set(session.scalars(select(Job.run_id).where(Job.studio_id == studio_id,
                                                              Job.state.in_(("queued", "running")))).all())
    gone = 0
    for job_id in done:
        if job_id not in needed and _holds_files(storage, storage.job(job_id)):
            storage.remove(storage.job(job_id))
            with store.session() as session:
                session.execute(delete(JobFrame).where(JobFrame.job_id == job_id))
                session.execute(delete(JobChunk).where(JobChunk.job_id == job_id))
            gone += 1
    return gone


def _purge_uploads(store: Store, storage: StudioStorage, studio_id: str, cutoff: datetime) -> int:
    """Discard the uploads unfinished since the cutoff: their part file, or their pieces in the store."""
    with store.session() as session:
        stale = session.execute(select(Upload.id, Upload.name).where(
            Upload.studio_id == studio_id, Upload.complete.is_(False), Upload.updated < cutoff)).all()
        for upload_id, name in stale:
            storage.discard(upload_id, name)
            session.execute(delete(Upload).where(Upload.id == upload_id))
    return len(stale)


def _drop_stray_pieces(store: Store, storage: StudioStorage, studio_id: str) -> int:
    """Remove the pieces in the store of uploads that are done or gone (a server died before removing them),
    whatever the studio's retention; how many uploads' pieces went."""
    with_pieces = storage.uploads_with_pieces()  # listed first: an upload still arriving is in the query below
    if not with_pieces:
        return 0
    with store.session() as session:
        arriving = set(session.scalars(select(Upload.id).where(Upload.studio_id == studio_id,
                                                               Upload.complete.is_(False))).all())
    stray = sorted(with_pieces - arriving)
    for upload_id in stray:
        storage.drop_pieces(upload_id)
    return len(stray)


def _purge_shots(store: Store, storage: StudioStorage, studio_id: str, cutoff: datetime) -> int:
    with store.session() as session:
        old = session.scalars(select(Shot.id).where(Shot.studio_id == studio_id, Shot.created < cutoff)).all()
        busy = set(session.scalars(select(Job.shot_id).where(Job.studio_id == studio_id,
                                                             Job.state.in_(("queued", "running")))).all())
    gone = 0
    for shot_id in old:
        if shot_id in busy:
            continue
        with store.session() as session:
            had = session.execute(delete(ShotFile).where(ShotFile.shot_id == shot_id)).rowcount
            session.execute(delete(Upload).where(Upload.shot_id == shot_id, Upload.complete.is_(True)))
        storage.remove(storage.root / "shots" / shot_id)
        gone += int(bool(had))
    return gone


def _holds_files(storage: StudioStorage, folder: Path) -> bool:
    """A job folder with files left, here or in the store (its local scratch copy may be gone already)."""
    return folder.exists() or bool(storage.files(folder))


class Housekeeper:
    """A daemon thread that purges every ``every_s`` seconds (the first time 5 s after start)."""

    def __init__(self, store: Store, settings: ServiceSettings, every_s: float = 600.0) -> None:
        self.store, self.settings, self.every_s = store, settings, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shotfit-retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        if self._stop.wait(5.0):  # the server starts first
            return
        while True:
            try:
                purge(self.store, self.settings)
            except Exception:  # the store away for a moment: the next round tries again
                log.exception("retention purge failed this round")
            if self._stop.wait(self.every_s):
                return
