"""Launching SageMaker training jobs: one per candidate config, the plan first, the record after each.

:func:`plan_launch` builds every ``CreateTrainingJob`` request without calling AWS (what ``--dry-run``
prints, and what the cost guard checks); :func:`start_launch` checks the bucket, uploads the shot
once (:mod:`shotfit.cloud.shot_upload`) and creates the jobs, writing ``OUT/jobs.json`` after each,
so a launch that fails half way keeps the record of the jobs it started.

Time budget: ``minutes`` is each job's whole run time (``MaxRuntimeInSeconds``: SageMaker stops the
job there). Training gets the budget less a reserve of max(10 %, 3 min), passed as the ``minutes``
hyperparameter, for downloading the shot, starting up, the final validation, the export and the
upload of the model. Spot jobs may wait for capacity up to ``max_wait`` minutes in all (default twice
the budget); waiting is not billed.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from shotfit import __version__
from shotfit.cloud import contract
from shotfit.cloud.aws import Clients, CloudError, S3Location, aws_errors
from shotfit.cloud.candidates import Candidate, job_word
from shotfit.cloud.prices import CostEstimate, HourlyPrice
from shotfit.cloud.records import add_job, add_launch
from shotfit.cloud.shot_upload import (
    ShotContent,
    ShotInS3,
    ShotPaths,
    check_bucket,
    describe_size,
    shot_location,
    upload_shot,
)
from shotfit.errors import ConfigError

MIN_MINUTES = 5.0
CHECKPOINT_DIR = f"{contract.BASE_DIR}/checkpoints"
TENSORBOARD_DIR = f"{CHECKPOINT_DIR}/{contract.RUN_NAME}/tensorboard"
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ROLE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")
_REMOTE_TRACKING = re.compile(r"^(https?://|databricks(://|$)|arn:aws[a-z-]*:sagemaker:)")
_HYPERPARAMETER_CHARS = 2500


@dataclass(frozen=True)
class LaunchOptions:
    """Where and how the jobs run (the command line's options)."""

    image: str | None
    role: str | None
    s3: S3Location | None
    instance_type: str = "ml.g5.xlarge"
    spot: bool = True
    minutes: float = 60.0
    max_wait: float | None = None  # spot only: minutes to wait for capacity and run (default 2 x minutes)
    steps: int | None = None
    tracking_uri: str | None = None
    experiment: str = "shotfit"

    def check(self) -> None:
        """One line for the first thing AWS would refuse (or that would waste the job)."""
        for option, value, env in (("image", self.image, "SHOTFIT_IMAGE"), ("role", self.role,
                                    "SHOTFIT_SAGEMAKER_ROLE"), ("s3", self.s3, "SHOTFIT_S3")):
            if not value:
                raise ConfigError(f"{option} is missing (give it, or set ${env})", parameter=option)
        if any(c.isspace() for c in self.image) or "/" not in self.image:
            raise ConfigError(f"image {self.image!r} must be a container image URI, e.g. "
                              "123456789012.dkr.ecr.us-east-1.amazonaws.com/shotfit:0.1.0", parameter="image")
        if not _ROLE.match(self.role or ""):
            raise ConfigError(f"role {self.role!r} must be an IAM role ARN, e.g. "
                              "arn:aws:iam::123456789012:role/shotfit-sagemaker", parameter="role")
        if not (self.minutes >= MIN_MINUTES and math.isfinite(self.minutes)):
            raise ConfigError(f"minutes {self.minutes:g} is too short: a job needs at least {MIN_MINUTES:g} "
                              "(about 3 of them go to start-up, final validation and export)", parameter="minutes")
        if self.spot and self.max_wait is not None and self.max_wait < self.minutes:
            raise ConfigError(f"max_wait {self.max_wait:g} must be at least minutes {self.minutes:g} "
                              "(it counts the spot job's waiting and running time together)", parameter="max_wait")
        if self.tracking_uri and not _REMOTE_TRACKING.match(self.tracking_uri):
            raise ConfigError(f"tracking_uri {self.tracking_uri!r} is a store on this machine, which a cloud "
                              "job cannot reach: give an http(s) MLflow server or a SageMaker MLflow tracking "
                              "server ARN, or no tracking", parameter="tracking_uri")

    @property
    def training_minutes(self) -> float:
        return training_minutes(self.minutes)


def training_minutes(budget: float) -> float:
    """Minutes of training in a job of ``budget`` minutes: the budget less max(10 %, 3 min), to 0.1 min."""
    return math.floor((budget - max(0.1 * budget, 3.0)) * 10) / 10


def new_launch_id() -> str:
    """Six hex digits: short enough for job names, unique enough per account."""
    return secrets.token_hex(3)


def job_name(label: str, trial: str, launch_id: str) -> str:
    """``<label>-<trial>-<launch id>``, cut to SageMaker's 63 characters (the label gives way first)."""
    trial_part = job_word(trial)[:30].strip("-") or "job"
    suffix = f"-{trial_part}-{launch_id}"
    head = job_word(label)[: 63 - len(suffix)].strip("-") or "shotfit"
    name = f"{head}{suffix}"
    if not _JOB_NAME.match(name):  # job_word keeps only letters, digits and single hyphens
        raise ValueError(f"job name {name!r} is not valid for SageMaker")
    return name


@dataclass(frozen=True)
class PlannedJob:
    name: str
    candidate: Candidate
    hyperparameters: Mapping[str, str]
    request: Mapping[str, Any]  # the CreateTrainingJob parameters, exactly


@dataclass(frozen=True)
class LaunchPlan:
    launch_id: str
    label: str  # the sweep's name, or "shotfit" for config files
    options: LaunchOptions
    shot: ShotPaths
    content: ShotContent
    estimate: CostEstimate
    jobs: tuple[PlannedJob, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


def plan_launch(candidates: Sequence[Candidate], shot: ShotPaths, content: ShotContent, options: LaunchOptions,
                price: HourlyPrice, label: str = "shotfit", launch_id: str | None = None,
                notes: Sequence[str] = (), max_cost: float | None = None) -> LaunchPlan:
    """Every job's request, built and checked; nothing is sent to AWS. An estimate above ``max_cost``
    USD is refused (:meth:`CostEstimate.check`)."""
    options.check()
    launch_id = launch_id or new_launch_id()
    channels = shot_location(content, options.s3)
    jobs = []
    for candidate in candidates:
        name = job_name(label, candidate.name, launch_id)
        hyperparameters = _hyperparameters(candidate, options, shot)
        jobs.append(PlannedJob(name, candidate, hyperparameters,
                               _request(name, candidate, hyperparameters, channels, content, options, label,
                                        launch_id)))
    if len({job.name for job in jobs}) != len(jobs):
        raise ConfigError("two candidates would get the same job name; give the config files distinct names")
    estimate = CostEstimate(price, options.minutes, len(jobs), options.spot)
    estimate.check(max_cost)
    return LaunchPlan(launch_id, label, options, shot, content, estimate, tuple(jobs), tuple(notes))


def start_launch(plan: LaunchPlan, clients: Clients, out: Path, say: Callable[[str], None] = lambda line: None,
                 on_upload: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Upload the shot (unless it is in S3 already) and create the jobs; ``OUT/jobs.json`` records each.
    ``say`` gets a line per stage, ``on_upload(done, total)`` one per file uploaded.

    Raises:
        CloudError: one line naming the bucket or the job AWS refused, and how many jobs were started.
    """
    options = plan.options
    check_bucket(clients.s3, options.s3, clients.region)
    size = describe_size(len(plan.content.files), plan.content.bytes)
    say(f"uploading the shot ({size}) to {options.s3.uri('shots', plan.content.digest)}/ ...")
    in_s3 = upload_shot(clients.s3, plan.content, options.s3, on_upload)
    say("shot already in S3" if in_s3.already_there else
        f"uploaded {describe_size(in_s3.uploaded_files, in_s3.uploaded_bytes)}")
    add_launch(out, _launch_entry(plan, clients.region, in_s3))
    started: list[dict[str, Any]] = []
    for job in plan.jobs:
        try:
            with aws_errors(f"creating training job '{job.name}'"):
                response = clients.sagemaker.create_training_job(**job.request)
        except CloudError as err:
            kept = (f"; the {len(started)} job{'s' if len(started) != 1 else ''} started before it "
                    f"{'are' if len(started) != 1 else 'is'} recorded in {out / 'jobs.json'}") if started else \
                "; no job was started"
            raise CloudError(f"{err}{kept}") from None
        entry = _job_entry(job, plan, clients.region, response["TrainingJobArn"])
        add_job(out, entry)
        started.append(entry)
        say(f"started {job.name} ({job.candidate.origin})")
    return started


def request_summary(job: PlannedJob) -> dict[str, Any]:
    """The key fields of a job's request, for ``--dry-run`` and the record."""
    r = job.request
    summary = {
        "name": job.name, "trial": job.candidate.name, "from": job.candidate.origin,
        "hyperparameters": dict(r["HyperParameters"]),
        "instance": r["ResourceConfig"]["InstanceType"], "volume_gb": r["ResourceConfig"]["VolumeSizeInGB"],
        "spot": r["EnableManagedSpotTraining"], "max_runtime_s": r["StoppingCondition"]["MaxRuntimeInSeconds"],
        "image": r["AlgorithmSpecification"]["TrainingImage"], "role": r["RoleArn"],
        "channels": {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in r["InputDataConfig"]},
        "output": r["OutputDataConfig"]["S3OutputPath"], "checkpoints": r["CheckpointConfig"]["S3Uri"],
        "tensorboard": r["TensorBoardOutputConfig"]["S3OutputPath"],
        "environment": dict(r.get("Environment", {})),
    }
    if "MaxWaitTimeInSeconds" in r["StoppingCondition"]:
        summary["max_wait_s"] = r["StoppingCondition"]["MaxWaitTimeInSeconds"]
    return summary


# --- requests ------------------------------------------------------------------------------------

def _hyperparameters(candidate: Candidate, options: LaunchOptions, shot: ShotPaths) -> dict[str, str]:
    steps = options.steps if options.steps is not None else candidate.steps
    job_options = {"minutes": options.training_minutes, "steps": steps,
                   "mask": "alpha" if shot.masks == "alpha" else None}
    hyperparameters = {**candidate.hyperparameters(), **contract.to_hyperparameters({}, job_options)}
    for key, value in hyperparameters.items():
        if len(value) > _HYPERPARAMETER_CHARS:
            raise ConfigError(f"{candidate.origin}: {key} is {len(value)} characters long; a training job's "
                              f"hyperparameters hold at most {_HYPERPARAMETER_CHARS}")
    contract.job_settings(hyperparameters, where=candidate.origin)  # what the container will do with them
    return hyperparameters


def _request(name: str, candidate: Candidate, hyperparameters: Mapping[str, str], channels: Mapping[str, str],
             content: ShotContent, options: LaunchOptions, label: str, launch_id: str) -> dict[str, Any]:
    runtime = int(round(options.minutes * 60))
    stopping = {"MaxRuntimeInSeconds": runtime}
    if options.spot:
        stopping["MaxWaitTimeInSeconds"] = int(round((options.max_wait or 2 * options.minutes) * 60))
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": options.image, "TrainingInputMode": "File",
                                   "MetricDefinitions": contract.metric_definitions(),
                                   "EnableSageMakerMetricsTimeSeries": True},
        "RoleArn": options.role,
        "InputDataConfig": [
            {"ChannelName": channel, "InputMode": "File",
             "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri,
                                             "S3DataDistributionType": "FullyReplicated"}}}
            for channel, uri in channels.items()],
        # SageMaker writes <this>/<job name>/output/model.tar.gz
        "OutputDataConfig": {"S3OutputPath": options.s3.uri("jobs", folder=True)},
        "ResourceConfig": {"InstanceType": options.instance_type, "InstanceCount": 1,
                           "VolumeSizeInGB": _volume_gb(content.bytes)},
        "StoppingCondition": stopping,
        "HyperParameters": dict(hyperparameters),
        "EnableManagedSpotTraining": options.spot,
        "CheckpointConfig": {"S3Uri": options.s3.uri("checkpoints", name, folder=True), "LocalPath": CHECKPOINT_DIR},
        "TensorBoardOutputConfig": {"LocalPath": TENSORBOARD_DIR,
                                    "S3OutputPath": options.s3.uri("tensorboard", name, folder=True)},
        "Tags": [{"Key": "shotfit:launch", "Value": launch_id}, {"Key": "shotfit:trial", "Value": candidate.name},
                 {"Key": "shotfit:sweep", "Value": label}, {"Key": "shotfit:version", "Value": __version__}],
    }
    if options.tracking_uri:
        request["Environment"] = {"MLFLOW_TRACKING_URI": options.tracking_uri,
                                  "MLFLOW_EXPERIMENT_NAME": options.experiment}
    return request


