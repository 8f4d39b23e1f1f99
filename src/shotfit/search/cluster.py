"""Where a sweep runs: a local Ray instance started for it, or a cluster it connects to.

A local instance keeps its session folder (logs, sockets) under the sweep's folder when the path is
short enough for Unix sockets (about 107 bytes, and Ray adds ~70), else in a short temporary folder
removed afterwards. Ray's usage statistics stay off: a sweep sends nothing anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from shotfit.cpus import available_cores
from shotfit.errors import ShotfitError

log = logging.getLogger(__name__)

SOCKET_PATH_MAX = 107  # bytes in sun_path, less the terminating NUL (Linux; macOS: 103)
SESSION_SUFFIX = 72  # "/session_<date>_<time>_<micros>_<pid>/sockets/plasma_store", measured on Ray 2.60
OBJECT_STORE_BYTES = 256 * 2**20  # trials pass paths, not arrays: the store stays small
GROUP_WAIT_S = 30.0  # for the actors of a killed sweep driver to go, before their placement groups are freed
CONNECT_TIMEOUT_S = 5.0  # a cluster's port that does not answer by then is taken as unreachable


@dataclass(frozen=True)
class Capacity:
    """What the Ray cluster (or the local instance) offers trials."""

    cpus: int
    memory: int  # bytes Ray schedules as its "memory" resource
    gpus: float
    local: bool


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity and cgroup CPU quota, which a container or a farm
    may narrow (:func:`shotfit.cpus.available_cores`)."""
    return available_cores()


def session_folder(out: Path | None) -> tuple[Path, bool]:
    """Ray's temporary folder for a local sweep in ``out`` (None: a command with no folder of its own, such
    as a render, whose output folder holds frames only), and whether it is ours to remove afterwards."""
    if os.environ.get("RAY_TMPDIR"):
        return Path(os.environ["RAY_TMPDIR"]), False
    beside = Path(out).resolve() / "ray" if out is not None else None
    if beside is not None and len(os.fsencode(beside)) + SESSION_SUFFIX <= SOCKET_PATH_MAX - 4:  # spare bytes
        return beside, False
    short_root = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="shotfit-ray-", dir=short_root)), True


