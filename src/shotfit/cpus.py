"""The cores this process may use and how its OpenMP threads wait: what an entry point sets up.

PyTorch's CPU kernels run on an OpenMP pool. By default the pool has one thread per core the
machine has and a waiting thread *spins* (GNU libgomp: about 300 000 iterations, a few
milliseconds) before it sleeps. On a quiet machine that saves a wake-up per parallel region; on a
busy one (a render farm node, an artist's workstation) a thread that shares its core with another
process is descheduled for a whole time slice while its siblings spin at the end of every region,
and a training step became about 8x slower on a 2-core machine with one other busy process
(docs/performance.md). Two things guard against it:

- **threads** from the cores the process may actually use: its CPU affinity (``taskset``, a
  cpuset) and its cgroup's CPU quota (a container's ``--cpus``), never the machine's core count;
- **a passive wait policy**: ``OMP_WAIT_POLICY=PASSIVE`` makes a waiting thread sleep at once.
  The OpenMP runtime reads it once, when it starts (as PyTorch is imported), so only an entry point
  that runs before that import can set it, and only when the user has set none of the runtime's own
  wait variables (:data:`WAIT_VARIABLES`).

Everything here reads the machine and returns values; nothing changes the process. The entry points
(``shotfit``'s ``main``, the SageMaker job, a sweep's Ray workers) apply them.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

# The variables by which a user (or a farm's wrapper) chooses how OpenMP threads wait: the standard one,
# GNU libgomp's spin count, and Intel/LLVM libomp's block time. Any of them set: shotfit sets none.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
# What shotfit sets when none of them is (bench/speed_contention.py measures it against the runtime's default).
DEFAULT_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def affinity_cores() -> int:
    """Cores in this process's CPU affinity (which a cpuset or ``taskset`` narrows); all cores where the
    platform has no affinity (macOS, Windows)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def quota_cores(cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = PROC_SELF_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (``1.5`` for 150 ms per 100 ms), or None when
    there is none.

    Reads cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), for the
    process's own cgroup and each one above it (the tightest wins), both where the cgroup path of
    ``self_cgroup`` lies under ``cgroup_root`` and where a container mounts its own cgroup as the root.

    Args:
        cgroup_root: where the cgroup file systems are mounted.
        self_cgroup: the process's cgroup membership (``/proc/self/cgroup``'s format).
    """
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            quotas += [q for q in (_v2_quota(f) for f in _candidates(cgroup_root, path, "cpu.max")) if q]
        elif "cpu" in controllers.split(","):
            mount = cgroup_root / controllers
            if not mount.is_dir():
                mount = cgroup_root / "cpu"
            quotas += [q for q in (_v1_quota(f) for f in _candidates(mount, path, "cpu.cfs_quota_us")) if q]
    return min(quotas) if quotas else None


def _candidates(mount: Path, path: str, name: str) -> list[Path]:
    """``name`` in the cgroup at ``path`` under ``mount`` and in each cgroup above it, up to the mount's root."""
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    return [mount.joinpath(*parts[:depth], name) for depth in range(len(parts), -1, -1)]


def _v2_quota(file: Path) -> float | None:
    """Cores allowed by a cgroup v2 ``cpu.max`` ("150000 100000"; "max 100000" is no limit)."""
    try:
        quota, _, period = file.read_text().strip().partition(" ")
        return _cores(quota, period or "100000")
    except OSError:
        return None


def _v1_quota(file: Path) -> float | None:
    """Cores allowed by a cgroup v1 ``cpu.cfs_quota_us`` (-1 is no limit) and its ``cpu.cfs_period_us``."""
    try:
        return _cores(file.read_text().strip(), file.with_name("cpu.cfs_period_us").read_text().strip())
    except OSError:
        return None


def _cores(quota: str, period: str) -> float | None:
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:  # "max", or a file that is not what it should be: no limit read from it
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def available_cores(affinity: int | None = None, quota: float | None = None, *,
                    cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """How many threads of work this process can run at once: its affinity, capped by its CPU quota.

    A quota is rounded down (1.5 cores: 1 thread), never below 1: a second thread on half a core
    would be throttled in the middle of a parallel region, which is the stall the policy avoids.

    Args:
        affinity: cores in the affinity mask (default: this process's).
        quota: the cgroup quota in cores (default: read under ``cgroup_root``; None there is no limit).
    """
    cores = affinity_cores() if affinity is None else affinity
    if quota is None:
        quota = quota_cores(cgroup_root, self_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota + 1e-9)))
    return max(1, cores)


def omp_num_threads(environ: Mapping[str, str]) -> int | None:
    """The thread count ``OMP_NUM_THREADS`` asks for (its first level: "4,2" is 4), or None when unset
    or not a positive number (OpenMP ignores such a value too)."""
    value = environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if not value:
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    log.warning("OMP_NUM_THREADS=%r is not a thread count; ignored", environ["OMP_NUM_THREADS"])
    return None


def default_threads(requested: int = 0, environ: Mapping[str, str] | None = None, *,
                    cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = PROC_SELF_CGROUP) -> int:
    """The torch thread count for ``train.threads = requested``: that number when it is set, else
    ``OMP_NUM_THREADS`` when the environment sets it, else :func:`available_cores`."""
    if requested > 0:
        return requested
    asked = omp_num_threads(os.environ if environ is None else environ)
    if asked is not None:
        return asked
    return available_cores(cgroup_root=cgroup_root, self_cgroup=self_cgroup)


def wait_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables an entry point should add to ``environ`` before PyTorch is imported: the passive
    wait policy, unless ``environ`` already chooses one (any of :data:`WAIT_VARIABLES`, even empty)."""
    if any(name in environ for name in WAIT_VARIABLES):
        return {}
    return dict(DEFAULT_WAIT)


def use_passive_wait(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Add :func:`wait_environment`'s variables to ``environ``; what was added.

    For entry points only (the ``shotfit`` command, the training container), before PyTorch is
    imported: the environment is the process's, and a program that hosts shotfit decides for itself.
    Child processes inherit it (a sweep's local Ray workers).
    """
    added = wait_environment(environ)
    environ.update(added)
    return added
