"""The linters the project keeps clean, with their settings in pyproject.toml: ruff on all the Python, and
mypy (strict) on the public API and the types it hands out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    """The console script installed beside this interpreter (the test extra brings ruff and mypy)."""
    path = Path(sys.executable).with_name(name)
    assert path.is_file(), f"{path} not found: install the test extra (pip install -e '.[test]')"
    return str(path)


def test_ruff_finds_nothing() -> None:
    result = subprocess.run([tool("ruff"), "check", "--no-cache", "--output-format", "concise", "src", "tests", "bench"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_public_api_type_checks(tmp_path: Path) -> None:
    # a fresh cache: about 40 s, most of it reading torch's annotations
    result = subprocess.run([tool("mypy"), "--cache-dir", str(tmp_path / "mypy")],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
