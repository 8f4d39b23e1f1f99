#!/usr/bin/env python
"""``shotfit render`` on 1 and on 2 workers, as a user runs it; JSON out.

    python bench/render_workers.py                          # 32 frames of 512x512 (a minute or two on 2 cores)
    python bench/render_workers.py --frames 64 --size 1024  # longer, larger
    python bench/render_workers.py --cases 1,2,4            # more worker counts

One tiny run is trained once (a U-Net of --width on the shot's two keyframes); then, in turn, each case
renders the whole shot into a fresh folder through the real command: ``--workers 1`` renders in the command's
own process with one torch thread, ``--workers N`` (N > 1) starts a local Ray and renders N runs of
neighbouring frames at once, one CPU (one torch thread) each. Every case's frames are checked byte for byte
against the first case's.

For each case: the command's wall-clock seconds (Python, PyTorch and Ray start-up included) and frames/s over
it, and the steady frames/s between the first and the last frame written (start-up left out), and each
against the first case. The load average before and after is reported: the figures mean little on a busy
machine, and on a 2-core machine 2 workers can at best double one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

from bench.service import write_png_shot  # noqa: E402  (the service bench's shot: the same plates and grade)


def environment(folder: Path) -> dict[str, str]:
    env = {**os.environ, "HOME": str(folder / "home"), "MLFLOW_DISABLE_TELEMETRY": "true",
           "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (str(_ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("OMP_NUM_THREADS", None)  # each case sets its threads as the command does
    return env


def shotfit(env: dict[str, str], *args: str | Path) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "shotfit", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"shotfit {args[0]} failed: {done.stderr[-2000:]}")
    return time.monotonic() - started, done.stdout


def digest(folder: Path) -> str:
    hashed = hashlib.sha256()
    for path in sorted(folder.glob("*.png")):
        hashed.update(path.name.encode() + path.read_bytes())
    return hashed.hexdigest()


def steady_fps(folder: Path) -> float | None:
    """Frames/s between the first and the last frame written (their files' modification times)."""
    stamps = sorted(path.stat().st_mtime for path in folder.glob("*.png"))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 and stamps[-1] > stamps[0] else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--width", type=int, default=16, help="the U-Net's width (its compute per pixel)")
    parser.add_argument("--cases", default="1,2", help="worker counts, in the order run")
    args = parser.parse_args(argv)
    cases = [int(c) for c in args.cases.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="sf-bench-workers-", dir="/tmp"))
    try:
        env = environment(folder)
        plate_files, key_files = write_png_shot(folder, args.frames, args.size)
        plates, keys = plate_files[0].parent, key_files[0].parent
        shotfit(env, "train", "--source", plates, "--target", keys, "--out", folder / "run", "--steps", "3",
                "--device", "cpu", "--no-track", "--set", f"model.width={args.width}", "--set", "model.depth=3",
                "--set", "augment.patch_size=64", "--set", "loss.lpips=0", "--set", "train.threads=1")
        load_before = os.getloadavg()
        results, reference = [], None
        for workers in cases:
            out = folder / f"render-{workers}"
            seconds, stdout = shotfit(env, "render", "--run", folder / "run", "--source", plates, "--out", out,
                                      "--device", "cpu", "--workers", str(workers), "--cpus-per-worker", "1")
            reference = reference or digest(out)
            results.append({"workers": workers, "seconds": round(seconds, 2),
                            "frames_per_s": round(args.frames / seconds, 3),
                            "steady_frames_per_s": round(fps, 3) if (fps := steady_fps(out)) else None,
                            "same_bytes_as_first": digest(out) == reference, "said": stdout.strip()})
        first = results[0]
        for row in results:
            row["speedup"] = round(row["frames_per_s"] / first["frames_per_s"], 2)
            if row["steady_frames_per_s"] and first["steady_frames_per_s"]:
                row["steady_speedup"] = round(row["steady_frames_per_s"] / first["steady_frames_per_s"], 2)
        print(json.dumps({"frames": args.frames, "size": args.size, "width": args.width,
                          "cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                          "load_after": [round(x, 2) for x in os.getloadavg()], "cases": results}, indent=2))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
