"""The store's tables as SQLAlchemy 2 models. Every object carries its studio: a query always filters by
it, so another studio's id is simply not found (404, never 403).

Times are stored as timezone-aware UTC (SQLite keeps no zone: :class:`UTCDateTime` puts it back).
Ids are random strings with a readable prefix (``shot_``, ``job_``...): unguessable, and a log line
says what an id is.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL_STATES = ("succeeded", "failed", "cancelled")
JOB_KINDS = ("train", "render", "export", "suggest", "sweep")
ROLES = ("source", "keyframes", "truth")


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    """``prefix_`` and 16 random hex digits: 64 bits, never guessed, never reused."""
    return f"{prefix}_{secrets.token_hex(8)}"


class UTCDateTime(TypeDecorator[datetime]):
    """A DateTime that always comes back timezone-aware in UTC, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Studio(Base):
    """A customer; every other object belongs to one. Limits are per studio (None: the server's default);
    ``max_concurrent_jobs`` and ``requests_per_minute`` bound each of its keys (a key's own value wins)."""

    __tablename__ = "studios"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[datetime] = mapped_column(default=now)
    max_file_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_files: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_storage_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    retention_days: Mapped[float | None] = mapped_column(nullable=True)
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ApiKey(Base):
    """An API key: only a SHA-256 of its secret part is kept (the key is shown once, at creation)."""

    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(default=now)
    revoked: Mapped[datetime | None] = mapped_column(nullable=True)
    max_concurrent_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)


class RateCount(Base):
    """A key's requests in its current minute (``window``: minutes since 1970, UTC): one row a key, counted by
    one atomic upsert per request, so every server on the store shares the key's budget."""

    __tablename__ = "rate_counts"
    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    window: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)


class Shot(Base):
    __tablename__ = "shots"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created: Mapped[datetime] = mapped_column(default=now)


class ShotFile(Base):
    """A checked file of a shot: its name is data (the folder on disk is the shot's and the role's)."""

    __tablename__ = "files"
    __table_args__ = (UniqueConstraint("shot_id", "role", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    shot_id: Mapped[str] = mapped_column(ForeignKey("shots.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    created: Mapped[datetime] = mapped_column(default=now)


class Upload(Base):
    """A resumable upload: bytes arrive in order at ``offset``, into a part file named by the upload's id (a
    storage folder) or as pieces in the files' store (:class:`UploadPiece`). ``completing``: when a request
    claimed the checking and placing of its last byte (one at a time, whichever server it reached)."""

    __tablename__ = "uploads"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    shot_id: Mapped[str] = mapped_column(ForeignKey("shots.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[datetime] = mapped_column(default=now)
    updated: Mapped[datetime] = mapped_column(default=now)
    completing: Mapped[datetime | None] = mapped_column(default=None)
    # one upload at a time receives a name of a shot: whichever file the shot then finds under that name, with
    # no file row, was put there by that upload's own completion before its server died (see uploads.complete)
    __table_args__ = (Index("uploads_one_receiving", "shot_id", "role", "name", unique=True,
                            sqlite_where=sql("NOT complete"), postgresql_where=sql("NOT complete")),)


class UploadPiece(Base):
    """One PATCH's bytes ``[start, stop)`` of an upload whose files live in a store (``--storage s3://...``): the
    object ``uploads/UPLOAD/pieces/START.TAG``. The row is written in the transaction that moves the upload's
    offset from ``start`` to ``stop``, so the rows are the acknowledged bytes, whichever server took them; an
    object without a row (a PATCH that lost a race, a server that died between its put and its commit) is
    never read, and goes with the upload's pieces."""

    __tablename__ = "upload_pieces"
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stop: Mapped[int] = mapped_column(BigInteger)
    tag: Mapped[str] = mapped_column(String(32))


class Job(Base):
    """A train/render/export/suggest/sweep job. ``attempt`` counts claims: a worker writes only while the job is
    still at its attempt, so a worker thought dead can never overwrite the one that replaced it. ``preview``: a
    training job's newest contact sheet (a file name in its run's ``previews/``), written by the worker once
    the sheet is in the storage, and kept across attempts (a next attempt starts from the same stored files)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(40), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    shot_id: Mapped[str] = mapped_column(ForeignKey("shots.id"))
    run_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat: Mapped[datetime | None] = mapped_column(nullable=True)
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    preview: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(default=now)
    started: Mapped[datetime | None] = mapped_column(nullable=True)
    finished: Mapped[datetime | None] = mapped_column(nullable=True)
    updated: Mapped[datetime] = mapped_column(default=now)


class JobFrame(Base):
    """A frame a render job wrote, with the attempt that wrote it (one row per write: a frame written twice
    would show as two rows)."""

    __tablename__ = "job_frames"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    frame: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)


class JobChunk(Base):
    """One Ray task of a render job shared out on workers (``render.workers`` > 1): which process (``pid`` on
    ``host``) renders which ``frames`` (``first_frame`` names the chunk) for which attempt, since ``started``;
    ``ended`` once its task returned (a chunk whose process died never ends). Written by the chunk itself, so
    an operator (or a test's kill -9) finds the process of a chunk: while ``ended`` is empty that process is
    rendering the chunk, after it Ray may have handed it other work. Never read to decide what runs: the
    frames still to render are the files, and what a chunk wrote is ``job_frames``."""

    __tablename__ = "job_chunks"
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    frames: Mapped[list[Any]] = mapped_column(default=list)
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(255))
    started: Mapped[datetime] = mapped_column(default=now)
    ended: Mapped[datetime | None] = mapped_column(nullable=True)


class IdempotencyKey(Base):
    """(studio, Idempotency-Key) -> the job it made, and a hash of the body that made it."""

    __tablename__ = "idempotency_keys"
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    created: Mapped[datetime] = mapped_column(default=now)


class Webhook(Base):
    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(default=list)
    secret: Mapped[str] = mapped_column(String(100))
    created: Mapped[datetime] = mapped_column(default=now)


class Delivery(Base):
    """One webhook message to send (or sent): retried with back-off until ``delivered`` or out of tries."""

    __tablename__ = "deliveries"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try: Mapped[datetime] = mapped_column(default=now, index=True)
    delivered: Mapped[datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created: Mapped[datetime] = mapped_column(default=now)
