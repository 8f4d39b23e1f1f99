"""The service image, started as a studio starts it (its own command: ``shotfit serve`` on port 8000), no
network: healthy by its own HEALTHCHECK, running as the unprivileged user, and a first session through
the HTTP API (tests/image/service_client.py, run inside the container): a key made with ``shotfit keys
create``, a tiny shot uploaded, trained, rendered, and a rendered frame fetched.

An image built before ``shotfit serve`` existed skips, saying so.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engines import Engine
from shots import HEIGHT, WIDTH, write_graded_shot

pytestmark = pytest.mark.slow

CLIENT = Path(__file__).with_name("service_client.py")
USER = 1000
FRAMES, KEYFRAMES = 6, 2  # write_graded_shot's defaults


def wait_healthy(engine: Engine, name: str, timeout: float = 180) -> None:
    """Until the image's own HEALTHCHECK passes (GET /v1/health); the container's log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.command == "podman":
            healthy = engine("healthcheck", "run", name, check=False).returncode == 0
        else:
            healthy = engine("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip() == "healthy"
        if healthy:
            return
        if engine("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(1)
    log = engine("logs", name, check=False)
    raise AssertionError(f"the service never became healthy:\n{log.stdout}{log.stderr}")


@pytest.fixture(scope="module")
def service(engine: Engine, service_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The running service container's name, with a tiny shot mounted read-only at /shot."""
    probe = engine("run", "--rm", *engine.run_options, "--entrypoint", "shotfit", service_image, "serve", "--help",
                   check=False)
    if probe.returncode != 0:
        pytest.skip(f"{service_image} has no `shotfit serve` (built before the service existed): "
                    f"{(probe.stderr.strip().splitlines() or ['no output'])[-1]}")
    folder = tmp_path_factory.mktemp("shot")
    write_graded_shot(folder)
    folder.chmod(0o755)  # the service's user reads it
    name = f"shotfit-test-service-{folder.name}"
    started = subprocess.run(engine.run_args(service_image, name=name, mounts=[(folder, "/shot:ro")], detach=True),
                             capture_output=True, text=True, timeout=300)
    try:
        assert started.returncode == 0, started.stderr
        wait_healthy(engine, name)
        yield name
    finally:
        engine.remove(name)


def test_the_service_runs_as_the_user(engine: Engine, service: str) -> None:
    status = engine("exec", service, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    assert set(uids) == {str(USER)}


def test_a_first_session_trains_renders_and_fetches_through_the_api(engine: Engine, service: str) -> None:
    made = engine("exec", service, "shotfit", "keys", "create", "--studio", "test")
    key = made.stdout.strip().splitlines()[0]  # printed once, on a line of its own
    done = subprocess.run([engine.command, "exec", "-i", service, "python", "-", key, "/shot"],
                          input=CLIENT.read_text(), capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["me"]["studio"] == "test"
    assert seen["uploads_complete"]
    assert seen["shot"]["files"]["source"] == FRAMES and seen["shot"]["files"]["keyframes"] == KEYFRAMES
    assert seen["train"]["state"] == "succeeded", seen["train"]["error"]
    assert seen["train"]["progress"]["step"] == 30
    assert seen["render"]["state"] == "succeeded", seen["render"]["error"]
    assert len([r for r in seen["results"] if r["name"].endswith(".png")]) == FRAMES
    assert seen["fetched"]["png"] and (seen["fetched"]["width"], seen["fetched"]["height"]) == (WIDTH, HEIGHT)
