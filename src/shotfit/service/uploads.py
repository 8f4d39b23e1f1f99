"""The bytes of a resumable upload: appended at the upload's offset, and checked and placed after the last one.

In a storage folder a PATCH writes into the upload's part file (``pwritev`` in batches, ``fdatasync`` before
its offset is committed), the folder every server of the store shares. With a files' store (``--storage
s3://...``) each server has its own scratch folder, so a PATCH's bytes become one piece object in the store
(gathered in a local file first, put in one request) and its offset is committed with the piece's row in one
conditional statement (``UPDATE ... WHERE offset = START``): whichever server the next PATCH reaches finds the
bytes acknowledged so far, and of two PATCHes at one offset exactly one counts. The last byte's server gathers
the pieces into its scratch folder, checks the file and puts it in the shot.

Completing is claimed in the store (one conditional statement, ``completing``), so two requests (on one
server or two) never check and place one upload at once; a claim held longer than :data:`COMPLETE_LEASE_S`
(its server died) may be taken over, and marking the upload complete is conditional too, so even then the
shot gets its file once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from datetime import datetime, timedelta

from fastapi import HTTPException, Request
from sqlalchemy import delete, or_, select, update
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from shotfit.service.deps import not_found
from shotfit.service.settings import ServiceSettings
from shotfit.service.storage import AlreadyHeld, Checked, PieceMissing, StudioStorage, UploadRefused, sniff
from shotfit.service.store import ShotFile, Store, Upload, UploadPiece
from shotfit.service.store.models import new_id, now

log = logging.getLogger(__name__)

# bytes gathered before one write: few system calls, little held in memory per request
WRITE_BATCH = 4 << 20

# how long a claim on completing an upload holds before another request may take it over (its server died)
COMPLETE_LEASE_S = 300.0


def _offset_header(offset: int) -> dict[str, str]:
    return {"Upload-Offset": str(offset)}


def _row(store: Store, upload_id: str) -> Upload:
    with store.session() as session:
        row = session.get(Upload, upload_id)
    if row is None:  # removed meanwhile (retention, a refused file)
        raise not_found("upload")
    return row


async def append_to_part(request: Request, store: Store, storage: StudioStorage, upload: Upload,
                         offset: int) -> Upload:
    """A storage folder: write the body into the part file at ``offset`` (the upload's offset, else 409).

    An acknowledged offset survives a crash: the bytes reach the disk (``fdatasync``) before the offset is
    committed to the store, and the offset before the answer; bytes past it (a chunk cut short, a crash
    between the two) are cut off by the next PATCH."""
    part = storage.part(upload.id, upload.name)
    part.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HTTPException(409, "another request is writing this upload",
                                headers=_offset_header(upload.offset)) from None
        upload = _row(store, upload.id)  # the offset as it is now that this request holds the file
        held = os.fstat(fd).st_size
        if held < upload.offset:
            if _renamed_before(store, storage, upload, held):
                return upload  # nothing left to write: completing records the file
            # the part file was lost: never pad it with zeros
            _rewind(store, upload.id, held)
            raise HTTPException(409, f"the server holds {held} bytes of this upload, not {offset}: send from there",
                                headers=_offset_header(held))
        _check_offset(upload, offset)
        written = await receive(request, fd, offset, upload.size, at=offset)
        await run_in_threadpool(os.fdatasync, fd)  # the bytes are on disk before their offset is acknowledged
    finally:
        os.close(fd)
    with store.session() as session:
        row = session.get(Upload, upload.id)
        if row is None:
            raise not_found("upload")
        row.offset, row.updated = offset + written, now()
    return row


async def append_piece(request: Request, store: Store, storage: StudioStorage, upload: Upload,
                       offset: int) -> Upload:
    """A files' store: put the body as one piece object, then commit it with the offset (else 409).

    The piece is in the store before its offset is committed, and the offset before the answer; a piece
    whose commit lost to another request at the same offset is removed, and its PATCH answered 409."""
    _check_offset(upload, offset)
    tag = secrets.token_hex(8)
    local = storage.receiving(upload.id, tag)
    local.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(local, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o640)
        try:
            written = await receive(request, fd, offset, upload.size, at=0)
        finally:
            os.close(fd)
        if written:
            await run_in_threadpool(storage.put_piece, local, upload.id, offset, tag)
    finally:
        local.unlink(missing_ok=True)
    if not written:  # nothing came (or the call that completes an upload whose bytes are all in)
        return _row(store, upload.id)
    if _commit_piece(store, upload.id, offset, offset + written, tag):
        return _row(store, upload.id)
    await run_in_threadpool(storage.drop_piece, upload.id, offset, tag)
    now_at = _row(store, upload.id).offset
    raise HTTPException(409, f"another request sent this upload's bytes from {offset} first; it is at {now_at} now",
                        headers=_offset_header(now_at))


def _check_offset(upload: Upload, offset: int) -> None:
    if offset != upload.offset:
        raise HTTPException(409, f"Upload-Offset {offset} is not the upload's offset {upload.offset}",
                            headers=_offset_header(upload.offset))


def _commit_piece(store: Store, upload_id: str, start: int, stop: int, tag: str) -> bool:
    """Move the upload's offset from ``start`` to ``stop`` and record the piece, in one transaction, if the
    offset is still ``start``: whether this piece counts."""
    with store.session() as session:
        moved = session.execute(update(Upload).where(Upload.id == upload_id, Upload.offset == start,
                                                     Upload.complete.is_(False))
                                .values(offset=stop, updated=now()).execution_options(synchronize_session=False))
        if moved.rowcount != 1:
            return False
        session.add(UploadPiece(upload_id=upload_id, start=start, stop=stop, tag=tag))
    return True


async def receive(request: Request, fd: int, offset: int, size: int, at: int) -> int:
    """Write the request's body (the upload's bytes from ``offset``) into ``fd`` from position ``at``, in batches
    of about ``WRITE_BATCH`` bytes (one ``pwritev`` of the pieces the server received: no copy to join them);
    a body past the declared size is refused and not kept. A client that goes away mid-chunk keeps what
    arrived (the next PATCH starts at the new offset)."""
    os.ftruncate(fd, at)  # bytes past the agreed offset (a chunk cut short before) never count
    written, pieces, held = 0, [], 0
    try:
        async for piece in request.stream():
            if offset + written + held + len(piece) > size:
                os.ftruncate(fd, at)
                raise HTTPException(413, f"the chunk runs past the upload's declared size of {size} bytes",
                                    headers=_offset_header(offset))
            pieces.append(piece)
            held += len(piece)
            if held >= WRITE_BATCH:
                written += _write(fd, pieces, at + written)
                pieces, held = [], 0
    except ClientDisconnect:
        pass
    return written + _write(fd, pieces, at + written)


def _write(fd: int, pieces: list[bytes], at: int) -> int:
    """Write ``pieces`` at ``at``, all of them; how many bytes."""
    if len(pieces) > 1024:  # more than one vector write takes (IOV_MAX): join them
        pieces = [b"".join(pieces)]
    total = sum(len(piece) for piece in pieces)
    done = os.pwritev(fd, pieces, at) if pieces else 0
    rest = memoryview(b"".join(pieces))[done:] if done < total else memoryview(b"")
    while rest:  # a short write (a full disk answers with an error instead): the rest in order
        count = os.pwrite(fd, rest, at + done)
        done, rest = done + count, rest[count:]
    return total


def _rewind(store: Store, upload_id: str, offset: int) -> None:
    with store.session() as session:
        row = session.get(Upload, upload_id)
        if row is not None:
            row.offset, row.updated = offset, now()


def complete(store: Store, settings: ServiceSettings, storage: StudioStorage, upload: Upload) -> Upload:
    """Check the whole file and place it, once (see the module's docstring); a refused file is removed with its
    upload (send it again)."""
    claim = _claim(store, upload.id)
    if claim is None:
        return _taken(store, upload.id)
    try:
        part = storage.part(upload.id, upload.name)
        held = part.stat().st_size if not storage.remote and part.exists() else 0
        if not storage.remote and _renamed_before(store, storage, upload, held):
            checked = sniff(storage.shot_file(upload.shot_id, upload.role, upload.name), upload.name,
                            settings.limits.max_pixels)
            part.unlink(missing_ok=True)  # the empty one this request opened
            return _finish(store, storage, upload, checked)
        if storage.remote and (placed := _gather(store, storage, upload, claim)) is not None:
            return placed
        checked = sniff(part, upload.name, settings.limits.max_pixels)
        try:
            storage.place(upload.id, upload.shot_id, upload.role, upload.name)
        except AlreadyHeld:
            if _recorded(store, upload):
                raise
            # one upload at a time receives a name (the ``uploads_one_receiving`` index), so a file no row
            # records is this upload's own, put by a completion whose server died before recording it
            storage.place(upload.id, upload.shot_id, upload.role, upload.name, replace=True)
    except UploadRefused as err:
        with store.session() as session:  # only while this request's claim holds
            gone = session.execute(delete(Upload).where(Upload.id == upload.id, Upload.complete.is_(False),
                                                        Upload.completing == claim)).rowcount
        if not gone:  # the claim lapsed and a request that took it over decides
            return _taken(store, upload.id)
        storage.discard(upload.id, upload.name)
        raise HTTPException(err.status, f"{err} (the upload is discarded)") from None
    except BaseException:
        _release(store, upload.id, claim)
        raise
    return _finish(store, storage, upload, checked)


def _recorded(store: Store, upload: Upload) -> bool:
    """Whether the shot has a file row of the upload's role and name."""
    with store.session() as session:
        return session.scalar(select(ShotFile.id).where(
            ShotFile.shot_id == upload.shot_id, ShotFile.role == upload.role, ShotFile.name == upload.name)) is not None


def _renamed_before(store: Store, storage: StudioStorage, upload: Upload, held: int) -> bool:
    """A storage folder: all the upload's bytes were in, and its part file (``held`` bytes of it left) was
    renamed into the shot by a completion whose server died before recording it: the file in the shot is the
    part file, and completing again records it (one upload at a time receives a name: the file is its own)."""
    return (upload.offset == upload.size and held < upload.size and not _recorded(store, upload)
            and storage.stored(storage.shot_file(upload.shot_id, upload.role, upload.name)) is not None)


def _taken(store: Store, upload_id: str) -> Upload:
    """The upload another request completed, or 409 while another request is completing it."""
    row = _row(store, upload_id)
    if row.complete:
        return row
    raise HTTPException(409, "another request is checking this upload's last bytes: ask for it again (GET) in a "
                             "while", headers=_offset_header(row.offset))


def _claim(store: Store, upload_id: str) -> datetime | None:
    """Claim completing the upload (none held, or one older than the lease); the claim's stamp, or None."""
    stamp = now()
    with store.session() as session:
        taken = session.execute(update(Upload).where(
            Upload.id == upload_id, Upload.complete.is_(False), Upload.offset == Upload.size,
            or_(Upload.completing.is_(None), Upload.completing < stamp - timedelta(seconds=COMPLETE_LEASE_S)))
            .values(completing=stamp).execution_options(synchronize_session=False))
    return stamp if taken.rowcount == 1 else None


def _release(store: Store, upload_id: str, claim: datetime) -> None:
    with store.session() as session:
        session.execute(update(Upload).where(Upload.id == upload_id, Upload.completing == claim)
                        .values(completing=None).execution_options(synchronize_session=False))


def _gather(store: Store, storage: StudioStorage, upload: Upload, claim: datetime) -> Upload | None:
    """Fetch the acknowledged pieces into the local part file. A piece the store lost rewinds the upload to
    where it starts (409 with that offset: the client sends from there), as a lost part file does. The upload
    when another request, which took over a lapsed claim, completed it meanwhile."""
    with store.session() as session:
        rows = session.execute(select(UploadPiece.start, UploadPiece.stop, UploadPiece.tag)
                               .where(UploadPiece.upload_id == upload.id).order_by(UploadPiece.start)).all()
    pieces = [(start, stop, tag) for start, stop, tag in rows]
    try:
        part = storage.assemble(upload.id, upload.name, pieces)
        if part.stat().st_size != upload.size:
            raise PieceMissing(part.stat().st_size)
    except PieceMissing as lost:  # (a piece removed by a request that completed the upload: see below)
        storage.part(upload.id, upload.name).unlink(missing_ok=True)
        with store.session() as session:  # only while this request's claim holds
            rewound = session.execute(update(Upload).where(Upload.id == upload.id, Upload.completing == claim)
                                      .values(offset=lost.start, completing=None, updated=now())
                                      .execution_options(synchronize_session=False))
            if rewound.rowcount == 1:
                session.execute(delete(UploadPiece).where(UploadPiece.upload_id == upload.id,
                                                          UploadPiece.stop > lost.start))
        if rewound.rowcount != 1:  # the claim lapsed (its pieces removed by the request that placed it)
            return _taken(store, upload.id)
        raise HTTPException(409, f"the store lost this upload's bytes from {lost.start}: send from there",
                            headers=_offset_header(lost.start)) from None
    return None


def _finish(store: Store, storage: StudioStorage, upload: Upload, checked: Checked) -> Upload:
    """Mark the upload complete and add its file to the shot, if no other request did (one file row, ever);
    then remove its pieces from the store."""
    with store.session() as session:
        done = session.execute(update(Upload).where(Upload.id == upload.id, Upload.complete.is_(False))
                               .values(complete=True, completing=None, updated=now())
                               .execution_options(synchronize_session=False))
        if done.rowcount == 1:
            session.add(ShotFile(id=new_id("file"), studio_id=upload.studio_id, shot_id=upload.shot_id,
                                 role=upload.role, name=upload.name, size=upload.size,
                                 format=checked.format, width=checked.width, height=checked.height,
                                 channels=checked.channels))
            if storage.remote:
                session.execute(delete(UploadPiece).where(UploadPiece.upload_id == upload.id))
        row = session.get(Upload, upload.id)
    if storage.remote:
        try:
            storage.drop_pieces(upload.id)
        except Exception:  # the file is placed; pieces left behind go at the next housekeeping round
            log.warning("upload %s: its pieces could not be removed from the store", upload.id, exc_info=True)
    assert row is not None
    return row
