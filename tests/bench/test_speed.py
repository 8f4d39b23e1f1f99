"""bench/speed.py: the speed benchmark's JSON, on tiny sizes, and its memory probe in a fresh process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.speed_contention import parse_policy
from bench.speed_harness import frame_size, measure_memory
from shotfit.cpus import available_cores
from shotfit.errors import ShotfitError

ROOT = Path(__file__).resolve().parents[2]


def one_thread_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(tmp_path), "TORCH_HOME": str(tmp_path / "torch")}


@pytest.mark.slow
def test_quick_run_reports_every_part(tmp_path: Path):
    out = tmp_path / "speed.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "speed.py"), "--quick", "--threads", "1",
                           "--repeats", "1", "--out", str(out)],
                          capture_output=True, text=True, env=one_thread_env(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    assert json.loads(out.read_text()) == printed  # --out holds what was printed

    assert printed["machine"]["device"] == "cpu" and printed["machine"]["threads"] == 1
    assert printed["flops_per_pixel"] > 1000
    assert printed["peak"]["fp32"]["conv"]["gflops"] > 0
    rows = {(r["size"], r["variant"]): r for r in printed["render"]}
    naive = rows[("1080p", "naive")]
    assert naive["speedup"] == 1.0 and naive["max_codes_8bit"] == 0 and naive["max_codes_16bit"] == 0
    default = rows[("1080p", "shotfit default, 8-bit output (fp32)")]
    # fp32 folded and channels-last: the same frame, to within a rounding at a code boundary
    assert default["max_codes_8bit"] <= 1 and default["max_codes_16bit"] <= 1
    assert default["mp_per_s"] > 0 and default["gflops"] > 0
    assert ("4K", "shotfit default, 16-bit output (fp32)") in rows

    train = printed["train"]
    assert train["naive"]["patches_per_s"] > 0 and train["shotfit"]["patches_per_s"] > 0
    assert 0 <= train["batch_drawing"]["waited_share_of_shotfit_loop"] < 1
    curves = train["curves"]
    assert len(curves["naive"]) == len(curves["shotfit"]) == len(curves["naive_other_seed"]) == curves["steps"]
    # both loops start from the same weights and batches: the first step's loss is the same
    assert math.isclose(curves["naive"][0], curves["shotfit"][0], rel_tol=0.02)
    assert curves["naive"] != curves["naive_other_seed"]

    contention = printed["contention"]
    old, new = contention["policies"]["old"], contention["policies"]["new"]
    # each policy in a process of its own, whatever the bench's own OMP_NUM_THREADS: torch's default
    # threads and OpenMP's own wait, against shotfit's threads and passive wait
    assert old["wait"] == "runtime default" and new["wait"] == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert new["threads"] == contention["cores_available"] == available_cores()
    for policy in (old, new):
        assert policy["quiet_steps"] >= 2 and policy["loaded_steps"] >= 2
        assert policy["quiet_steps_per_s"] > 0 and policy["loaded_steps_per_s"] > 0
        assert policy["kept"] == round(policy["loaded_steps_per_s"] / policy["quiet_steps_per_s"], 3)
    assert set(contention["new_vs_old"]) == {"quiet", "loaded"}


def test_memory_probe_runs_the_default_render_in_a_fresh_process():
    [row] = measure_memory(["160x96"], "cpu")
    assert row["output_ok"] and row["height"] == 96 and row["width"] == 160
    assert row["precision"] == "fp32" and row["tile"] == 1216  # the CPU's default tile, larger than the frame
    assert 0 < row["rss_before_mb"] <= row["peak_rss_mb"] < 4000


def test_frame_sizes_by_name_or_width_by_height():
    assert frame_size("4K") == (2160, 3840)
    assert frame_size("640x360") == (360, 640)
    with pytest.raises(ShotfitError, match="frame size '4k' is not one of 1080p, 4K, 8K or WIDTHxHEIGHT"):
        frame_size("4k")


def test_contention_policies_by_name():
    assert parse_policy("1:passive").environment == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert parse_policy("2:spin=10000").environment == {"GOMP_SPINCOUNT": "10000"}
    assert parse_policy("2:default").environment == {} and parse_policy("2:default").threads == 2
    assert parse_policy("new").shotfit and not parse_policy("old").shotfit
    for wrong in ("fast", "0:passive", "2:sleepy", "2:spin=x"):
        with pytest.raises(ValueError, match=wrong):
            parse_policy(wrong)
