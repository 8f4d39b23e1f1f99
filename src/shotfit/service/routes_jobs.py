"""Jobs: submit (idempotent), list, poll, cancel, the event stream, results and previews."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from shotfit.errors import ShotfitError
from shotfit.service import jobwork, schemas, sweepjob
from shotfit.service.deps import BearerDep, CallerDep, SettingsDep, StoreDep, authorize, errors, not_found
from shotfit.service.keys import Caller
from shotfit.service.settings import ServiceSettings
from shotfit.service.storage import StoredFile, StudioStorage, UploadRefused, check_name
from shotfit.service.store import IdempotencyKey, Job, Shot, ShotFile, Store
from shotfit.service.store.models import FINAL_STATES, new_id, now
from shotfit.service.views import job_body
from shotfit.service.webhooks import enqueue
from shotfit.service.zipstream import zip_chunks

router = APIRouter(prefix="/v1", responses=errors(400, 401, 404, 429))

RETRY_BUSY_S = 5  # what Retry-After says when a key has too many jobs


def own_job(session: Session, caller: Caller, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.studio_id != caller.studio_id:
        raise not_found("job")
    return job


def _request_hash(body: schemas.JobCreate) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


@router.post("/jobs", status_code=201, response_model=schemas.Job,
             responses={**errors(409, 422), 200: {"model": schemas.Job,
                                                  "description": "the job an earlier request with this "
                                                                 "Idempotency-Key made"}})
def create_job(body: schemas.JobCreate, caller: CallerDep, store: StoreDep, settings: SettingsDep,
               response: Response,
               idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> schemas.Job:
    """Queue a job. With an ``Idempotency-Key``, the same key and body give back the same job (200)."""
    digest = _request_hash(body)
    if idempotency_key is not None and (earlier := _earlier(store, caller, idempotency_key, digest)) is not None:
        response.status_code = 200
        return earlier
    try:
        jobwork.check_settings(body.kind, body.settings, body.run_id)
    except ShotfitError as err:
        raise HTTPException(422, str(err)) from None
    try:
        with store.session() as session:
            _check_inputs(session, caller, body)
            _check_busy(session, caller, settings)
            job = Job(id=new_id("job"), studio_id=caller.studio_id, key_id=caller.key_id, kind=body.kind,
                      shot_id=body.shot_id, run_id=body.run_id, settings=dict(body.settings), state="queued",
                      progress={})
            if body.kind == "train":
                job.run_id = job.id
            session.add(job)
            session.flush()
            if idempotency_key is not None:
                session.add(IdempotencyKey(studio_id=caller.studio_id, key=idempotency_key, request_hash=digest,
                                           job_id=job.id))
            created = job_body(job)
    except IntegrityError:  # the same key raced in from another request: answer as it was answered
        earlier = _earlier(store, caller, idempotency_key or "", digest)
        if earlier is None:
            raise
        response.status_code = 200
        return earlier
    enqueue(store, created.id, "job.queued")
    return created


def _earlier(store: Store, caller: Caller, key: str, digest: str) -> schemas.Job | None:
    with store.session() as session:
        row = session.get(IdempotencyKey, (caller.studio_id, key))
        if row is None:
            return None
        if row.request_hash != digest:
            raise HTTPException(409, "this Idempotency-Key was used with another request body")
        job = session.get(Job, row.job_id)
        assert job is not None
        return job_body(job)


def _check_inputs(session: Session, caller: Caller, body: schemas.JobCreate) -> None:
    shot = session.get(Shot, body.shot_id)
    if shot is None or shot.studio_id != caller.studio_id:
        raise not_found("shot")
    counts = dict(session.execute(select(ShotFile.role, func.count()).where(ShotFile.shot_id == shot.id)
                                  .group_by(ShotFile.role)).all())
    needed = ("source", "keyframes") if body.kind in ("train", "sweep") else ("source",) \
        if body.kind in ("render", "suggest") else ()
    if body.kind == "sweep" and sweepjob.needs_truth(body.settings):
        needed += ("truth",)
    for role in needed:
        if not counts.get(role):
            raise HTTPException(422, f"shot {shot.id} has no {role} files: upload them first")
    if body.kind in ("render", "export") and body.run_id is None:
        raise HTTPException(422, f"a {body.kind} job needs run_id: the id of a finished train job")
    if body.kind in ("render", "export", "suggest") and body.run_id is not None:
        run = session.get(Job, body.run_id)
        if run is None or run.studio_id != caller.studio_id or run.kind != "train":
            raise not_found("run")
        if run.state != "succeeded":
            raise HTTPException(409, f"run {run.id} is {run.state}; a {body.kind} job needs a finished train job")
    elif body.run_id is not None:
        raise HTTPException(422, f"a {body.kind} job takes no run_id")


def _check_busy(session: Session, caller: Caller, settings: ServiceSettings) -> None:
    limit = caller.max_concurrent_jobs or settings.limits.max_concurrent_jobs
    active = session.scalar(select(func.count()).select_from(Job).where(
        Job.key_id == caller.key_id, Job.state.in_(("queued", "running")))) or 0
    if active >= limit:
        raise HTTPException(429, f"this key has {active} jobs queued or running, its limit",
                            headers={"Retry-After": str(RETRY_BUSY_S)})


@router.get("/jobs", response_model=list[schemas.Job])
def list_jobs(caller: CallerDep, store: StoreDep, query: Annotated[schemas.JobsQuery, Query()]) -> list[schemas.Job]:
    state = query.state
    with store.session() as session:
        query = select(Job).where(Job.studio_id == caller.studio_id)
        if state is not None:
            query = query.where(Job.state == state)
        return [job_body(job) for job in session.scalars(query.order_by(Job.created.desc()).limit(500))]


@router.get("/jobs/{job_id}", response_model=schemas.Job)
async def get_job(job_id: str, credentials: BearerDep, request: Request) -> Response:
    """The job as it stands (what clients poll: the key, its count and the job in one trip to the thread pool,
    and the body serialised once, not validated again)."""
    return Response(await run_in_threadpool(_poll, request.app.state.store, request.app.state.settings, credentials,
                                            job_id), media_type="application/json")


def _poll(store: Store, settings: ServiceSettings, credentials: HTTPAuthorizationCredentials | None,
          job_id: str) -> bytes:
    caller = authorize(store, settings, credentials)
    with store.session() as session:
        return job_body(own_job(session, caller, job_id)).model_dump_json().encode()


@router.post("/jobs/{job_id}/cancel", response_model=schemas.Job)
def cancel_job(job_id: str, caller: CallerDep, store: StoreDep) -> schemas.Job:
    """Ask a job to stop: a queued job is cancelled now; a running one stops within seconds (training with a
    checkpoint, rendering after the frame in hand). A finished job is left as it is."""
    with store.session() as session:
        job = own_job(session, caller, job_id)
        cancelled_now = False
        if job.state == "queued":
            job.state, job.finished, job.cancel_requested, cancelled_now = "cancelled", now(), True, True
        elif job.state == "running":
            job.cancel_requested = True
        job.updated = now()
        body = job_body(job)
    if cancelled_now:
        enqueue(store, job_id, "job.cancelled")
    return body


# --- live events ----------------------------------------------------------------------------------

def _sse(event: str, data: str) -> bytes:
    return f"event: {event}\ndata: {data}\n\n".encode()


# OpenAPI's schema of one server-sent event (what schemathesis checks each event of the stream against)
_EVENT_SCHEMA = {"type": "object", "required": ["event", "data"],
                 "properties": {"event": {"type": "string", "enum": ["state", "progress", "preview"]},
                                "data": {"type": "string"}}}


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
                             "description": "progress, preview and state events; ends after a final state"}})
async def job_events(job_id: str, caller: CallerDep, store: StoreDep, settings: SettingsDep,
                     request: Request) -> StreamingResponse:
    """Server-sent events: ``state`` (Job JSON) on each change of state, ``progress`` (Job JSON) on new progress,
    ``preview`` ({"url"}) on each new training preview, the newest one at once after the first ``state``; the
    stream ends after a final state (or after that first preview, for a job that had ended when the stream opened).
    Each poll reads the job's row only: the newest preview is the one its worker recorded there, never a listing
    of the storage."""
    first, sheet = await run_in_threadpool(_read_job, store, caller, job_id)
    return StreamingResponse(_events(store, caller, first, sheet, request, settings.poll_s),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _read_job(store: Store, caller: Caller, job_id: str) -> tuple[schemas.Job, str | None]:
    """The job as clients see it, and the name of its newest preview sheet (a checked name, or None)."""
    with store.session() as session:
        job = own_job(session, caller, job_id)
        return job_body(job), _recorded_preview(job)


def _recorded_preview(job: Job) -> str | None:
    """The contact sheet a training job's worker recorded as its newest in the storage: a plain file name (checked
    here, before it joins a URL or a path), or None before the first."""
    if job.kind != "train" or job.preview is None:
        return None
    try:
        return check_name(job.preview) if job.preview.endswith(".png") else None
    except UploadRefused:
        return None


def _preview_event(job_id: str, sheet: str) -> bytes:
    return _sse("preview", json.dumps({"url": f"/v1/jobs/{job_id}/previews/latest.png?sheet={sheet}"}))


async def _events(store: Store, caller: Caller, job: schemas.Job, sheet: str | None, request: Request,
                  poll_s: float) -> AsyncIterator[bytes]:
    yield _sse("state", job.model_dump_json())
    if sheet is not None:  # a client that connects late, even after the end, sees the newest sheet at once
        yield _preview_event(job.id, sheet)
    state, progress, preview, quiet = job.state, job.progress, sheet, 0.0
    while job.state not in FINAL_STATES:
        await asyncio.sleep(max(poll_s, 0.2))
        if await request.is_disconnected():
            return
        job, sheet = await run_in_threadpool(_read_job, store, caller, job.id)
        if sheet is not None and sheet != preview:
            preview = sheet
            yield _preview_event(job.id, preview)
        if job.progress != progress:
            progress, quiet = job.progress, 0.0
            yield _sse("progress", job.model_dump_json())
        if job.state != state:
            state, quiet = job.state, 0.0
            yield _sse("state", job.model_dump_json())
        quiet += max(poll_s, 0.2)
        if quiet >= 15.0:  # a comment keeps proxies from closing a quiet stream
            quiet = 0.0
            yield b": keep-alive\n\n"


# --- results --------------------------------------------------------------------------------------

def _results(store: Store, settings: ServiceSettings, caller: Caller, job_id: str
             ) -> tuple[Job, dict[str, StoredFile]]:
    """The job's results, listed from the storage (the local folder, or the store the workers put them in)."""
    with store.session() as session:
        job = own_job(session, caller, job_id)
    storage = StudioStorage.of(settings, caller.studio_id)
    return job, jobwork.results(job.kind, storage.files(storage.job(job.id)))


