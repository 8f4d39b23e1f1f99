"""bench/export_speed.py: its JSON on a tiny NAFNet with TLC pooling, logged to MLflow and loaded back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_NAFNET = "nafnet:width=4 enc_blocks=[1] middle_blocks=1 dec_blocks=[1] pool_window=8"


@pytest.mark.slow
def test_tiny_nafnet_is_timed_and_its_logged_model_matches_at_other_sizes(tmp_path: Path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    env = {name: value for name, value in env.items() if not name.startswith("MLFLOW_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "export_speed.py"), "--threads", "1",
                           "--nets", TINY_NAFNET], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    result = printed["nets"][TINY_NAFNET]
    assert result["log_model_s"] > 0 and result["log_model_cpu_s"] > 0
    differences = result["max_abs_difference"]
    assert set(differences) == {"37x53", "270x480"}
    assert all(isinstance(d, float) and d < 1e-5 for d in differences.values()), differences
    assert printed["threads"] == 1 and len(printed["load_before"]) == 3
    assert sorted(os.listdir(tmp_path)) == []  # the store and the model lived in a temporary folder
