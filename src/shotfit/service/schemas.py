"""The HTTP bodies as pydantic models: what routes accept and return, and so the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shotfit.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

Role = Literal["source", "keyframes", "truth"]
JobKind = Literal["train", "render", "export", "suggest", "sweep"]
JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
EventName = Literal["job.queued", "job.running", "job.succeeded", "job.failed", "job.cancelled", "job.progress"]
SettingValue = str | int | float | bool | list[str | int | float | bool] | None  # checked by settings_schema


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Me(BaseModel):
    studio: str
    key_id: str


class ShotCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class FileCounts(BaseModel):
    source: int = 0
    keyframes: int = 0
    truth: int = 0


class Shot(BaseModel):
    id: str
    name: str
    created: datetime
    files: FileCounts


def _either_case(text: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)


# One plain name with a known frame or video extension (the extension in either case)
FILE_NAME = (r"^[A-Za-z0-9][A-Za-z0-9._+-]*\.(" + "|".join(_either_case(ext[1:]) for ext in
                                                      (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS)) + ")$")


class UploadCreate(Strict):
    role: Role
    name: str = Field(min_length=1, max_length=255, pattern=FILE_NAME,
                      description="the file's name: data, never a path (letters, digits and ._+-, a frame or "
                                  "video extension)")
    size: int = Field(ge=1, description="bytes the file will have")


class Upload(BaseModel):
    id: str
    shot_id: str
    role: Role
    name: str
    offset: int
    size: int
    complete: bool


class ShotFile(BaseModel):
    role: Role
    name: str
    size: int
    format: str
    width: int
    height: int
    channels: int
    url: str = Field(description="where to download the file (with the key)")


class JobCreate(Strict):
    kind: JobKind
    shot_id: str = Field(min_length=1, max_length=40)
    run_id: str | None = Field(default=None, max_length=40,
                               description="render/export: the id of a finished train job; suggest: one to rank "
                                           "the unpainted frames by (none: choose frames before painting)")
    settings: dict[str, SettingValue] = Field(default_factory=dict,
                                              description='config overrides, "section.key": value')


class FilesQuery(Strict):
    role: Role | None = None


class JobsQuery(Strict):
    state: JobState | None = None


class Progress(BaseModel):
    step: int | None = None
    steps: int | None = None
    losses: dict[str, float] = Field(default_factory=dict)
    frames_done: int | None = None
    frames_total: int | None = None
    fps: float | None = None
    eta_s: float | None = None
    stage: str | None = Field(default=None, description="suggest: the pass under way (features, flips, sheet), "
                                                        "frames_done of frames_total")
    trials_done: int | None = Field(default=None, description="sweep: trials ended (finished, stopped early "
                                                              "or failed)")
    trials_started: int | None = Field(default=None, description="sweep: trials started so far")


class Job(BaseModel):
    id: str
    kind: JobKind
    shot_id: str
    run_id: str | None
    state: JobState
    progress: Progress
    mlflow_run_id: str | None
    error: str | None
    attempt: int
    created: datetime
    started: datetime | None
    finished: datetime | None


class ResultFile(BaseModel):
    name: str
    size: int
    url: str


class WebhookCreate(Strict):
    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://")
    events: list[EventName] = Field(default_factory=lambda: ["job.succeeded", "job.failed", "job.cancelled"],
                                    min_length=1)


class Webhook(BaseModel):
    id: str
    url: str
    events: list[EventName]
    created: datetime


class WebhookWithSecret(Webhook):
    secret: str = Field(description="whsec_... (shown once): verify webhook-signature with it")


class ErrorBody(BaseModel):
    detail: str


# --- GET /v1/studio (svc-limits) -------------------------------------------------------------------

class StudioLimits(BaseModel):
    """The limits in force for the calling key: its studio's own settings, else the server's defaults."""

    max_concurrent_jobs: int = Field(description="this key's jobs queued or running at once")
    requests_per_minute: int = Field(description="this key's requests a minute (0: unlimited)")
    max_file_bytes: int = Field(description="the largest file an upload may be")
    max_files: int = Field(description="files per shot and role")
    max_storage_bytes: int = Field(description="all the studio's files together")
    max_pixels: int = Field(description="the largest frame (width x height) an upload may decode to")
    retention_days: float | None = Field(description="uploads and results are deleted this many days old "
                                                     "(null: kept)")


class StudioUsage(BaseModel):
    jobs_active: int = Field(description="this key's jobs queued or running")
    requests_this_minute: int = Field(description="this key's requests in the current minute, this one included")
    shots: int
    files: int = Field(description="checked files in the studio's shots")
    storage_bytes: int = Field(description="bytes of the studio's uploads, finished or not (what max_storage_bytes "
                                           "bounds)")


class StudioInfo(BaseModel):
    studio: str
    key_id: str
    limits: StudioLimits
    usage: StudioUsage
