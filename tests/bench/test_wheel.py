"""What ``pip install shotfit`` gets: the product, and none of the research equipment in bench/.

Builds the wheel from a copy of the project (a build writes beside its sources), offline: the
build backend must already be installed, as it is wherever the test extra is.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# what would mean research equipment shipped: the peers, the face effects, the team's footage
FORBIDDEN_TEXT = ("shared/data", "shared_data", "SHOTFIT_SHARED_DATA", "texler", "face_effects", "bench.peers")
FORBIDDEN_NAMES = ("peers", "pix2pix", "texler", "face_effects", "presets", "quality", "speed")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    pytest.importorskip("setuptools", minversion="77")
    pytest.importorskip("wheel")
    project = tmp_path_factory.mktemp("project")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # bench/ and tests/ beside src/, as in the checkout: package discovery must leave them out
    shutil.copytree(ROOT / "bench", project / "bench", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "tests").mkdir()
    (project / "tests" / "__init__.py").write_text("")
    out = project / "dist"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", "-q", "-w", str(out), str(project)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    [built] = out.glob("shotfit-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_the_wheel_holds_only_the_shotfit_package(wheel: zipfile.ZipFile):
    names = wheel.namelist()
    assert "shotfit/cli/bench.py" in names and "shotfit/compare/costs.py" in names
    assert all(n.startswith("shotfit/") or n.split("/")[0].endswith(".dist-info") for n in names), names
    shipped = [n for n in names if n.startswith("shotfit/")]
    assert not [n for n in shipped if any(word in Path(n).stem for word in FORBIDDEN_NAMES)]


def test_no_shipped_file_imports_bench_or_names_the_peers_face_effects_or_shared_footage(wheel: zipfile.ZipFile):
    found = []
    for name in wheel.namelist():
        if name.startswith("shotfit/") and name.endswith(".py"):
            text = wheel.read(name).decode("utf-8")
            found += [f"{name}: {word}" for word in FORBIDDEN_TEXT if word in text]
            found += [f"{name}: imports {module}" for module in _imported(text) if module.split(".")[0] == "bench"]
    assert not found


def _imported(source: str) -> list[str]:
    """Every absolute module a source file imports, at module level or inside functions."""
    modules = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.append(node.module)
    return modules


def test_the_service_web_page_ships_in_the_wheel(wheel: zipfile.ZipFile):
    web = ROOT / "src" / "shotfit" / "service" / "web"
    files = sorted(p.name for p in web.iterdir() if p.is_file())
    assert {"index.html", "app.js", "style.css"} <= set(files)
    for name in files:  # byte for byte: `shotfit serve` from a wheel serves the page the tests drove
        assert wheel.read(f"shotfit/service/web/{name}") == (web / name).read_bytes(), name


def test_the_built_in_sweeps_ship_in_the_wheel(wheel: zipfile.ZipFile):
    sweeps = ROOT / "src" / "shotfit" / "search" / "sweeps"
    files = sorted(p.name for p in sweeps.glob("*.yaml"))
    assert {"loss_ablation.yaml", "temporal.yaml"} <= set(files)
    for name in files:  # `shotfit sweep temporal` and a service's `sweep.preset` from an installed wheel
        assert wheel.read(f"shotfit/search/sweeps/{name}") == (sweeps / name).read_bytes(), name
