#!/usr/bin/env python
"""Render and training speed of shotfit's defaults beside a naive baseline and the machine's peak; JSON out.

    python bench/speed.py                          # everything, on this machine's default device
    python bench/speed.py --run RUN --frame F.jpg  # a trained network and a real frame (the code-value
                                                   # differences mean most on those)
    python bench/speed.py --quick                  # seconds: tiny sizes, for a smoke test
    python bench/speed.py --skip peak,render,train,memory   # only training beside a busy core

Prints one JSON object (and writes it to --out when given). docs/performance.md reads these numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# An entry point run as `python bench/speed.py`: the checkout's bench package and its own shotfit,
# whichever one the environment has installed.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import speed_harness as speed  # noqa: E402
from bench.speed_contention import measure_contention  # noqa: E402
from bench.speed_training import measure_training  # noqa: E402
from shotfit.archs import build_network, resolve_network_args  # noqa: E402
from shotfit.config import Config, apply_overrides  # noqa: E402
from shotfit.device import configure_threads, pick_device  # noqa: E402
from shotfit.errors import ShotfitError  # noqa: E402
from shotfit.files import write_text_atomic  # noqa: E402
from shotfit.infer.predictor import load_network  # noqa: E402
from shotfit.io import open_shot, read_image  # noqa: E402
from shotfit.runs.folder import RunFolder  # noqa: E402
from shotfit.sample_footage import sample_video  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--run", type=Path, help="a trained run whose network to time (default: the default "
                        "network, untrained, with a random last layer so its output is not the input)")
    parser.add_argument("--frame", type=Path, help="an image to render, resized to each size (default: the "
                        "sample's first clean frame)")
    parser.add_argument("--keyframes", type=Path, nargs=2, metavar=("SOURCES", "EDITED"),
                        help="folders of frames to train on (default: the sample's four keyframes)")
    parser.add_argument("--sizes", default="1080p,4K", help="render sizes (1080p, 4K, 8K)")
    parser.add_argument("--other-tiles", default="", help="also render with these tile sizes (e.g. 4096)")
    parser.add_argument("--memory-sizes", default="4K,8K", help="sizes whose peak memory is measured ('' skips)")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats after one warm-up")
    parser.add_argument("--curve-steps", type=int, default=60, help="training steps of the loss-curve check (0 skips)")
    parser.add_argument("--contention-policies", default="old,new", help="thread policies trained quiet and beside "
                        "a busy core (old, new, THREADS:WAIT; bench/speed_contention.py)")
    parser.add_argument("--contention-rounds", type=int, default=3, help="quiet and loaded phases per policy")
    parser.add_argument("--contention-seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: peak, render, train, "
                        "contention, memory")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and networks, for a smoke test")
    parser.add_argument("--out", type=Path, help="also write the JSON there")
    args = parser.parse_args(argv)

    try:
        device = pick_device(args.device)
        configure_threads(args.threads)
        cfg = Config()
        scale = 1.0
        if args.quick:
            cfg = apply_overrides(cfg, ["model.width=8", "model.depth=2", "augment.patch_size=32", "data.batch_size=2",
                                        "render.tile=512"])
            scale = 1 / 16
        network = _network(args.run, cfg)
        image = _image(args.frame)
        skip = set(filter(None, args.skip.split(",")))
        result: dict = {"machine": speed.machine(device), "network": str(args.run or "default, untrained"),
                        "flops_per_pixel": round(speed.flops_per_pixel(network.to(device).eval(), device))}
        peaks: dict[str, float] = {}
        if "peak" not in skip:
            result["peak"] = {}
            for precision in speed.precisions(device):
                conv = speed.conv_peak(device, precision, args.repeats, scale=scale if args.quick else 1.0)
                matmul = speed.matmul_peak(device, precision, 256 if args.quick else 4096, args.repeats)
                result["peak"][precision] = {"conv": conv, "matmul_gflops": matmul}
                peaks[precision] = conv["gflops"]
            _save(args.out, result)
        if "render" not in skip:
            sizes = [s for s in args.sizes.split(",") if s]
            result["render"] = speed.measure_render(network, image, device, cfg, sizes, args.repeats, peaks,
                                                    scale=scale,
                                                    other_tiles=tuple(int(t) for t in args.other_tiles.split(",") if t))
            _save(args.out, result)
        if "train" not in skip:
            result["train"] = measure_training(cfg, device, args.repeats,
                                               min(args.curve_steps, 6) if args.quick else args.curve_steps,
                                               args.keyframes)
            _save(args.out, result)
        if "contention" not in skip and device.type == "cpu":
            result["contention"] = measure_contention(args.contention_policies.split(","),
                                                      1 if args.quick else args.contention_rounds,
                                                      1.0 if args.quick else args.contention_seconds, quick=args.quick)
            _save(args.out, result)
        if "memory" not in skip and args.memory_sizes and not args.quick:
            result["memory"] = speed.measure_memory(args.memory_sizes.split(","), args.device)
    except ShotfitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    _save(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


def _save(path: Path | None, result: dict) -> None:
    """Write what is measured so far (a long run stopped early keeps its finished parts)."""
    if path is not None:
        write_text_atomic(path, json.dumps(result, indent=2) + "\n")


def _network(run: Path | None, cfg: Config) -> torch.nn.Module:
    if run is not None:
        return load_network(RunFolder(run))[0]
    torch.manual_seed(0)
    network = build_network(cfg.model.arch, **resolve_network_args(cfg.model.arch, dict(cfg.model.args)))
    for module in network.modules():  # the residual head starts at zero, which would make the output the input
        if getattr(module, "weight", None) is not None and module is getattr(network, "head", None):
            torch.nn.init.normal_(module.weight, std=0.05)
    return network


def _image(path: Path | None) -> np.ndarray:
    if path is not None:
        return read_image(path)[0][..., :3]
    with open_shot(sample_video("carphone_pristine.mp4")) as video:
        return video.read(0)[..., :3]


if __name__ == "__main__":
    sys.exit(main())
