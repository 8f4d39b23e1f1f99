"""``shotfit bench archs`` end to end on a tiny shot with a truth: two networks, two seeds, Ray locally.

About a minute on two shared cores.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from shots import fails
from tiny_runs import PNG8, grade, plate, write_shot

from shotfit.archs import build_network, count_parameters
from shotfit.io import write_image

TINY = ("--set", "model.width=4", "--set", "model.depth=2", "--set", "augment.patch_size=32",
        "--set", "data.batch_size=2", "--set", "loss.lpips=0", "--set", "train.validate_every=2",
        "--set", "train.warmup_steps=0")


@pytest.fixture
def ray_tmpdir(monkeypatch):
    """Ray's session folder: short (Unix socket paths), and removed after the test."""
    folder = tempfile.mkdtemp(prefix="sf-ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def tiny_shot(folder: Path) -> tuple[Path, Path, Path]:
    source, keys = write_shot(folder, frames=range(1, 7), keyframes=(1, 3, 6))
    truth = folder / "truth"
    for frame in range(1, 7):
        write_image(truth / f"plate.{frame:04d}.png", grade(plate(frame)), PNG8)
    return source, keys, truth


@pytest.mark.slow
def test_two_networks_are_trained_scored_timed_and_reported(tmp_path, ray_tmpdir):
    source, keys, truth = tiny_shot(tmp_path / "shot")
    out = tmp_path / "bench"
    args = ("bench", "archs", "--source", source, "--target", keys, "--truth", truth, "--out", out,
            "--archs", "unet,unet_attn", "--steps", "4", "--seeds", "2", "--render-size", "64x48",
            "--threads", "1", "--no-track", "--device", "cpu", *TINY)
    # in a process of its own: a second local Ray in one pytest process times out starting
    result = subprocess.run([str(Path(sys.executable).with_name("shotfit")), *map(str, args)], capture_output=True,
                            text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr

    # every trial trained its budget and was scored on the frames nobody fixed (2 and 4; 3 is held out)
    with (out / "archs.csv").open() as f:
        rows = {row["arch"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"unet", "unet_attn"}
    for arch, row in rows.items():
        assert row["budget"] == "steps-4" and row["seeds"] == "2" and row["steps"] == "4"
        assert 10 < float(row["test/psnr_mean"]) < 60 and float(row["test/psnr_std"]) > 0  # seeds differ
        assert float(row["test/hf_error_mean"]) >= 0 and float(row["test/warping_error_mean"]) >= 0
        # costs are those of the network the trials trained: the tiny one, not the default
        tiny = build_network(arch, width=4, depth=2)
        assert int(row["parameters"]) == count_parameters(tiny)
        assert float(row["train_step_s"]) > 0 and float(row["render_megapixels_per_s"]) > 0
        assert row["render_size"] == "48x64" and row["threads"] == "1"
    assert int(rows["unet_attn"]["parameters"]) > int(rows["unet"]["parameters"])  # the gates' weights
    records = list(out.glob("steps-4/trials/*/trial.json"))
    assert len(records) == 4 and all(json.loads(r.read_text())["status"] == "finished" for r in records)

    table = (out / "archs.md").read_text()
    for arch in ("unet", "unet_attn"):
        assert f"| {arch} | {int(rows[arch]['parameters']) / 1e6:.2f} |" in table
    assert "**Budget steps 4**" in table and "1 thread(s) on cpu" in table and "| 2 | 4 |" in table
    assert "| unet_attn |" in result.stdout and str(out / "archs.png") in result.stdout
    assert (out / "archs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each sweep is a sweep file a user can run alone
    assert "model.arch=unet_attn" in (out / "steps-4.yaml").read_text()

    # a second run trains nothing: the finished sweeps are kept, the report rewritten from them
    before = {p: p.stat().st_mtime_ns for p in out.glob("steps-4/trials/*/trial.json")}
    report = tmp_path / "docs"
    again = subprocess.run([str(Path(sys.executable).with_name("shotfit")), *map(str, args), "--report", str(report)],
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("steps-4/trials/*/trial.json")} == before
    assert (report / "archs.md").read_text() == table


def test_an_unknown_network_or_shot_is_one_line(tmp_path):
    assert "unknown architecture 'resnet' (known: " in fails("bench", "archs", "--archs", "unet,resnet",
                                                              "--out", tmp_path / "b")
    assert "unknown benchmark shot 'moon' (known: sample, " in fails("bench", "archs", "--shot", "moon",
                                                                      "--out", tmp_path / "b")
    line = fails("bench", "archs", "--shot", "bedroom-whitebalance", "--shared-data", tmp_path / "none",
                 "--out", tmp_path / "b")
    assert "needs the shared footage at" in line and str(tmp_path / "none") in line
    assert "WIDTHxHEIGHT" in fails("bench", "archs", "--render-size", "big", "--out", tmp_path / "b")
