"""Shots, their files, and resumable uploads (tus-like: ``Upload-Offset`` and raw bytes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from shotfit.service import schemas, uploads
from shotfit.service.deps import CallerDep, SettingsDep, StoreDep, errors, not_found
from shotfit.service.keys import Caller
from shotfit.service.settings import ServiceSettings
from shotfit.service.storage import StudioStorage, UploadRefused, check_name
from shotfit.service.store import Shot, ShotFile, Studio, Upload
from shotfit.service.store.models import ROLES, new_id

router = APIRouter(prefix="/v1", responses=errors(400, 401, 404, 429))


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
    found = storage.stored(path)  # one HEAD: removed by retention while the row stayed, or there
    if found is None:
        raise not_found("file")
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
        try:
            session.flush()
        except IntegrityError:  # another request announced the name in between (the check above saw neither)
            raise _receiving(body) from None
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
        raise _receiving(body)
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


def _receiving(body: schemas.UploadCreate) -> HTTPException:
    return HTTPException(409, f"the shot already holds (or is receiving) {body.role} file {body.name!r}")


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

    An acknowledged offset survives a crash: the bytes are on the disk (``fdatasync``), or in the files'
    store, before the offset is committed to the store, and the offset before the answer. With a files'
    store, any server on the same store and database takes the upload's next PATCH (:mod:`.uploads`)."""
    with store.session() as session:
        upload = own_upload(session, caller, upload_id)
    if upload.complete:
        raise HTTPException(409, "the upload is complete", headers={"Upload-Offset": str(upload.offset)})
    storage = StudioStorage.of(settings, caller.studio_id)
    append = uploads.append_piece if storage.remote else uploads.append_to_part
    upload = await append(request, store, storage, upload, upload_offset)
    if upload.offset == upload.size and not upload.complete:
        upload = await run_in_threadpool(uploads.complete, store, settings, storage, upload)
    response.headers["Upload-Offset"] = str(upload.offset)
    return upload_body(upload)