def _volume_gb(shot_bytes: int) -> int:
    """The job's disk: the shot (File mode copies it), checkpoints and the model, with room to spare."""
    return max(30, math.ceil(2 * shot_bytes / 1e9) + 20)


# --- the record ----------------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _launch_entry(plan: LaunchPlan, region: str, in_s3: ShotInS3) -> dict[str, Any]:
    return {"id": plan.launch_id, "label": plan.label, "time": _now(), "region": region,
            "shot": {"digest": in_s3.digest, "given": dict(plan.content.described), "channels": dict(in_s3.channels)},
            "estimate_usd": plan.estimate.total, "hourly_usd": plan.estimate.price.usd,
            "price_source": plan.estimate.price.source, "notes": list(plan.notes)}


def _job_entry(job: PlannedJob, plan: LaunchPlan, region: str, arn: str) -> dict[str, Any]:
    return {**request_summary(job), "arn": arn, "launch": plan.launch_id, "region": region,
            "hourly_usd": plan.estimate.price.usd, "launched_at": _now()}


# --- stopping ------------------------------------------------------------------------------------

def stop_jobs(jobs: Sequence[Mapping[str, Any]], clients: Callable[[str], Clients]) -> list[tuple[str, str]]:
    """Ask SageMaker to stop every job of ``jobs`` still in progress; (name, what happened) for each.

    SageMaker sends the container SIGTERM: a job that is training saves the weights of its current
    step, which SageMaker uploads and ``fetch`` brings home; a job still starting leaves none.
    """
    outcomes = []
    for job in jobs:
        name, sagemaker = job["name"], clients(job["region"]).sagemaker
        with aws_errors(f"reading training job '{name}'"):
            status = sagemaker.describe_training_job(TrainingJobName=name)["TrainingJobStatus"]
        if status != "InProgress":
            outcomes.append((name, f"already {status.lower()}"))
            continue
        with aws_errors(f"stopping training job '{name}'"):
            sagemaker.stop_training_job(TrainingJobName=name)
        outcomes.append((name, "stopping"))
    return outcomes
