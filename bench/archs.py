#!/usr/bin/env python
"""``shotfit bench archs`` on a named shot: the sample, or a clip of the team's shared footage.

    python bench/archs.py --shot bedroom-whitebalance [--steps N] [--minutes M] [--seeds K]
                          [--archs a,b] [--set section.key=value] [--threads 1] [--out bench-archs/SHOT]

The shared clips are third-party and partly non-commercial, so they stay out of the product: this
script links the frames a preset needs (bench.presets) and runs the product's comparison on them
(:func:`shotfit.api.bench_archs`), with the same options as ``shotfit bench archs``. Prints the
report's table and where its files are.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# An entry point run as `python bench/archs.py`: the checkout's bench package and its own shotfit,
# whichever one the environment has installed.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

from bench.presets import PRESETS, preset_shot  # noqa: E402
from shotfit import api  # noqa: E402
from shotfit.device import configure_threads  # noqa: E402
from shotfit.errors import ConfigError, ShotfitError  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`"))
    parser.add_argument("--shot", default="sample", help=f"a named shot, of: {', '.join(PRESETS)} (default sample)")
    parser.add_argument("--shared-data", type=Path, default=None,
                        help="the shared footage (default $SHOTFIT_SHARED_DATA or ../shared/data)")
    parser.add_argument("--out", type=Path, default=None,
                        help="benchmark folder (default bench-archs/SHOT); finished sweeps in it are not run again")
    parser.add_argument("--archs", default=None, help="comma-separated networks (default: all)")
    parser.add_argument("--steps", type=int, default=300, help="step budget per network (0: none, with --minutes)")
    parser.add_argument("--minutes", type=float, default=None, help="also a wall-clock budget per network")
    parser.add_argument("--seeds", type=int, default=2, help="trials per network and budget (default 2)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="override a config value for every network: section.key=value")
    parser.add_argument("--report", type=Path, default=None,
                        help="folder for archs.md, archs.csv and archs.png (default: --out)")
    parser.add_argument("--render-size", default="1280x720", help="WIDTHxHEIGHT of the frame whose render is timed")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads while measuring costs (default: torch's)")
    parser.add_argument("--remeasure", action="store_true", help="measure costs again")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: measure costs and rewrite the report from the trials already there")
    parser.add_argument("--cpus-per-trial", type=int, default=None, help="threads per trial")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--no-track", action="store_true", help="do not track the runs in MLflow and TensorBoard")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI"),
                        help="MLflow tracking server or store (default $MLFLOW_TRACKING_URI, or sqlite beside each run)")
    parser.add_argument("--experiment", default="shotfit", help="MLflow experiment name (default shotfit)")
    return parser.parse_args(argv)


def render_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` -> (720, 1280), as (height, width)."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise ConfigError(f"--render-size {text!r} must be WIDTHxHEIGHT, e.g. 1920x1080")
    return int(height), int(width)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        size = render_size(args.render_size)
        if args.threads is not None and args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        folder = args.out or Path("bench-archs") / args.shot
        shot = preset_shot(args.shot, folder.resolve(), args.shared_data)
        if args.threads is not None:
            configure_threads(args.threads)  # the costs are measured in this process; each trial sets its own
        tracking = api.TrackingOptions(enabled=not args.no_track, uri=args.tracking_uri, experiment=args.experiment)
        result = api.bench_archs(shot, folder, archs=args.archs.split(",") if args.archs else None,
                                 steps=args.steps or None, minutes=args.minutes, seeds=args.seeds,
                                 overrides=args.overrides, report_dir=args.report, render_size=size,
                                 remeasure=args.remeasure, train=not args.report_only, tracking=tracking,
                                 cpus_per_trial=args.cpus_per_trial, device=args.device,
                                 on_stage=lambda stage: print(stage, file=sys.stderr, flush=True))
    except ShotfitError as err:
        print(f"shotfit: {err}", file=sys.stderr)
        return 1
    print(result.report["md"].read_text(encoding="utf-8"))
    print(f"table: {result.report['md']}; every number: {result.report['csv']}; figure: {result.report['png']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