def quiet_ray_environment() -> None:
    """Settings read when Ray starts: no usage reports, no progress tables of its own on the console.

    Ray and Tune read these from the environment only (some as Ray is imported), and the environment
    is the process's: the entry point that runs a sweep (the CLI's ``sweep``) sets them before it
    imports Ray; :func:`ray_session` does not.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's own TensorBoard copy of each trial would sit beside shotfit's under `tensorboard --logdir OUT`
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def check_ray_address(address: str, parameter: str = "address") -> None:
    """Refuse, in one line naming ``parameter``, an address that is not ``auto``, ``ray://HOST:PORT`` or
    ``HOST:PORT``, or whose port does not answer: Ray itself would wait minutes for an unreachable one."""
    if address == "auto":
        return
    parsed = urlsplit(address if "://" in address else f"//{address}")
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme not in ("", "ray") or not parsed.hostname or port is None or parsed.path not in ("", "/"):
        raise ShotfitError(f"Ray address {address!r} is not auto, ray://HOST:PORT or HOST:PORT", parameter=parameter)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise ShotfitError(f"cannot reach the Ray cluster at {address!r} ({err.strerror or err})",
                           parameter=parameter) from None


@contextlib.contextmanager
def ray_session(out: Path | None, address: str | None = None, cpus: int | None = None,
                parameter: str = "address") -> Iterator[Capacity]:
    """Start Ray locally (``cpus`` cores, default all) or connect to ``address``; shut it down after.

    Args:
        out: The sweep's folder (a local instance keeps its logs under ``out/ray`` when it can); None: a
            short temporary folder, removed afterwards.
        address: ``ray://head:10001`` (Ray Client) or ``host:6379`` / ``auto``: a running cluster.
        cpus: Local only: cores to give the instance.
        parameter: The request field (or option) that gave ``address``, named by its errors.

    Raises:
        ShotfitError: ``address`` is malformed or no Ray cluster answers there.
    """
    import ray  # imported only when a sweep runs: Ray takes seconds to import

    temp, remove_after = None, False
    if address:
        check_ray_address(address, parameter)
    if ray.is_initialized():
        raise RuntimeError("Ray is already running in this process; a sweep starts (and stops) its own")
    if address:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ShotfitError(f"cannot connect to the Ray cluster at {address!r}: {first}",
                               parameter=parameter) from None
    else:
        temp, remove_after = session_folder(out)
        temp.mkdir(parents=True, exist_ok=True)
        # a local instance turns on token authentication and warns that it did: that is the default we want
        with _quiet("ray._private.authentication.authentication_token_setup"):
            ray.init(num_cpus=cpus or available_cpus(), include_dashboard=False, _temp_dir=str(temp),
                     log_to_driver=False, logging_level=logging.WARNING, object_store_memory=OBJECT_STORE_BYTES)
    try:
        resources = ray.cluster_resources()
        yield Capacity(int(resources.get("CPU", 1)), int(resources.get("memory", 0)),
                       float(resources.get("GPU", 0)), local=not address)
    finally:
        ray.shutdown()
        if remove_after and temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


@contextlib.contextmanager
def joined_ray() -> Iterator[Capacity]:
    """The Ray this process already belongs to (it runs as a Ray task, as a service's sweep job does):
    neither started nor stopped here. Its capacity is what is free now: CPUs other tasks hold are not
    the sweep's to plan with (a trial that finds none free waits for one)."""
    import ray  # imported only when a sweep runs: Ray takes seconds to import

    if not ray.is_initialized():
        raise RuntimeError("joined_ray runs in a process already connected to Ray (a Ray task)")
    free = ray.available_resources()
    yield Capacity(max(int(free.get("CPU", 0)), 1), int(free.get("memory", 0)), float(free.get("GPU", 0)),
                   local=False)


def release_idle_groups(groups: Iterable[str], wait_s: float = GROUP_WAIT_S) -> int:
    """Remove those of ``groups`` (placement group ids, hex) that still exist, once nothing runs in them;
    how many were removed.

    Tune reserves each trial's CPUs in a placement group owned by the Ray job, not by the driver's process:
    when a driver that runs as a task (a service's sweep job) is killed, its trial actors die with it but
    their groups live on with the job, holding the CPUs, and the next attempt's trials wait for them
    forever. Only a group named here (one the sweep's own trials recorded) is removed, and only once idle
    (the killed driver's actors take a moment to go), so a group something still uses is never touched;
    one still busy after ``wait_s`` seconds is left, with a warning.
    """
    import ray  # imported only when a sweep runs: Ray takes seconds to import
    from ray.util.placement_group import PlacementGroup, placement_group_table

    table = placement_group_table()
    waiting = [g for g in dict.fromkeys(groups) if table.get(g, {}).get("state") == "CREATED"]
    removed, deadline = 0, time.monotonic() + wait_s
    while waiting:
        total, free = ray.cluster_resources(), ray.available_resources()
        for group in list(waiting):
            reserved = {name: amount for name, amount in total.items() if name.endswith(f"_group_{group}")}
            if all(free.get(name, 0.0) >= amount for name, amount in reserved.items()):
                ray.util.remove_placement_group(PlacementGroup(ray.PlacementGroupID(bytes.fromhex(group))))
                waiting.remove(group)
                removed += 1
        if waiting and time.monotonic() > deadline:
            log.warning("%d placement group(s) of an earlier start of the sweep are still in use", len(waiting))
            break
        if waiting:
            time.sleep(0.2)
    if removed:
        log.info("freed %d placement group(s) an interrupted start of the sweep left holding resources", removed)
    return removed


def concurrency(capacity: Capacity, trials: int, memory_per_trial: int, cpus_per_trial: int | None,
                gpus_per_trial: float, max_concurrent: int | None) -> tuple[int, int]:
    """(trials at once, CPUs each): as many as the cores allow, fewer where memory (or GPUs) run out.

    With no ``cpus_per_trial``, the cores are shared out: 8 trials on 16 cores get 2 each; 50 trials
    get 1 each, 16 at a time.
    """
    by_memory = max(1, capacity.memory // max(memory_per_trial, 1)) if capacity.memory else trials
    by_gpu = int(capacity.gpus // gpus_per_trial) if gpus_per_trial else trials
    limit = max(1, min(trials, by_memory, by_gpu, max_concurrent or trials))
    if cpus_per_trial is None:
        at_once = min(limit, capacity.cpus)
        cpus_per_trial = max(1, capacity.cpus // max(at_once, 1))
    at_once = max(1, min(limit, capacity.cpus // cpus_per_trial)) if cpus_per_trial <= capacity.cpus else 1
    if by_memory < min(trials, capacity.cpus):
        log.info("memory allows %d trials at once (about %.1f GiB each)", by_memory, memory_per_trial / 2**30)
    return at_once, cpus_per_trial


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
