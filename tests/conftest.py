"""Shared fixtures: every test runs with its own HOME and caches, and may not leak files or threads."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

# Tiny test networks gain nothing from a thread pool, and on a shared 2-core machine two pools fight:
# one thread per process keeps the suite fast and its timings steady. Set before torch is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Ray turns token authentication on for every new local cluster, keeps the token in ~/.ray and caches it for
# the process: with a HOME of its own per test, the second cluster of a session would get a new token while
# the process still sends the first one. One token for the whole session (its clusters and their workers).
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

import pytest

# Modules that start a local Ray cluster, or a server whose jobs run on one: when `make test` shares the suite
# out over processes (pytest-xdist), these all run in one of them, one after another, so two local clusters
# never meet (Ray's session folders, its "auto" address, the machine's cores).
ONE_PROCESS = ("service/", "search/test_sweep_ray.py", "search/test_sweep_resume.py", "workflows/test_render_on_workers.py",
               "bench/test_bench_archs.py", "bench/test_service_bench.py")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the group marks to group the tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return
    tests = Path(__file__).parent
    for item in items:
        if item.path.relative_to(tests).as_posix().startswith(ONE_PROCESS):
            item.add_marker(pytest.mark.xdist_group("ray"))


# $SHOTFIT_SHARED_DATA (as the benchmarks read it) or ../shared/data beside the checkout
SHARED_DATA = Path(os.environ.get("SHOTFIT_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point HOME and every cache variable at a fresh folder, so nothing touches the user's; no $OCIO."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("TORCH_HOME", str(home / ".cache" / "torch"))
    monkeypatch.setenv("MPLCONFIGDIR", str(home / ".config" / "matplotlib"))
    monkeypatch.delenv("OCIO", raising=False)  # a studio's OpenColorIO config must not change results
    return home


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves non-daemon threads running behind it."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon]
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


@pytest.fixture(autouse=True)
def run_in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run each test from its own temporary folder so stray relative writes cannot land in the repo."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def shared_data() -> Path:
    """The team's real third-party footage; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared footage not found at {SHARED_DATA} (non-commercial clips stay outside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def module_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder for runs shared by the tests of one module, made with HOME and the caches inside it."""
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(folder / "home"))
        mp.setenv("XDG_CACHE_HOME", str(folder / "home" / ".cache"))
        mp.setenv("TORCH_HOME", str(folder / "home" / ".cache" / "torch"))
        yield folder


@pytest.fixture
def ray_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Ray's session folder: short (Unix socket paths), and removed after the test."""
    folder = tempfile.mkdtemp(prefix="sf-ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
