#!/usr/bin/env python
"""The temporal term on the quality benchmark's tasks: finished ``bench/quality.py`` runs of shotfit
(one per ``loss.temporal`` weight, same seed and steps) side by side, with the warping error along
one frame of motion added.

    python bench/temporal_tasks.py --run 0=bench-quality-w0 --run 3=bench-quality-w3 [--out rows.json]

``bench/quality.py`` scores every other frame, so its warping error follows two frames of motion
(t -> t+2; one frame on the bedroom clip, which keeps every other frame). Lai et al.'s warping error,
and the temporal term itself, follow one: for the first frame t of every scored pair this script
renders t and the shot's next frame with each run's final weights (rounded to 8-bit codes, as the
benchmark does) and scores the pair along the source's own flow (``warping_error_next``), beside the
untouched plate's and the truth's own (``warping_error_next_truth``, on the plate's row). The source's
flows are measured once per task and shared by the runs. Prints the rows as JSON (the layout of
``docs/quality/*.json``) and writes them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.quality_tasks import Task, prepare_task  # noqa: E402
from bench.quality_trials import RESULT, to_8bit  # noqa: E402
from shotfit.data.flow import FlowPair, flow_between  # noqa: E402
from shotfit.errors import ShotfitError, quoted  # noqa: E402
from shotfit.evaluate.warping import pair_warping_error  # noqa: E402
from shotfit.files import write_text_atomic  # noqa: E402
from shotfit.infer.predictor import Predictor, load_network  # noqa: E402
from shotfit.io import ColourPipeline, colour_of_run, open_shot  # noqa: E402
from shotfit.runs.folder import RunFolder  # noqa: E402

Predict = Callable[[np.ndarray], np.ndarray]
SCORES = ("psnr", "ssim", "lpips", "warping_error", "warping_error_truth", "frames", "pairs")


def next_frame_pairs(task: Task, frames: Sequence[int]) -> list[tuple[int, int]]:
    """For the first frame of each of the task's scored pairs, that frame and the shot's next one."""
    following = dict(zip(frames, frames[1:]))
    return [(first, following[first]) for first, _ in task.pairs if first in following]


def source_flows(task: Task) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray, FlowPair]]:
    """The source's frames and flow for every :func:`next_frame_pairs` pair (the evaluator's settings)."""
    shot = open_shot(task.source)
    flows = {}
    for first, second in next_frame_pairs(task, shot.frames):
        plate, next_plate = shot.read(first)[..., :3], shot.read(second)[..., :3]
        flows[(first, second)] = (plate, next_plate, flow_between(plate, next_plate, preset="medium",
                                                                  occlusion="lai"))
    return flows


def next_frame_warping_error(flows: Mapping[tuple[int, int], tuple[np.ndarray, np.ndarray, FlowPair]],
                             predict: Predict) -> float | None:
    """Mean warping error of ``predict``'s 8-bit outputs over the one-frame pairs; None if none is usable."""
    errors = [pair_warping_error(to_8bit(predict(plate)), to_8bit(predict(next_plate)), flow)
              for plate, next_plate, flow in flows.values()]
    kept = [e for e in errors if np.isfinite(e)]
    return float(np.mean(kept)) if kept else None


def truth_next_frame_warping_error(task: Task, flows: Mapping[tuple[int, int], tuple[np.ndarray, np.ndarray, FlowPair]]
                                   ) -> float | None:
    """The truth's own one-frame warping error over the same pairs and flow (8-bit, as the outputs are scored):
    what the outputs would score if they matched the truth, steady or not."""
    truth = open_shot(task.truth)
    errors = [pair_warping_error(to_8bit(truth.read(first)[..., :3]), to_8bit(truth.read(second)[..., :3]), flow)
              for (first, second), (_, _, flow) in flows.items()]
    kept = [e for e in errors if np.isfinite(e)]
    return float(np.mean(kept)) if kept else None


def run_predictor(run_path: Path) -> Predict:
    """A finished run's final weights as frame -> frame, rendered as ``bench/quality.py`` renders them."""
    run = RunFolder(run_path)
    cfg = run.read_config()
    network, _ = load_network(run)
    colour = ColourPipeline(colour_of_run(run.read_info().colour_record()))
    return Predictor(network, colour, torch.device("cpu"), cfg.render.tile, cfg.render.tile_overlap, cfg.render.blend)


