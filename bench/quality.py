#!/usr/bin/env python
"""Quality against peers: shotfit's default, pix2pix, Texler et al.'s patch-based training and the
identity on real shots with a truth on every frame, under the same step and wall-clock budgets.

    python bench/quality.py [--tasks sample,face-smooth] [--steps N] [--minutes M] [--jobs 2]
                            [--threads 1] [--device cpu|cuda] [--out bench-quality] [--quick]
                            [--set loss.temporal=1 ...]

Prints an estimate of the run's length to stderr, runs every trial not already finished in --out
(each in a process of its own, --jobs at a time), writes OUT/quality.json and prints it to stdout.
See bench.quality_runner for the folder layout and bench.quality_trials for what a trial does.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

# An entry point run as `python bench/quality.py`: the checkout's bench package and its own shotfit,
# whichever one the environment has installed.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

from bench.quality_runner import QualityOptions, estimate_seconds, plan_trials, prepare, run_quality  # noqa: E402
from bench.quality_tasks import DEFAULT_TASKS, TASKS  # noqa: E402
from shotfit.device import pick_device  # noqa: E402
from shotfit.errors import ShotfitError  # noqa: E402

# Sized so the full run (5 tasks, 3 trained methods, both budgets, identity) takes about an hour on a
# 2-core CPU with --jobs 2 --threads 1 (the estimate printed at the start says how long here). Most of
# that hour is rendering and scoring: 16 scored frames a task (8 pairs of every other frame, spread
# over the shot); --max-scored 0 scores every other frame, about 2 h 10 min.
DEFAULT_STEPS = 40
DEFAULT_MINUTES = 1.0
DEFAULT_SCORED = 16
QUICK = {"steps": 2, "minutes": 0.05, "max_scored": 4}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help=f"comma-separated, of: {', '.join(TASKS)}")
    parser.add_argument("--methods", default="shotfit,pix2pix,texler", help="trained methods (the identity always runs)")
    parser.add_argument("--steps", type=int, default=None, help=f"step budget, 0 for none (default {DEFAULT_STEPS})")
    parser.add_argument("--minutes", type=float, default=None,
                        help=f"wall-clock budget, 0 for none (default {DEFAULT_MINUTES:g})")
    parser.add_argument("--jobs", type=int, default=2, help="trials at once (default 2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trial (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-scored", type=int, default=None,
                        help=f"frames scored per task, as pairs spread over the shot; 0 for every other frame "
                             f"(default {DEFAULT_SCORED})")
    parser.add_argument("--out", type=Path, default=Path("bench-quality"), help="benchmark folder (resumable)")
    parser.add_argument("--shared-data", type=Path, default=None,
                        help="the shared footage (default $SHOTFIT_SHARED_DATA or ../shared/data)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a config override for shotfit's trials (repeatable; e.g. loss.temporal=1); give "
                             "each variant its own --out")
    parser.add_argument("--quick", action="store_true",
                        help=f"a tiny budget and {QUICK['max_scored']} scored frames per task (for tests)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    defaults = QUICK if args.quick else {"steps": DEFAULT_STEPS, "minutes": DEFAULT_MINUTES, "max_scored": DEFAULT_SCORED}
    try:
        pick_device(args.device)
        options = QualityOptions(
            out=args.out.resolve(), tasks=tuple(t for t in args.tasks.split(",") if t),
            methods=tuple(m for m in args.methods.split(",") if m),
            steps=defaults["steps"] if args.steps is None else (args.steps or None),
            minutes=defaults["minutes"] if args.minutes is None else (args.minutes or None),
            jobs=args.jobs, threads=args.threads, device=args.device, seed=args.seed,
            max_scored=defaults["max_scored"] if args.max_scored is None else (args.max_scored or None),
            overrides=tuple(args.overrides),
            shared_data=None if args.shared_data is None else args.shared_data.resolve())
        sizes = prepare(options)
        specs = plan_trials(options)
        print(f"quality: {len(specs)} trials ({len(options.tasks)} tasks; budgets: steps={options.steps}, "
              f"minutes={options.minutes}); about {estimate_seconds(specs, sizes, options.jobs) / 60:.0f} min with "
              f"--jobs {options.jobs} on a 2-core CPU (less for trials already finished in {options.out})",
              file=sys.stderr, flush=True)
        combined = run_quality(options, on_event=lambda message: print(f"quality: {message}", file=sys.stderr,
                                                                       flush=True))
    except ShotfitError as err:
        print(f"shotfit: {err}", file=sys.stderr)
        return 1
    print(json.dumps(combined, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
