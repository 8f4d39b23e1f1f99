"""How containers run on this machine: Docker when its engine answers (as docker/build.sh decides), else
podman with the options these machines need."""

from __future__ import annotations

import resource
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Engine:
    """``docker`` or ``podman``, and the options every ``run`` needs on this machine."""

    command: str
    run_options: tuple[str, ...]

    def run_args(self, image: str, *args: str, name: str, mounts: Sequence[tuple[Path, str]] = (),
                 env: dict[str, str] | None = None, detach: bool = False) -> list[str]:
        """The command line that runs ``image`` with ``args`` in a container called ``name``."""
        command = [self.command, "run", "--name", name, *self.run_options]
        command += ["--detach"] if detach else []
        for host, inside in mounts:
            command += ["--volume", f"{host}:{inside}"]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        return [*command, image, *args]

    def __call__(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """``ENGINE args...``, its output captured as text."""
        done = subprocess.run([self.command, *args], capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.command} {' '.join(args)} -> {done.returncode}: {done.stderr.strip()}")
        return done

    def remove(self, name: str) -> None:
        """Remove the container ``name``, killing it first if it still runs."""
        # podman's --force stops with SIGTERM and waits 10 s first; docker's kills at once
        wait = ("--time", "0") if self.command == "podman" else ()
        subprocess.run([self.command, "rm", "--force", *wait, name], capture_output=True, timeout=120)


def find_engine() -> Engine:
    """Docker when its engine answers (as docker/build.sh decides), else podman as this machine needs it."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True, timeout=60).returncode == 0:
        return Engine("docker", ("--network", "none"))
    if shutil.which("podman") is None:
        pytest.skip("neither a Docker engine nor podman: docker/build.sh installs podman")
    # root here lacks CAP_SYS_RESOURCE, so no limit above the hard one; crun refuses the hybrid cgroup
    # v1/v2 layout, runc does not
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return Engine("podman", ("--runtime", "runc", "--ulimit", f"nofile={hard}:{hard}",
                             "--ulimit", "nproc=32768:32768", "--network", "none"))
