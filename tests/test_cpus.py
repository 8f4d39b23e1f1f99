"""The CPU policy: threads from the cores a process may use (affinity, cgroup quota), and OpenMP threads
that sleep rather than spin, set by the command for its own process only when the user chose nothing."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch._dynamo  # noqa: F401  torch sets $TORCHINDUCTOR_CACHE_DIR once, as this is first imported
from shots import KEYFRAMES, TINY, train_args, write_graded_shot, write_shot

import shotfit
from shotfit import api
from shotfit.cpus import WAIT_VARIABLES, available_cores, default_threads, quota_cores, use_passive_wait
from shotfit.device import configure_threads


def cgroups(root: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A fake cgroup file system under ``root``: ``files`` by path, and the process's membership file."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    self_cgroup = root / "proc-self-cgroup"
    self_cgroup.write_text(membership + "\n")
    return root, self_cgroup


def test_cgroup_v2_quota_of_the_process_and_of_the_cgroups_above_it(tmp_path):
    root, me = cgroups(tmp_path, "0::/farm.slice/job-7", {
        "farm.slice/cpu.max": "250000 100000",
        "farm.slice/job-7/cpu.max": "max 100000"})
    assert quota_cores(root, me) == 2.5  # the job has no limit of its own; the slice above it does
    assert available_cores(16, cgroup_root=root, self_cgroup=me) == 2  # half a core is not a thread
    (root / "farm.slice/job-7/cpu.max").write_text("150000 100000\n")
    assert available_cores(16, cgroup_root=root, self_cgroup=me) == 1
    assert available_cores(1, cgroup_root=root, self_cgroup=me) == 1


def test_cgroup_v2_inside_a_container_reads_the_root(tmp_path):
    root, me = cgroups(tmp_path, "0::/", {"cpu.max": "400000 100000"})  # docker run --cpus 4
    assert available_cores(64, cgroup_root=root, self_cgroup=me) == 4
    assert available_cores(2, cgroup_root=root, self_cgroup=me) == 2  # the affinity is tighter


def test_cgroup_v1_quota_and_period(tmp_path):
    root, me = cgroups(tmp_path, "12:memory:/x\n4:cpu,cpuacct:/kubepods/pod1/c2\n1:name=systemd:/", {
        "cpu,cpuacct/kubepods/pod1/c2/cpu.cfs_quota_us": "300000",
        "cpu,cpuacct/kubepods/pod1/c2/cpu.cfs_period_us": "200000",
        "cpu,cpuacct/kubepods/cpu.cfs_quota_us": "-1",
        "cpu,cpuacct/kubepods/cpu.cfs_period_us": "100000"})
    assert quota_cores(root, me) == 1.5
    assert available_cores(8, cgroup_root=root, self_cgroup=me) == 1


def test_cgroup_v1_container_whose_mount_root_is_its_own_cgroup(tmp_path):
    # /proc/self/cgroup names the host's path, but the container sees its own cgroup as the mount's root
    root, me = cgroups(tmp_path, "3:cpu:/docker/0123abcd", {
        "cpu/cpu.cfs_quota_us": "200000", "cpu/cpu.cfs_period_us": "100000"})
    assert available_cores(32, cgroup_root=root, self_cgroup=me) == 2


@pytest.mark.parametrize("files", [
    {"cpu.max": "max 100000"},
    {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"},
    {"cpu.max": "not a quota"},
    {},
])
def test_no_quota_leaves_the_affinity(tmp_path, files):
    membership = "0::/" if not any(name.startswith("cpu/") for name in files) else "2:cpu:/"
    root, me = cgroups(tmp_path, membership, files)
    assert quota_cores(root, me) is None
    assert available_cores(6, cgroup_root=root, self_cgroup=me) == 6


def test_no_cgroup_file_at_all(tmp_path):
    assert quota_cores(tmp_path, tmp_path / "missing") is None
    assert available_cores(3, cgroup_root=tmp_path, self_cgroup=tmp_path / "missing") == 3


def test_this_process_uses_its_affinity_at_most():
    assert 1 <= available_cores() <= len(os.sched_getaffinity(0))


def test_threads_asked_for_win_then_omp_num_threads_then_the_available_cores(tmp_path, caplog):
    root, me = cgroups(tmp_path, "0::/", {"cpu.max": "100000 100000"})
    assert default_threads(3, {"OMP_NUM_THREADS": "2"}, cgroup_root=root, self_cgroup=me) == 3
    assert default_threads(0, {"OMP_NUM_THREADS": "2"}, cgroup_root=root, self_cgroup=me) == 2
    assert default_threads(0, {"OMP_NUM_THREADS": "4,2"}, cgroup_root=root, self_cgroup=me) == 4
    assert default_threads(0, {}, cgroup_root=root, self_cgroup=me) == 1
    with caplog.at_level(logging.WARNING):
        assert default_threads(0, {"OMP_NUM_THREADS": "many"}, cgroup_root=root, self_cgroup=me) == 1
    assert "OMP_NUM_THREADS='many' is not a thread count" in caplog.text


def test_configure_threads_zero_takes_the_available_cores(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert configure_threads(0) == 1  # the suite's OMP_NUM_THREADS=1 (conftest)
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert configure_threads(0) == available_cores()
    finally:
        torch.set_num_threads(before)


def test_passive_wait_is_added_only_where_nothing_is_chosen():
    environ = {"PATH": "/bin"}
    assert use_passive_wait(environ) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert environ == {"PATH": "/bin", "OMP_WAIT_POLICY": "PASSIVE"}
    for name in WAIT_VARIABLES:
        chosen = {name: ""}  # set, even empty, is the user's choice
        assert use_passive_wait(chosen) == {} and chosen == {name: ""}


def openmp_settings(stderr: str) -> dict[str, str]:
    """What GNU libgomp printed with OMP_DISPLAY_ENV=verbose as it started: name -> value."""
    lines = stderr.split("OPENMP DISPLAY ENVIRONMENT BEGIN")[1].split("OPENMP DISPLAY ENVIRONMENT END")[0]
    pairs = (line.strip().partition(" = ") for line in lines.splitlines() if " = " in line)
    return {name.strip(): value.strip("'") for name, _, value in pairs}


@pytest.mark.slow
@pytest.mark.parametrize(("chosen", "policy", "spin_count"), [
    ({}, "PASSIVE", "0"),  # nothing chosen: threads sleep as soon as they wait
    ({"OMP_WAIT_POLICY": "active"}, "ACTIVE", None),  # the user's choices stay
    ({"GOMP_SPINCOUNT": "1000"}, None, "1000"),
])
def test_the_command_sets_the_wait_policy_its_openmp_runtime_starts_with(tmp_path, chosen, policy, spin_count):
    if not list((Path(torch.__file__).parent / "lib").glob("libgomp*")):
        pytest.skip("this PyTorch does not use GNU libgomp (OMP_DISPLAY_ENV=verbose shows the spin count)")
    source = write_shot(tmp_path / "plate")
    keys = write_shot(tmp_path / "keys", KEYFRAMES)
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARIABLES}
    env.update(chosen, OMP_DISPLAY_ENV="verbose",
               PYTHONPATH=os.pathsep.join([str(Path(shotfit.__file__).parents[1]), env.get("PYTHONPATH", "")]))
    command = [sys.executable, "-c", "import os, sys; from shotfit.cli import main; sys.argv[0] = 'shotfit'\n"
               "try:\n    main()\nfinally:\n    print('after:', os.environ.get('OMP_WAIT_POLICY'), file=sys.stderr)",
               *map(str, train_args(source, keys, tmp_path / "run", steps=1))]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runtime = openmp_settings(done.stderr)
    if policy is not None:
        assert runtime["OMP_WAIT_POLICY"] == policy
    if spin_count is not None:
        assert runtime["GOMP_SPINCOUNT"] == spin_count
    # the variable the process ends with: shotfit's choice added only where none was made
    after = done.stderr.rsplit("after: ", 1)[1].strip()
    assert after == {"": "PASSIVE", "OMP_WAIT_POLICY": "active"}.get("".join(chosen), "None")


def test_a_library_call_sets_no_wait_policy_and_no_threads(tmp_path, monkeypatch):
    for name in WAIT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    source, keys = write_graded_shot(tmp_path / "shot")
    environ, threads = dict(os.environ), torch.get_num_threads()
    api.train(source, keys, tmp_path / "run", overrides=(*TINY, "train.threads=0"), steps=2, device="cpu",
              tracking=api.TrackingOptions(enabled=False))
    assert dict(os.environ) == environ
    assert torch.get_num_threads() == threads
