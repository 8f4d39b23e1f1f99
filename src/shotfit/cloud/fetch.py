"""Bringing finished jobs home: each model.tar.gz becomes ``OUT/<job name>/``, a run folder ``shotfit
render --run`` accepts.

The archive is downloaded and unpacked into a hidden temporary folder inside ``OUT`` (tarfile's
``data`` filter: no absolute paths, no ``..``, no links out, no devices), its ``run/`` folder checked
(``config.yaml`` and ``model.pt``), then renamed into place in one step: an interrupted fetch
leaves nothing half-written, and a job already fetched is not downloaded again.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.cloud.aws import Clients, CloudError, aws_errors, cloud_error, not_found, split_s3_uri
from shotfit.cloud.contract import RUN_NAME
from shotfit.errors import RunError, ShotfitError, quoted
from shotfit.files import ensure_writable_folder

ARCHIVE = "model.tar.gz"


@dataclass(frozen=True)
class Fetched:
    """What happened to one job: ``fetched``, ``already fetched``, ``not finished``, ``failed``, ``stopped``,
    or ``error`` (it completed but could not be fetched; ``detail`` says why)."""

    name: str
    outcome: str
    folder: Path | None = None
    detail: str = ""
    stopped_early: bool = False  # fetched from a job stopped while training: its last step's weights

    @property
    def ok(self) -> bool:
        return self.outcome in ("fetched", "already fetched", "not finished")


def fetch_jobs(jobs: Sequence[Mapping[str, Any]], out: Path, clients: Callable[[str], Clients],
               on_job: Callable[[Fetched], None] | None = None) -> list[Fetched]:
    """Fetch every Completed job of ``jobs`` into ``out``; the others are reported, not fetched. A job that
    cannot be fetched (AWS refused, a damaged archive) is reported as ``error`` and the rest go on."""
    results = []
    for job in jobs:
        region_clients = clients(job["region"])  # no boto3, no region: one error for all, raised here
        try:
            result = fetch_job(region_clients, job["name"], Path(out))
        except ShotfitError as err:
            result = Fetched(job["name"], "error", None, str(err))
        results.append(result)
        if on_job is not None:
            on_job(result)
    return results


def fetch_job(clients: Clients, name: str, out: Path) -> Fetched:
    """One job: download and unpack its model if it completed and is not here yet.

    Raises:
        CloudError: AWS refused (one line naming the job or the archive).
        RunError: the archive is damaged, unsafe, or holds no run folder.
    """
    folder = out / name
    if _is_run(folder):
        return Fetched(name, "already fetched", folder)
    if folder.exists():
        raise RunError(f"{quoted(folder)} exists but is not a run folder (no config.yaml and model.pt): move it "
                       f"away to fetch job '{name}'")
    with aws_errors(f"reading training job '{name}'"):
        described = clients.sagemaker.describe_training_job(TrainingJobName=name)
    status = described.get("TrainingJobStatus", "")
    if status == "Failed":
        return Fetched(name, "failed", None, described.get("FailureReason") or "no reason given")
    if status not in ("Completed", "Stopped"):
        return Fetched(name, "not finished", None, described.get("SecondaryStatus") or status)
    artifacts = (described.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if status == "Stopped":
        # a job stopped while training leaves the weights of its last step (the container saves them on
        # SIGTERM); one stopped before its first checkpoint, or while waiting for spot capacity, none
        reason = described.get("FailureReason") or f"stopped ({described.get('SecondaryStatus', 'Stopped')})"
        try:
            if not artifacts:
                raise RunError("no model artifacts")
            download_run(clients.s3, artifacts, folder)
        except (CloudError, RunError):
            return Fetched(name, "stopped", None, reason)
        return Fetched(name, "fetched", folder, f"{reason}: the weights of its last step", stopped_early=True)
    if not artifacts:
        raise CloudError(f"job '{name}' completed but SageMaker names no model artifacts")
    download_run(clients.s3, artifacts, folder)
    return Fetched(name, "fetched", folder, artifacts)


def download_run(s3: Any, uri: str, folder: Path) -> None:
    """Download ``uri`` (a model.tar.gz) and unpack its run folder as ``folder``, atomically."""
    bucket, key = split_s3_uri(uri)
    parent = ensure_writable_folder(folder.parent)
    work = parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)  # left by an earlier fetch of ours that was killed
    work.mkdir()
    try:
        archive = work / ARCHIVE
        try:
            s3.download_file(bucket, key, str(archive))
        except Exception as err:
            if not_found(err):
                raise CloudError(f"{uri} is not there (the job's model was deleted or moved)") from None
            raise cloud_error(err, f"downloading {uri}") from None
        run = extract_run(archive, work / "unpacked", uri)
        os.replace(run, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def extract_run(archive: Path, into: Path, label: str) -> Path:
    """Unpack ``archive`` safely into ``into``; returns its run folder (``run/``, else the top level).

    Raises:
        RunError: the archive is damaged or unsafe, or holds no config.yaml and model.pt.
    """
    try:
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python < 3.10.12 / 3.11.4: refuse what the data filter would
                for member in tar.getmembers():
                    _check_member(member, label)
                tar.extractall(into)  # noqa: S202 (checked above)
    except (tarfile.TarError, EOFError, OSError) as err:
        raise RunError(f"{label} cannot be unpacked safely ({err})") from None
    for run in (into / RUN_NAME, into):
        if _is_run(run):
            return run
    raise RunError(f"{label} holds no run folder ({RUN_NAME}/config.yaml and {RUN_NAME}/model.pt): the job "
                   "did not finish writing its model")


def _is_run(folder: Path) -> bool:
    return (folder / "config.yaml").is_file() and (folder / "model.pt").is_file()


def _check_member(member: tarfile.TarInfo, label: str) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or not (member.isfile() or member.isdir()):
        raise tarfile.TarError(f"unsafe member {name!r} in {label}")
