"""Training on AWS SageMaker from the API: launch the best configs of a sweep (or config files) side by
side, watch them, stop them, fetch their run folders.

A launch carries typed objects (each candidate's :class:`~shotfit.config.Config` and the keys given for
it) up to the SageMaker request, where they become hyperparameters (strings, by SageMaker's contract).
Needs the aws extra (boto3) for everything but a dry run.

Example:
    >>> from shotfit import api
    >>> request = api.LaunchRequest(sweep="sweeps/loss", top=3, image="...", role="arn:aws:iam::...",
    ...                             s3="s3://bucket/shotfit", minutes=60, max_cost=20)  # doctest: +SKIP
    >>> result = api.launch(request, say=print)  # doctest: +SKIP
    >>> api.status(api.JobsRequest(result.out))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.cloud.aws import Clients, S3Location
from shotfit.cloud.candidates import choose
from shotfit.cloud.fetch import Fetched, fetch_jobs
from shotfit.cloud.jobs import LaunchOptions, LaunchPlan, plan_launch, request_summary, start_launch, stop_jobs
from shotfit.cloud.prices import CostEstimate, hourly_price
from shotfit.cloud.records import recorded_jobs
from shotfit.cloud.shot_upload import ShotPaths, describe_size, read_shot
from shotfit.cloud.status import JobState, Regions, watch
from shotfit.errors import ConfigError
from shotfit.files import guard_output

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (files done, files in all)


@dataclass(frozen=True)
class LaunchRequest:
    """One launch: what to train (a sweep's best trials or config files), on which shot, where and how.

    Args:
        sweep: A sweep folder: launch its ``top`` best finished trials. Give this or ``configs``.
        configs: Config files, one job each.
        source, keyframes: The shot (default: the sweep's); given together.
        masks: Per-keyframe mattes, or ``"alpha"``.
        hold_out: Keep the sweep's held-out keyframes out of training (``val/*`` curves), or train on all.
        overrides: ``section.key=value`` set in every job.
        image, role, s3: The training image in ECR, the IAM role ARN, ``s3://bucket/prefix``.
        minutes: Each job's time budget, start to finish; training gets it less max(10 %, 3 min).
        max_wait: Spot: minutes a job may wait for capacity and run, in all (None: twice ``minutes``).
        steps: Stop at this step if the budget lasts (None: a config file's ``train.steps``, else none).
        max_cost: Start nothing if the estimate is above this many USD.
        hourly_price: USD per instance-hour (None: the built-in table).
        tracking_uri: An MLflow server the jobs log to (None: no tracking).
        region: The AWS region (None: the AWS configuration's).
        dry_run: Plan and check everything; upload and start nothing.
        out: The launch folder (``jobs.json``, the fetched run folders).
    """

    sweep: Path | None = None
    top: int = 5
    configs: tuple[Path, ...] = ()
    source: str | None = None
    keyframes: str | None = None
    masks: str | None = None
    hold_out: bool = True
    overrides: tuple[str, ...] = ()
    image: str | None = None
    role: str | None = None
    s3: str | None = None
    instance_type: str = "ml.g5.xlarge"
    spot: bool = True
    minutes: float = 60.0
    max_wait: float | None = None
    steps: int | None = None
    max_cost: float | None = None
    hourly_price: float | None = None
    tracking_uri: str | None = None
    experiment: str = "shotfit"
    region: str | None = None
    dry_run: bool = False
    out: Path = Path("cloud")


@dataclass(frozen=True)
class LaunchResult:
    """The plan (every job's request) and, unless a dry run, the record of each job started."""

    plan: LaunchPlan
    out: Path
    started: tuple[Mapping[str, Any], ...] = ()
    dry_run: bool = False

    def summaries(self) -> list[dict[str, Any]]:
        """The key fields of every job's request (what a dry run shows)."""
        return [request_summary(job) for job in self.plan.jobs]


@dataclass(frozen=True)
class JobsRequest:
    """Jobs recorded in a launch folder: ``names``, or every one of them."""

    out: Path = Path("cloud")
    names: tuple[str, ...] = ()


def launch(request: LaunchRequest, say: Callable[[str], None] | None = None, on_hash: Progress | None = None,
           on_upload: Progress | None = None) -> LaunchResult:
    """Plan one SageMaker training job per candidate config, check the cost, upload the shot once and
    start the jobs (``request.out/jobs.json`` records each as it starts).

    Args:
        request: What to train, where and how.
        say: Called with a line at each stage (the plan, the estimate, the shot, each job started).
        on_hash, on_upload: Called with (files done, files in all) while the shot is hashed and uploaded.

    Raises:
        ShotfitError: a refused option, an estimate above ``max_cost``, a shot that cannot be read, or
            a request AWS refused (naming how many jobs were started before it).
    """
    tell = say or log.info
    if (request.source is None) != (request.keyframes is None):
        raise ConfigError("source and keyframes go together (the shot and its edited keyframes)")
    shot = ShotPaths(request.source, request.keyframes, request.masks) \
        if request.source is not None and request.keyframes is not None else None
    choice = choose(request.sweep, request.top, request.configs, shot, request.masks, request.hold_out,
                    request.overrides)
    inputs = [(what, path) for what, path in (("source", choice.shot.source), ("keyframes", choice.shot.keyframes),
                                              ("masks", choice.shot.masks)) if path and path != "alpha"]
    guard_output(request.out, "launch", protected=inputs, parameter="out")  # before anything is read or started
    options = LaunchOptions(image=request.image, role=request.role,
                            s3=S3Location.parse(request.s3) if request.s3 else None,
                            instance_type=request.instance_type, spot=request.spot, minutes=request.minutes,
                            max_wait=request.max_wait, steps=request.steps,
                            tracking_uri=request.tracking_uri or None, experiment=request.experiment)
    options.check()
    count = len(choice.candidates)
    estimate = CostEstimate(hourly_price(request.instance_type, request.hourly_price), request.minutes, count,
                            request.spot)
    for note in choice.notes:
        tell(note)
    tell(f"{count} job{'s' if count != 1 else ''} from {choice.described} on {request.instance_type} "
         f"({'spot' if request.spot else 'on-demand'}), {request.minutes:g} min each "
         f"({options.training_minutes:g} min of training)")
    tell(estimate.describe())
    estimate.check(request.max_cost)  # before the shot is even read
    clients = None if request.dry_run else Clients(request.region)  # says now if boto3 or a region is missing
    content = read_shot(choice.shot, on_hash)
    tell(f"shot: {describe_size(len(content.files), content.bytes)} ({', '.join(content.channels)}), "
         f"digest {content.digest}")
    plan = plan_launch(choice.candidates, choice.shot, content, options, estimate.price, choice.label,
                       notes=choice.notes, max_cost=request.max_cost)
    for job in plan.jobs:
        settings = " ".join(f"{k}={v}" for k, v in job.hyperparameters.items())
        tell(f"  {job.name}  {job.candidate.origin}  {settings}")
    if clients is None:
        return LaunchResult(plan, request.out, dry_run=True)
    started = start_launch(plan, clients, request.out, say=tell, on_upload=on_upload)
    return LaunchResult(plan, request.out, tuple(started))


def status(request: JobsRequest, show: Callable[[list[JobState]], None] | None = None,
           every: float | None = None) -> list[JobState]:
    """Each job's state, times, cost so far and newest numbers (from its log); with ``every`` (seconds),
    ``show`` gets them again and again until every job has ended."""
    return watch(recorded_jobs(request.out, request.names), Regions(), show or (lambda states: None), every)


def stop(request: JobsRequest, every_job: bool = False) -> list[tuple[str, str]]:
    """Stop the named jobs (``every_job``: all of the launch folder's that still run); (name, what
    happened) for each. A job stopped while training keeps its current step's weights for :func:`fetch`."""
    if not request.names and not every_job:
        raise ConfigError("name the jobs to stop, or stop every job")
    return stop_jobs(recorded_jobs(request.out, request.names), Regions())


def fetch(request: JobsRequest, on_job: Callable[[Fetched], None] | None = None) -> list[Fetched]:
    """Download the completed jobs' models as run folders ``out/JOB`` (ready to render); the others are
    reported, not fetched."""
    return fetch_jobs(recorded_jobs(request.out, request.names), request.out, Regions(), on_job=on_job)
