"""bench/service.py: its JSON, on tiny sizes, against a real ``shotfit serve`` (the render part, which starts two
more servers, is left out here); the upload to a storage folder and to S3 on moto's server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_service_bench_reports_polls_uploads_and_first_steps(tmp_path: Path):
    pytest.importorskip("moto", reason="the S3 upload is measured on moto's server (a test dependency)")
    out = tmp_path / "service.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "service.py"), "--clients", "5", "--polls", "4",
                           "--interval", "0.2", "--upload-mb", "3", "--upload-frame", "640x360", "--chunk-mb", "0.5",
                           "--render-frames", "4", "--render-size", "32", "--upload-storage", "folder,s3",
                           "--skip", "render", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = json.loads(done.stdout)
    assert json.loads(out.read_text()) == printed
    # one round of each part on this tree's code (no --baseline-src): paced polls, then back to back
    [polled] = printed["status_poll"]["this_tree"]
    assert "baseline" not in printed["status_poll"]
    for poll in (polled["paced"], polled["back_to_back"]):
        assert poll["requests"] == 20 and poll["non_200"] == 0 and 0 < poll["p50_ms"] <= poll["p99_ms"]
        assert poll["server_cpu_ms_per_request"] > 0
    [upload] = printed["upload"]["this_tree"]
    assert upload["frames"] == 2 and upload["bytes"] > 2 * 640 * 360 * 6 and upload["mb_per_s"] > 0
    assert upload["storage"] == "folder" and "moto_cpu_ms_per_mb" not in upload
    # the same frames into S3 (moto's server, started and stopped by the bench): its CPU apart from the server's
    on_s3 = printed["upload"]["s3_moto"]
    assert "lower bound" in on_s3["note"]
    [s3] = on_s3["this_tree"]
    assert s3["storage"] == "s3" and s3["bytes"] == upload["bytes"] and s3["mb_per_s"] > 0
    assert s3["server_cpu_ms_per_mb"] > 0 and s3["moto_cpu_ms_per_mb"] > 0
    steps = printed["submit_to_first_step"]
    assert 0 < steps["first_job"]["to_running_s"] <= steps["first_job"]["to_first_step_s"]
    assert "render" not in printed
