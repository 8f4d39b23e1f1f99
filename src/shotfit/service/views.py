"""Store rows as the bodies routes, event streams and webhooks send."""

from __future__ import annotations

from shotfit.service import schemas
from shotfit.service.store import Job


def job_body(job: Job) -> schemas.Job:
    progress = {k: v for k, v in (job.progress or {}).items() if k in schemas.Progress.model_fields}
    return schemas.Job(id=job.id, kind=job.kind, shot_id=job.shot_id, run_id=job.run_id,  # type: ignore[arg-type]
                       state=job.state, progress=schemas.Progress(**progress),  # type: ignore[arg-type]
                       mlflow_run_id=job.mlflow_run_id, error=job.error, attempt=job.attempt, created=job.created,
                       started=job.started, finished=job.finished)
