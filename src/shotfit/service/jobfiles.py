"""A job's files on a worker: the folders it reads and writes, fetched from the studios' store before it runs
and put back as it goes (:class:`~shotfit.service.storage.Mirror`). Nothing to fetch or put when the files
are in the local storage folder. Shared by a job's task and a render job's chunk tasks."""

from __future__ import annotations

from pathlib import Path

from shotfit.errors import ShotfitError
from shotfit.service import jobwork
from shotfit.service.assignment import Assignment
from shotfit.service.storage import Mirror, StudioStorage


def job_folders(assignment: Assignment, studio_id: str, kind: str, shot_id: str, run_id: str | None
                ) -> jobwork.JobFolders:
    """Where a job reads and writes (its run: its own for training, the train job's for render and export)."""
    storage = StudioStorage(Path(assignment.storage), studio_id, assignment.files)
    work = storage.job(assignment.job_id)
    return jobwork.JobFolders(
        source=storage.shot_role(shot_id, "source"), keyframes=storage.shot_role(shot_id, "keyframes"),
        truth=storage.shot_role(shot_id, "truth"), work=work,
        run=work / "run" if kind == "train" else storage.job(run_id) / "run" if run_id else None)


def stage(assignment: Assignment, studio_id: str, folders: jobwork.JobFolders, fresh: bool = True) -> Mirror:
    """Fetch a job's inputs and its own folder from the store (nothing to do when the files are local); the
    mirror of its own folder, which puts back what the job writes. ``fresh``: the job's folder as the store
    holds it (an attempt's start), not a copy an earlier attempt on this machine left; a render chunk keeps
    what the chunks beside it write."""
    storage = StudioStorage(Path(assignment.storage), studio_id, assignment.files)
    work = storage.mirror(folders.work)
    try:
        for folder in (folders.source, folders.keyframes, folders.truth):
            storage.mirror(folder).pull()
        if folders.run is not None and not folders.run.is_relative_to(folders.work):
            storage.mirror(folders.run).pull()  # the train job's run: read only, never put back from here
        work.pull(fresh=fresh)
    except Exception as err:  # any backend's error (network, credentials): the job fails in one line
        raise ShotfitError(f"the job's files could not be fetched from the storage ({_first_line(err)})") from None
    return work


def put_back(mirror: Mirror, only: Path | None = None) -> None:
    """Put what the job wrote (or the one file ``only``) in the store; a failure fails the job in one line."""
    try:
        mirror.push(only)
    except Exception as err:  # any backend's error: the result is not safe, so the job is not done
        raise ShotfitError(f"the job's results could not be put in the storage ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
