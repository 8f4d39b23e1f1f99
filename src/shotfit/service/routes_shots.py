"""Shots, their files, and resumable uploads (tus-like: ``Upload-Offset`` and raw bytes)."""

from __future__ import annotations

import fcntl
import os
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import ClientDisconnect

from shotfit.service import schemas
from shotfit.service.deps import CallerDep, SettingsDep, StoreDep, errors, not_found
from shotfit.service.keys import Caller
from shotfit.service.settings import ServiceSettings
from shotfit.service.storage import StoredFile, StudioStorage, UploadRefused, check_name, sniff
from shotfit.service.store import Shot, ShotFile, Store, Studio, Upload
from shotfit.service.store.models import ROLES, new_id, now

router = APIRouter(prefix="/v1", responses=errors(400, 401, 404, 429))

# bytes gathered before one write: few system calls, little held in memory per request
WRITE_BATCH = 4 << 20


def shot_body(session: Session, shot: Shot) -> schemas.Shot:
    counts = dict(session.execute(select(ShotFile.role, func.count()).where(ShotFile.shot_id == shot.id)
                                  .group_by(ShotFile.role)).all())
    return schemas.Shot(id=shot.id, name=shot.name, created=shot.created,
                        files=schemas.FileCounts(**{role: counts.get(role, 0) for role in ROLES}))


def own_shot(session: Session, caller: Caller, shot_id: str) -> Shot:
    shot = session.get(Shot, shot_id)
    if shot is None or shot.studio_id != caller.studio_id:
        raise not_found("shot")
    return shot


def upload_body(upload: Upload) -> schemas.Upload:
    return schemas.Upload(id=upload.id, shot_id=upload.shot_id, role=upload.role,  # type: ignore[arg-type]
                          name=upload.name, offset=upload.offset, size=upload.size, complete=upload.complete)


@router.post("/shots", status_code=201, response_model=schemas.Shot, responses=errors(422))
def create_shot(body: schemas.ShotCreate, caller: CallerDep, store: StoreDep) -> schemas.Shot:
    with store.session() as session:
        shot = Shot(id=new_id("shot"), studio_id=caller.studio_id, name=body.name)
        session.add(shot)
        session.flush()
        return shot_body(session, shot)


@router.get("/shots", response_model=list[schemas.Shot])
def list_shots(caller: CallerDep, store: StoreDep) -> list[schemas.Shot]:
    with store.session() as session:
        shots = session.scalars(select(Shot).where(Shot.studio_id == caller.studio_id).order_by(Shot.created))
        return [shot_body(session, shot) for shot in shots]


@router.get("/shots/{shot_id}", response_model=schemas.Shot)
def get_shot(shot_id: str, caller: CallerDep, store: StoreDep) -> schemas.Shot:
    with store.session() as session:
        return shot_body(session, own_shot(session, caller, shot_id))


@router.get("/shots/{shot_id}/files", response_model=list[schemas.ShotFile])
def list_files(shot_id: str, caller: CallerDep, store: StoreDep,
               query: Annotated[schemas.FilesQuery, Query()]) -> list[schemas.ShotFile]:
    role = query.role
    with store.session() as session:
        own_shot(session, caller, shot_id)
        query = select(ShotFile).where(ShotFile.shot_id == shot_id)
        if role is not None:
            query = query.where(ShotFile.role == role)
        return [file_body(f) for f in session.scalars(query.order_by(ShotFile.role, ShotFile.name))]


def file_body(row: ShotFile) -> schemas.ShotFile:
    return schemas.ShotFile(role=row.role, name=row.name, size=row.size, format=row.format,  # type: ignore[arg-type]
                            width=row.width, height=row.height, channels=row.channels,
                            url=f"/v1/shots/{row.shot_id}/files/{row.role}/{row.name}")


