"""Where each launched job stands: SageMaker's state, time and cost so far, and its latest numbers.

The numbers come from the job's own log (CloudWatch Logs group ``/aws/sagemaker/TrainingJobs``,
stream ``<job>/algo-1-<epoch>``; a spot job that restarts gets a new stream): the newest
``shotfit-metrics:`` lines (:func:`shotfit.cloud.contract.parse_metric_line`), each metric at its
newest value. Without log access they come from the job's ``FinalMetricDataList`` (what
SageMaker's metric regexes caught).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from shotfit.cloud.aws import Clients, aws_errors, cloud_error, not_found
from shotfit.cloud.contract import parse_metric_line

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
DONE = ("Completed", "Failed", "Stopped")
_LOG_EVENTS = 1000  # the newest lines read per poll: a few hundred metric windows


@dataclass(frozen=True)
class JobState:
    """One job as ``shotfit cloud status`` shows it."""

    name: str
    trial: str
    status: str  # InProgress, Completed, Failed, Stopping, Stopped
    secondary: str  # Starting, Downloading, Training, Interrupted, Restarting, Uploading, Completed, ...
    elapsed_s: float | None = None  # training time so far (from TrainingStartTime), else since creation
    billable_s: float | None = None  # known once the job ends; spot bills less than it ran
    hourly_usd: float | None = None
    step: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_from: str = ""  # "log", "final metrics" or ""
    failure: str | None = None
    message: str | None = None  # SageMaker's latest status message ("Preparing the instances for training")
    note: str | None = None  # why the log could not be read (the numbers then come from SageMaker)

    @property
    def done(self) -> bool:
        return self.status in DONE

    @property
    def state(self) -> str:
        """``Training``, ``Interrupted`` (spot), ``Completed``, ``Failed`` ... in one word or two."""
        if self.status == "InProgress" or self.secondary in ("", self.status):
            return self.secondary or self.status
        return f"{self.status} ({self.secondary})"

    @property
    def cost_usd(self) -> float | None:
        """Billed so far: billable seconds (spot: after its saving) at the on-demand hourly price."""
        if self.billable_s is None or self.hourly_usd is None:
            return None
        return self.billable_s * self.hourly_usd / 3600.0


class Regions:
    """One set of clients per region the recorded jobs ran in."""

    def __init__(self, make: Callable[[str], Clients] = Clients) -> None:
        self._make = make
        self._clients: dict[str, Clients] = {}

    def __call__(self, region: str) -> Clients:
        if region not in self._clients:
            self._clients[region] = self._make(region)
        return self._clients[region]


def job_states(jobs: Sequence[Mapping[str, Any]], clients: Callable[[str], Clients],
               now: datetime | None = None) -> list[JobState]:
    """The state of every recorded job (``jobs.json`` entries)."""
    return [job_state(clients(job["region"]), job, now) for job in jobs]


def watch(jobs: Sequence[Mapping[str, Any]], clients: Callable[[str], Clients],
          show: Callable[[list[JobState]], None], every: float | None = None) -> list[JobState]:
    """Show every job's state; with ``every`` (seconds), again and again until all have ended."""
    while True:
        states = job_states(jobs, clients)
        show(states)
        if every is None or all(s.done for s in states):
            return states
        time.sleep(every)


def job_state(clients: Clients, job: Mapping[str, Any], now: datetime | None = None) -> JobState:
    """Describe one job and read its newest metric lines."""
    name = job["name"]
    with aws_errors(f"reading training job '{name}'"):
        described = clients.sagemaker.describe_training_job(TrainingJobName=name)
    now = now or datetime.now(timezone.utc)
    status = described.get("TrainingJobStatus", "")
    transitions = described.get("SecondaryStatusTransitions") or []
    found, note = latest_metrics(clients.logs, name)
    source = "log"
    if found is None:
        found, source = final_metrics(described), "final metrics"
    step, metrics = found if found is not None else (None, {})
    return JobState(
        name=name, trial=str(job.get("trial", "")), status=status, secondary=described.get("SecondaryStatus", ""),
        elapsed_s=_elapsed(described, now), billable_s=_number(described.get("BillableTimeInSeconds")),
        hourly_usd=_number(job.get("hourly_usd")), step=step, metrics=metrics,
        metrics_from=source if found is not None else "", failure=described.get("FailureReason"),
        message=transitions[-1].get("StatusMessage") if transitions else None, note=note)


def latest_metrics(logs: Any, job_name: str) -> tuple[tuple[int, dict[str, float]] | None, str | None]:
    """((newest step, each metric's newest value), None) from the job's log; (None, None) when it has
    no metric line yet (or no log yet), (None, why) when the log cannot be read (no permission)."""
    try:
        streams = []
        for page in logs.get_paginator("describe_log_streams").paginate(
                logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/"):
            streams.extend(page.get("logStreams", ()))
        if not streams:
            return None, None
        newest = max(streams, key=lambda s: (s.get("lastEventTimestamp") or 0, s["logStreamName"]))
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=newest["logStreamName"],
                                     startFromHead=False, limit=_LOG_EVENTS)["events"]
    except Exception as err:
        if not_found(err):
            return None, None
        problem = cloud_error(err, f"reading the log of '{job_name}'")
        if problem is err:
            raise
        return None, str(problem)
    step: int | None = None
    metrics: dict[str, float] = {}
    for event in reversed(events):
        parsed = parse_metric_line(event.get("message", ""))
        if parsed is None:
            continue
        if step is None:
            step = parsed[0]
        for key, value in parsed[1].items():
            metrics.setdefault(key, value)
    return (None if step is None else (step, metrics)), None


def final_metrics(described: Mapping[str, Any]) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) from what SageMaker's metric definitions caught, if it caught a step."""
    metrics = {m["MetricName"]: float(m["Value"]) for m in described.get("FinalMetricDataList") or ()
               if "MetricName" in m and "Value" in m}
    step = metrics.pop("step", None)
    return None if step is None else (int(step), metrics)


def _elapsed(described: Mapping[str, Any], now: datetime) -> float | None:
    if described.get("TrainingTimeInSeconds") is not None and described.get("TrainingJobStatus") in DONE:
        return float(described["TrainingTimeInSeconds"])
    start = described.get("TrainingStartTime") or described.get("CreationTime")
    if not isinstance(start, datetime):
        return None
    end = described.get("TrainingEndTime") if described.get("TrainingJobStatus") in DONE else None
    end = end if isinstance(end, datetime) else now
    return max(0.0, (end - start).total_seconds())


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
