"""What a service is configured with: where its store and files live, its limits, and how it runs jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

GiB = 2**30


@dataclass(frozen=True)
class Limits:
    """Defaults for every studio and key (a studio's or key's own row may set others).

    Args:
        max_file_bytes: Largest single uploaded file.
        max_files: Files per shot and role.
        max_storage_bytes: All of a studio's uploaded files together.
        max_concurrent_jobs: A key's queued and running jobs together.
        requests_per_minute: A key's requests (0: unlimited).
        max_pixels: Largest frame (width x height) an upload may decode to.
    """

    max_file_bytes: int = 2 * GiB
    max_files: int = 10_000
    max_storage_bytes: int = 500 * GiB
    max_concurrent_jobs: int = 4
    requests_per_minute: int = 6000
    max_pixels: int = 8192 * 8192


@dataclass(frozen=True)
class ServiceSettings:
    """How one server runs.

    Args:
        storage: The folder that holds every studio's files (``studios/ID/...``) and, by default, the store.
            With ``files`` set it holds what must be local: uploads in flight and jobs' scratch copies.
        files: An fsspec URL that holds every studio's files instead of ``storage`` (``s3://bucket/prefix``;
            credentials and endpoint from the usual environment, ``AWS_*`` for S3); None: the storage folder.
        db: The store's URL: ``sqlite:///PATH`` (default: ``STORAGE/shotfit.db``) or ``postgresql://...``.
        ray_address: A Ray cluster to run jobs on (``ray://host:10001``, ``auto``); None starts Ray locally.
        workers: Jobs this server runs at once (0: only the API; another server's dispatcher runs them).
        cpus_per_job: CPUs each job asks Ray for (and torch's threads in it).
        gpus_per_job: GPUs each job asks Ray for.
        heartbeat_s: How often a running job tells the store it is alive.
        stale_s: A running job silent for this long is taken as lost and queued again (resumes).
        poll_s: How often the dispatcher looks for queued jobs.
        server: This server's name in the store (default: host and process id; ``shotfit serve`` uses host:port,
            so a restarted server knows the jobs it had claimed and queues them again at once).
        retention_days: Delete uploads and results this many days old (a studio's own setting wins); None: keep.
        tracking_uri: MLflow tracking store for every training job (None: ``sqlite:///STORAGE/mlflow.db``, made
            once, so a job does not wait seconds for a new store; artifacts in ``STORAGE/mlartifacts``).
        limits: Per-studio and per-key limits.
    """

    storage: Path
    files: str | None = None
    db: str | None = None
    ray_address: str | None = None
    workers: int = 1
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0
    heartbeat_s: float = 2.0
    stale_s: float = 30.0
    poll_s: float = 0.5
    tracking_uri: str | None = None
    retention_days: float | None = None
    server: str | None = None
    limits: Limits = field(default_factory=Limits)

    @property
    def tracking_store(self) -> str:
        return self.tracking_uri or f"sqlite:///{Path(self.storage).resolve() / 'mlflow.db'}"

    @property
    def db_url(self) -> str:
        return self.db or f"sqlite:///{Path(self.storage).resolve() / 'shotfit.db'}"