@router.get("/shots/{shot_id}/files/{role}/{name}", response_class=FileResponse,
            responses={**errors(422), 200: {"content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}, "description": "the file's bytes"}})
def shot_file(shot_id: str, role: schemas.Role,
              name: Annotated[str, PathParam(max_length=255, pattern=schemas.FILE_NAME, description="as uploaded")],
              caller: CallerDep, store: StoreDep, settings: SettingsDep) -> Response:
    """One uploaded file of the shot, as it was uploaded (the web page's "before" side): from the disk, or
    streamed from the files' store. The name is looked up among the shot's files in the job store; only a
    name found there reaches the storage."""
    with store.session() as session:
        own_shot(session, caller, shot_id)
        row = session.scalars(select(ShotFile).where(ShotFile.studio_id == caller.studio_id,
                                                     ShotFile.shot_id == shot_id, ShotFile.role == role,
                                                     ShotFile.name == name)).first()
        if row is None:
            raise not_found("file")
        stored = row.name
    storage = StudioStorage.of(settings, caller.studio_id)
    path = storage.shot_file(shot_id, role, stored)
    if not storage.remote:
        if not path.is_file():  # removed by retention while the row stayed
            raise not_found("file")
        return FileResponse(path, filename=stored, media_type="application/octet-stream")
    key = storage.key(path)
    if not storage.fs.exists(key):
        raise not_found("file")
    found = StoredFile(storage.fs, key, int(storage.fs.info(key).get("size") or 0))
    return StreamingResponse(iterate_in_threadpool(found.chunks()), media_type="application/octet-stream",
                             headers={"Content-Disposition": f'attachment; filename="{stored}"',
                                      "Content-Length": str(found.size)})


@router.post("/shots/{shot_id}/uploads", status_code=201, response_model=schemas.Upload,
             responses=errors(400, 409, 413, 415, 422))
def create_upload(shot_id: str, body: schemas.UploadCreate, caller: CallerDep, store: StoreDep,
                  settings: SettingsDep) -> schemas.Upload:
    """Announce a file: its role, name (data, never a path) and size; then PATCH its bytes."""
    try:
        check_name(body.name)
    except UploadRefused as err:
        raise HTTPException(err.status, str(err)) from None
    with store.session() as session:
        own_shot(session, caller, shot_id)
        studio = session.get(Studio, caller.studio_id)
        assert studio is not None
        _check_limits(session, studio, settings, shot_id, body)
        upload = Upload(id=new_id("upload"), studio_id=caller.studio_id, shot_id=shot_id, role=body.role,
                        name=body.name, size=body.size, offset=0, complete=False)
        session.add(upload)
        session.flush()
        return upload_body(upload)


def _check_limits(session: Session, studio: Studio, settings: ServiceSettings, shot_id: str,
                  body: schemas.UploadCreate) -> None:
    limits = settings.limits
    max_file = studio.max_file_bytes or limits.max_file_bytes
    if body.size > max_file:
        raise HTTPException(413, f"file {body.name!r} is {body.size} bytes, over the limit of {max_file} bytes")
    taken = session.scalar(select(func.count()).select_from(ShotFile).where(
        ShotFile.shot_id == shot_id, ShotFile.role == body.role, ShotFile.name == body.name))
    pending = session.scalar(select(func.count()).select_from(Upload).where(
        Upload.shot_id == shot_id, Upload.role == body.role, Upload.name == body.name, Upload.complete.is_(False)))
    if taken or pending:
        raise HTTPException(409, f"the shot already holds (or is receiving) {body.role} file {body.name!r}")
    max_files = studio.max_files or limits.max_files
    count = session.scalar(select(func.count()).select_from(Upload).where(
        Upload.shot_id == shot_id, Upload.role == body.role)) or 0
    if count >= max_files:
        raise HTTPException(413, f"the shot holds {count} {body.role} files, the limit")
    max_storage = studio.max_storage_bytes or limits.max_storage_bytes
    used = session.scalar(select(func.coalesce(func.sum(Upload.size), 0)).where(
        Upload.studio_id == studio.id)) or 0
    if used + body.size > max_storage:
        raise HTTPException(413, f"the studio's files would take {used + body.size} bytes, over its limit of "
                                 f"{max_storage} bytes")


def own_upload(session: Session, caller: Caller, upload_id: str) -> Upload:
    upload = session.get(Upload, upload_id)
    if upload is None or upload.studio_id != caller.studio_id:
        raise not_found("upload")
    return upload


@router.get("/uploads/{upload_id}", response_model=schemas.Upload)
def get_upload(upload_id: str, caller: CallerDep, store: StoreDep, response: Response) -> schemas.Upload:
    """Where an upload stands: resume from ``offset``."""
    with store.session() as session:
        upload = own_upload(session, caller, upload_id)
    response.headers["Upload-Offset"] = str(upload.offset)
    response.headers["Upload-Length"] = str(upload.size)
    return upload_body(upload)


@router.patch("/uploads/{upload_id}", response_model=schemas.Upload,
              responses={**errors(400, 409, 413, 415, 422),
                         200: {"description": "the bytes were kept; the upload's new offset"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}},
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def patch_upload(upload_id: str, request: Request, caller: CallerDep, store: StoreDep,
                       settings: SettingsDep, response: Response,
                       upload_offset: Annotated[int, Header(ge=0, description="the byte this chunk starts at")]
                       ) -> schemas.Upload:
    """Append the body at ``Upload-Offset``, which must be the upload's offset (else 409 with it). The last
    byte checks the file (type from its bytes, its decoded header and last line) and places it in the shot.

    An acknowledged offset survives a crash: the bytes reach the disk (``fdatasync``) before the offset is
    committed to the store, and the offset before the answer; bytes past it (a chunk cut short, a crash
    between the two) are cut off by the next PATCH."""
    offset = upload_offset
    with store.session() as session:
        upload = own_upload(session, caller, upload_id)
    if upload.complete:
        raise HTTPException(409, "the upload is complete", headers={"Upload-Offset": str(upload.offset)})
    storage = StudioStorage.of(settings, caller.studio_id)
    part = storage.part(upload.id, upload.name)
    part.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HTTPException(409, "another request is writing this upload",
                                headers={"Upload-Offset": str(upload.offset)}) from None
        with store.session() as session:  # the offset as it is now that this request holds the file
            upload = own_upload(session, caller, upload_id)
        held = os.fstat(fd).st_size
        if held < upload.offset:  # the part file was lost (or lies on another server): never pad it with zeros
            _rewind(store, caller, upload_id, held)
            raise HTTPException(409, f"the server holds {held} bytes of this upload, not {offset}: send from there",
                                headers={"Upload-Offset": str(held)})
        if offset != upload.offset:
            raise HTTPException(409, f"Upload-Offset {offset} is not the upload's offset {upload.offset}",
                                headers={"Upload-Offset": str(upload.offset)})
        written = await _receive(request, fd, offset, upload.size)
        await run_in_threadpool(os.fdatasync, fd)  # the bytes are on disk before their offset is acknowledged
    finally:
        os.close(fd)
    with store.session() as session:
        row = own_upload(session, caller, upload_id)
        row.offset, row.updated = offset + written, now()
        upload = row
    if upload.offset == upload.size:
        upload = await run_in_threadpool(_complete, store, settings, storage, upload)
    response.headers["Upload-Offset"] = str(upload.offset)
    return upload_body(upload)


async def _receive(request: Request, fd: int, offset: int, size: int) -> int:
    """Write the request's body at ``offset``, in batches of about ``WRITE_BATCH`` bytes (one ``pwritev`` of the
    pieces the server received: no copy to join them); a body past the declared size is refused and not kept.
    A client that goes away mid-chunk keeps what arrived (the next PATCH starts at the new offset)."""
    os.ftruncate(fd, offset)  # bytes past the agreed offset (a chunk cut short before) never count
    written, pieces, held = 0, [], 0
    try:
        async for piece in request.stream():
            if offset + written + held + len(piece) > size:
                os.ftruncate(fd, offset)
                raise HTTPException(413, f"the chunk runs past the upload's declared size of {size} bytes",
                                    headers={"Upload-Offset": str(offset)})
            pieces.append(piece)
            held += len(piece)
            if held >= WRITE_BATCH:
                written += _write(fd, pieces, offset + written)
                pieces, held = [], 0
    except ClientDisconnect:
        pass
    return written + _write(fd, pieces, offset + written)


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


def _rewind(store: Store, caller: Caller, upload_id: str, offset: int) -> Upload:
    with store.session() as session:
        row = own_upload(session, caller, upload_id)
        row.offset, row.updated = offset, now()
        return row


def _complete(store: Store, settings: ServiceSettings, storage: StudioStorage, upload: Upload) -> Upload:
    """Check the whole file and place it; a refused file is removed with its upload (send it again)."""
    try:
        checked = sniff(storage.part(upload.id, upload.name), upload.name, settings.limits.max_pixels)
        storage.place(upload.id, upload.shot_id, upload.role, upload.name)
    except UploadRefused as err:
        storage.discard(upload.id, upload.name)
        with store.session() as session:
            session.execute(delete(Upload).where(Upload.id == upload.id))
        raise HTTPException(err.status, f"{err} (the upload is discarded)") from None
    with store.session() as session:
        session.add(ShotFile(id=new_id("file"), studio_id=upload.studio_id, shot_id=upload.shot_id, role=upload.role,
                             name=upload.name, size=upload.size, format=checked.format,
                             width=checked.width, height=checked.height, channels=checked.channels))
        row = session.get(Upload, upload.id)
        assert row is not None
        row.complete, row.updated = True, now()
        return row
