"""How evenly training patches cover a shot's frame, and how well a trained run renders its border rows.

``coverage``: the trainer's own sampler (:class:`~shotfit.data.augment.PairedAugment` with the default
augmentation, batches seeded by step as the trainer seeds them) draws ``--steps`` batches from a task's
keyframes; each keyframe's mask carries its row (then, with the same draws, its column) number
through crop, warp, flip and turn, and the patches holding rows 0-2, the middle row, columns 0-2 and the
middle column are counted, for each ``augment.placement`` with and without ``data.edit_focus``.

``errors``: a trained run (a ``bench/quality.py`` trial's ``run`` folder) renders the task's scored
frames; the mean absolute error of the top rows, the bottom rows, the left and right columns and the
whole frame against the truth (8-bit codes, as ``bench/quality.py`` scores them).

    python bench/edge_rows.py coverage --task face-markers --out /tmp/bench    # JSON on stdout
    python bench/edge_rows.py errors --task face-markers --out /tmp/bench --run /tmp/bench/trials/.../run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.quality_tasks import Task, prepare_task
from bench.quality_trials import to_8bit
from shotfit.config import Config
from shotfit.data.augment import PairedAugment
from shotfit.data.focus import EditFocus
from shotfit.data.keyframes import keyframes_to_tensors, pair_keyframes
from shotfit.engine.trainer import step_seed
from shotfit.infer.predictor import Predictor, load_network
from shotfit.io import ColourPipeline, colour_of_run, open_shot, resolve_colour
from shotfit.runs.folder import RunFolder

BORDER = 3  # rows 0-2: where the pale line was seen


def coverage(task: Task, steps: int, seed: int, focus_share: float) -> list[dict[str, Any]]:
    """Patches (of ``steps`` x batch) holding the border and middle rows and columns, per placement."""
    cfg = Config()
    shot, keys = open_shot(task.source), open_shot(task.keyframes)
    colour = ColourPipeline(resolve_colour(shot.format, cfg.colour.source, cfg.colour.working, cfg.colour.config))
    keyframes = keyframes_to_tensors(pair_keyframes(shot, keys), colour, torch.device("cpu"))
    count, _, height, width = keyframes.sources.shape
    rows = torch.arange(height, dtype=torch.float32).view(1, 1, height, 1).expand(count, 1, height, width)
    cols = torch.arange(width, dtype=torch.float32).view(1, 1, 1, width).expand(count, 1, height, width)
    results = []
    for placement in ("uniform", "even"):
        for share in sorted({0.0, focus_share}):
            focus = EditFocus.from_keyframes(keyframes.sources, keyframes.targets, None, share)
            sampler = PairedAugment(dataclasses.replace(cfg.augment, placement=placement), focus)
            counts = {"rows 0-2": 0, "middle row": 0, "columns 0-2": 0, "middle column": 0}
            each = {"rows": torch.zeros(height), "columns": torch.zeros(width)}  # patches holding each row, column
            for step in range(steps):
                for name, index, size in (("rows", rows, height), ("columns", cols, width)):
                    generator = torch.Generator().manual_seed(step_seed(seed, step))
                    # the index rides in the mask (never colour-jittered), scaled to [0, 1]
                    _, _, mask = sampler.sample(keyframes.sources, keyframes.targets,
                                                (index / (size - 1)).contiguous(), cfg.data.batch_size, generator)
                    held = mask.flatten(1) * (size - 1)  # bilinear warps blend neighbours: count within half a pixel
                    counts[f"{name} 0-2"] += int((held.amin(dim=1) < BORDER - 0.5).sum())
                    middle = (size - 1) / 2
                    counts[f"middle {name[:-1]}"] += int(((held - middle).abs() <= 0.5).any(dim=1).sum())
                    present = torch.zeros(len(held), size).scatter_(1, held.round().long().clamp(0, size - 1), 1.0)
                    each[name] += present.sum(dim=0)
            patches = steps * cfg.data.batch_size
            results.append({"placement": placement, "edit_focus": share, "patches": patches,
                            "frame": [height, width], "patch": cfg.augment.patch_size, **counts,
                            "rows 0-2 / middle row": round(counts["rows 0-2"] / max(counts["middle row"], 1), 3),
                            "columns 0-2 / middle column":
                                round(counts["columns 0-2"] / max(counts["middle column"], 1), 3),
                            **{f"{name}: fewest, most patches": [int(c.min()), int(c.max())]
                               for name, c in each.items()}})
    return results


def edge_errors(task: Task, run_path: Path, rows: int) -> dict[str, Any]:
    """Mean absolute error (0..1, 8-bit codes) of the border rows and columns and of the whole frame."""
    run = RunFolder(run_path)
    network, _ = load_network(run)
    cfg = run.read_config()
    colour = ColourPipeline(colour_of_run(run.read_info().colour_record()))
    predict = Predictor(network, colour, torch.device("cpu"), cfg.render.tile, cfg.render.tile_overlap,
                        cfg.render.blend)
    sums: dict[str, list[float]] = {"frame": [], "top": [], "bottom": [], "left": [], "right": []}
    with open_shot(task.source) as source, open_shot(task.truth) as truth:
        truths = dict(truth.iter_frames(task.scored))
        for frame, pixels in source.iter_frames(task.scored):
            error = np.abs(to_8bit(predict(pixels[..., :3])) - truths[frame][..., :3]).mean(axis=2)
            for name, part in (("frame", error), ("top", error[:rows]), ("bottom", error[-rows:]),
                               ("left", error[:, :rows]), ("right", error[:, -rows:])):
                sums[name].append(float(part.mean()))
    return {"run": str(run_path), "frames": len(task.scored), "rows": rows,
            **{f"mae_{name}": round(float(np.mean(values)), 5) for name, values in sums.items()}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("coverage", "errors"))
    parser.add_argument("--task", default="face-markers")
    parser.add_argument("--out", type=Path, required=True, help="benchmark folder (the task's files are made there)")
    parser.add_argument("--shared-data", type=Path, default=None)
    parser.add_argument("--max-scored", type=int, default=16)
    parser.add_argument("--steps", type=int, default=270, help="coverage: batches drawn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--focus", type=float, default=0.2, help="coverage: data.edit_focus beside 0")
    parser.add_argument("--run", type=Path, action="append", default=[], help="errors: a trained run folder")
    parser.add_argument("--rows", type=int, default=BORDER, help="errors: border rows and columns counted")
    args = parser.parse_args(argv)
    task = prepare_task(args.task, args.out, args.shared_data, args.max_scored)
    torch.set_num_threads(1)
    if args.what == "coverage":
        result: Any = coverage(task, args.steps, args.seed, args.focus)
    else:
        result = [edge_errors(task, run, args.rows) for run in args.run]
    json.dump({"task": args.task, args.what: result}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