def _send(stored: StoredFile, name: str, media_type: str, headers: dict[str, str] | None = None) -> Response:
    """A stored file as a response: from the disk (sendfile) when it is local, else streamed from the store."""
    if stored.local is not None:
        return FileResponse(stored.local, filename=name if media_type == "application/octet-stream" else None,
                            media_type=media_type, headers=headers)
    disposition = {"Content-Disposition": f'attachment; filename="{name}"'} \
        if media_type == "application/octet-stream" else {}
    return StreamingResponse(iterate_in_threadpool(stored.chunks()), media_type=media_type,
                             headers={**disposition, "Content-Length": str(stored.size), **(headers or {})})


@router.get("/jobs/{job_id}/results", response_model=list[schemas.ResultFile])
def list_results(job_id: str, caller: CallerDep, store: StoreDep, settings: SettingsDep) -> list[schemas.ResultFile]:
    _, found = _results(store, settings, caller, job_id)
    return [schemas.ResultFile(name=name, size=stored.size, url=f"/v1/jobs/{job_id}/results/{name}")
            for name, stored in found.items()]


@router.get("/jobs/{job_id}/results.zip", response_class=StreamingResponse,
            responses={200: {"content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}}})
def results_zip(job_id: str, caller: CallerDep, store: StoreDep, settings: SettingsDep) -> StreamingResponse:
    """Every result in one zip, streamed as it is made (no copy on the server's disk)."""
    _, found = _results(store, settings, caller, job_id)
    return StreamingResponse(zip_chunks(found), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{job_id}.zip"'})


@router.get("/jobs/{job_id}/results/{name}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}}})
def result_file(job_id: str, name: str, caller: CallerDep, store: StoreDep, settings: SettingsDep) -> Response:
    _, found = _results(store, settings, caller, job_id)
    if name not in found:
        raise not_found("result")
    return _send(found[name], name, "application/octet-stream")


@router.get("/jobs/{job_id}/previews/latest.png", response_class=FileResponse,
            responses={200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
def latest_preview(job_id: str, caller: CallerDep, store: StoreDep, settings: SettingsDep) -> Response:
    """The training job's newest contact sheet (404 until the first is in the storage): the one its worker recorded,
    fetched by name (the previews folder is not listed)."""
    with store.session() as session:
        name = _recorded_preview(own_job(session, caller, job_id))
    storage = StudioStorage.of(settings, caller.studio_id)
    sheet = storage.stored(storage.job(job_id) / "run" / "previews" / name) if name is not None else None
    if sheet is None:
        raise not_found("preview")
    return _send(sheet, "latest.png", "image/png", {"Cache-Control": "no-cache"})

