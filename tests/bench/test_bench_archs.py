"""``shotfit bench archs`` end to end on a tiny shot with a truth: two networks, two seeds, Ray locally.

About a minute on two shared cores.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shots import PNG8, fails, grade, shotfit
from shots import disc_plate as plate
from shots import write_graded_shot as write_shot

from bench.presets import preset_shot
from shotfit.archs import build_network, count_parameters
from shotfit.compare.archs import SAMPLE_SHOT
from shotfit.errors import ShotfitError
from shotfit.io import write_image

ROOT = Path(__file__).resolve().parents[2]

TINY = ("--set", "model.width=4", "--set", "model.depth=2", "--set", "augment.patch_size=32",
        "--set", "data.batch_size=2", "--set", "loss.lpips=0", "--set", "train.validate_every=2",
        "--set", "train.warmup_steps=0")


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
    # the product knows the sample and the user's own shots; the team's shared clips are bench/archs.py's
    for name in ("moon", "bedroom-whitebalance"):
        line = fails("bench", "archs", "--shot", name, "--out", tmp_path / "b")
        assert f"unknown benchmark shot {name!r}: give --shot sample, or your own shot with --source" in line
    assert "WIDTHxHEIGHT" in fails("bench", "archs", "--render-size", "big", "--out", tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_the_product_command_has_no_shared_footage_option():
    result = shotfit("bench", "archs", "--shared-data", "x")
    assert result.exit_code == 2 and "No such option: --shared-data" in result.stderr


def test_a_shared_clip_not_there_is_one_line_from_the_bench_script(tmp_path):
    out = tmp_path / "b"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "archs.py"), "--shot", "bedroom-whitebalance",
                           "--shared-data", str(tmp_path / "none"), "--out", str(out)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("shotfit: shot 'bedroom-whitebalance' needs the shared footage at ")
    assert str(tmp_path / "none") in line


@pytest.mark.slow
def test_the_bench_script_measures_costs_with_the_threads_it_was_given(tmp_path):
    out = tmp_path / "b"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "archs.py"), "--shot", "sample", "--archs", "unet",
                           "--report-only", "--render-size", "64x48", "--threads", "2", "--no-track", "--out", str(out),
                           *TINY],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    costs = json.loads((out / "costs.json").read_text())["unet"]
    assert costs["threads"] == 2 and costs["render_size"] == [48, 64]
    assert costs["parameters"] == count_parameters(build_network("unet", width=4, depth=2))
    assert "### architectures on 'sample'" in done.stdout and str(out / "archs.md") in done.stdout


def test_presets_name_the_sample_and_the_shared_clips(tmp_path):
    assert preset_shot("sample", tmp_path) is SAMPLE_SHOT
    with pytest.raises(ShotfitError, match=r"unknown benchmark shot 'moon' \(known: sample, bedroom-whitebalance, "
                                           r"bike-enhancement\)"):
        preset_shot("moon", tmp_path)


def test_presets_link_the_shared_frames_in_place(tmp_path):
    clip = tmp_path / "data" / "dvp_bike_packing" / "demo" / "consistency" / "Enhancement"
    for sub in ("bike-packing-input", "bike-packing-processed"):
        for frame in range(69):
            write_image(clip / sub / f"{frame:05d}.png", plate(frame, 8, 8), PNG8)
    shot = preset_shot("bike-enhancement", tmp_path / "out", tmp_path / "data")
    assert shot.name == "bike-enhancement" and not shot.sample
    keys = sorted(shot.keyframes.iterdir())
    assert [k.name for k in keys] == [f"{f:05d}.png" for f in (0, 17, 34, 51, 68)]
    assert all(k.is_symlink() and k.resolve().parent.name == "bike-packing-processed" for k in keys)
    assert len(list(shot.source.iterdir())) == len(list(shot.truth.iterdir())) == 69