def rows_for(runs: Mapping[str, Path], tasks: Sequence[str] | None = None, next_frame: bool = True
             ) -> list[dict[str, Any]]:
    """One row per task for the untouched plate and one per run (the first run is the one without);
    ``next_frame=False`` leaves out the one-frame warping error (no rendering, seconds instead of minutes).

    Reads each trial's own ``result.json``, so a task can be reported as soon as its trials are done,
    before ``bench/quality.py`` has written the combined JSON.
    """
    first_label, first_out = next(iter(runs.items()))
    rows = []
    for task_name in tasks or sorted(p.name for p in (first_out / "trials").iterdir()):
        plate = _result(first_out, task_name, "identity")
        task = prepare_task(task_name, first_out, max_scored=plate["spec"]["max_scored"]) if next_frame else None
        flows = source_flows(task) if task is not None else {}
        plate_next = next_frame_warping_error(flows, lambda pixels: pixels)
        rows.append({"task": task_name, "run": "untouched plate", "steps": 0, "overrides": [],
                     **{k: plate["scores"].get(k) for k in SCORES}, "warping_error_next": plate_next,
                     "warping_error_next_truth": None if task is None else truth_next_frame_warping_error(task, flows),
                     "next_pairs": len(flows)})
        without: dict[str, Any] | None = None
        for label, out in runs.items():
            result = _result(out, task_name, "shotfit")
            if result["spec"]["max_scored"] != plate["spec"]["max_scored"]:
                raise ShotfitError(f"{quoted(out)} scores other frames of {task_name!r} than {quoted(first_out)}")
            error = next_frame_warping_error(flows, run_predictor(Path(result["run"]))) if flows else None
            entry = {"task": task_name, "run": f"loss.temporal={label}", "steps": result["train"]["steps"],
                     "overrides": result["spec"]["overrides"],
                     "train_seconds_on_a_loaded_box": result["train"]["seconds"],
                     **{k: result["scores"].get(k) for k in SCORES}, "warping_error_next": error,
                     "next_pairs": len(flows)}
            entry.update(_ratios(entry, without, plate["scores"], plate_next))
            without = without or entry
            rows.append(entry)
    return rows


def _result(out: Path, task: str, method: str) -> dict[str, Any]:
    """The one finished trial of ``method`` on ``task`` in a quality folder (with its run folder's path)."""
    found = sorted((out / "trials" / task).glob(f"*/{method}/{RESULT}"))
    if len(found) != 1:
        raise ShotfitError(f"{quoted(out / 'trials' / task)} holds {len(found)} finished {method} trials; "
                           "give each budget its own folder")
    return {**json.loads(found[0].read_text(encoding="utf-8")), "run": str(found[0].parent / "run")}


def _ratios(entry: Mapping[str, Any], without: Mapping[str, Any] | None, plate: Mapping[str, Any],
            plate_next: float | None) -> dict[str, Any]:
    """Warping errors against the run without the term and the plate's own; PSNR and LPIPS against without."""
    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or not b else round(a / b, 4)

    out = {"warping_error_vs_plate": ratio(entry["warping_error"], plate.get("warping_error")),
           "warping_error_next_vs_plate": ratio(entry["warping_error_next"], plate_next)}
    if without is not None:
        out.update(psnr_change_db=round(entry["psnr"] - without["psnr"], 3),
                   lpips_vs_without=ratio(entry["lpips"], without["lpips"]),
                   warping_error_vs_without=ratio(entry["warping_error"], without["warping_error"]),
                   warping_error_next_vs_without=ratio(entry["warping_error_next"], without["warping_error_next"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--run", action="append", required=True, metavar="WEIGHT=FOLDER",
                        help="a bench/quality.py --out folder of shotfit under one budget and its loss.temporal; "
                             "the first is the one without the term (repeatable)")
    parser.add_argument("--tasks", default="", help="comma-separated (default: every task in the first folder)")
    parser.add_argument("--no-next-frame", action="store_true",
                        help="leave out the one-frame warping error (it renders two frames a scored pair)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    try:
        runs = {}
        for item in args.run:
            label, sep, folder = item.partition("=")
            if not sep or not (Path(folder) / "trials").is_dir():
                raise ShotfitError(f"--run {item!r}: give WEIGHT=FOLDER, a bench/quality.py --out folder")
            runs[label] = Path(folder).resolve()
        rows = rows_for(runs, [t for t in args.tasks.split(",") if t] or None, not args.no_next_frame)
    except ShotfitError as err:
        print(f"shotfit: {err}", file=sys.stderr)
        return 1
    text = json.dumps(rows, indent=1, allow_nan=False)
    if args.out is not None:
        write_text_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
