"""``OUT/jobs.json``: every launch and every job started into a folder, rewritten atomically after each.

::

    {"launches": [{"id": "3fa9c2", "label": "loss-ablation", "time": "...", "region": "us-east-1",
                   "shot": {"digest": ..., "channels": {...}}, "estimate_usd": 7.04, ...}],
     "jobs": [{"name": "loss-ablation-trial-003-3fa9c2", "arn": ..., "trial": "trial-003",
               "hyperparameters": {...}, "instance": "ml.g5.xlarge", "spot": true, "region": ...,
               "channels": {...}, "output": ..., "checkpoints": ..., "launched_at": ...}, ...]}

``status`` and ``fetch`` read it (the job names and their regions); a second launch into the same
folder adds to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shotfit.errors import ConfigError, quoted
from shotfit.files import write_text_atomic

RECORD = "jobs.json"


def read_record(out: str | Path, required: bool = False) -> dict[str, Any]:
    """The record in ``out`` (empty when there is none yet, unless ``required``).

    Raises:
        ConfigError: the file is unreadable or not a record; or, if ``required``, absent.
    """
    path = Path(out) / RECORD
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise ConfigError(f"no launch recorded in {quoted(Path(out))} (no {RECORD}): give the folder "
                              "a launch wrote its record in") from None
        return {"launches": [], "jobs": []}
    except (OSError, ValueError) as err:
        raise ConfigError(f"{quoted(path)} cannot be read ({getattr(err, 'strerror', None) or err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ConfigError(f"{quoted(path)} is not a shotfit launch record (no 'jobs' list)")
    data.setdefault("launches", [])
    return data


def add_launch(out: str | Path, entry: dict[str, Any]) -> None:
    record = read_record(out)
    record["launches"].append(entry)
    _write(out, record)


def add_job(out: str | Path, entry: dict[str, Any]) -> None:
    record = read_record(out)
    record["jobs"].append(entry)
    _write(out, record)


def recorded_jobs(out: str | Path, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The jobs recorded in ``out`` (those named, in the order given; else all, in launch order).

    Raises:
        ConfigError: no record, or a name it does not hold.
    """
    jobs = read_record(out, required=True)["jobs"]
    if not names:
        if not jobs:
            raise ConfigError(f"{quoted(Path(out) / RECORD)} holds no job yet")
        return jobs
    by_name = {job["name"]: job for job in jobs}
    for name in names:
        if name not in by_name:
            raise ConfigError(f"job '{name}' is not in {quoted(Path(out) / RECORD)} (it holds "
                              f"{', '.join(by_name) or 'no job'})")
    return [by_name[name] for name in names]


def _write(out: str | Path, record: dict[str, Any]) -> None:
    write_text_atomic(Path(out) / RECORD, json.dumps(record, indent=1, default=str) + "\n")
