"""The job store: studios, keys, shots, files, uploads, jobs (and the frames and chunks of their renders),
idempotency keys and webhooks in SQLite (default) or PostgreSQL, through SQLAlchemy, with Alembic migrations
shipped in the package."""

from shotfit.service.store.db import Store, open_store
from shotfit.service.store.models import (
    ApiKey,
    Base,
    Delivery,
    IdempotencyKey,
    Job,
    JobChunk,
    JobFrame,
    RateCount,
    Shot,
    ShotFile,
    Studio,
    Upload,
    UploadPiece,
    Webhook,
)

__all__ = ["ApiKey", "Base", "Delivery", "IdempotencyKey", "Job", "JobChunk", "JobFrame", "RateCount", "Shot",
           "ShotFile", "Store", "Studio", "Upload", "UploadPiece", "Webhook", "open_store"]
