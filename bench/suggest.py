#!/usr/bin/env python
"""Does ``shotfit suggest`` pick better keyframes than even spacing, and does its post-run ranking find the
frames that are really worst? On tasks with a truth on every frame (bench.quality_tasks).

    python bench/suggest.py [--tasks sample] [--counts 3,5] [--steps 150] [--seeds 0] [--threads 1]
                            [--max-scored N] [--set model.width=16 ...] [--no-ranking] [--out bench-suggest]

For each task and seed:

- **keyframes**: for each K, train the same short recipe (same steps, same seed) from the K frames
  ``suggest`` picks and from K evenly spaced frames (the centre of each of K equal stretches), the edited
  frames taken from the truth; score the held-out LPIPS on every frame neither set painted (or
  ``--max-scored`` of them, evenly spread).
- **ranking**: on the even K=3 run, ``suggest --run`` ranks the unpainted frames; Spearman of its predicted
  error (and of each of its two signs alone) against the real per-frame LPIPS.
- **next frame**: train again from the even K=3 frames plus the top-ranked frame, and plus the middle of
  the largest gap between keyframes; held-out LPIPS of both on the frames none of the three runs painted.

``--no-ranking`` keeps the keyframe comparison alone (another seed of it costs two trainings a K, not six).

Runs are kept in --out (a finished one is reused). Prints the JSON and writes OUT/suggest.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from bench.quality_tasks import Task, prepare_task  # noqa: E402
from shotfit import api  # noqa: E402
from shotfit.api.sample import SAMPLE_OVERRIDES  # noqa: E402
from shotfit.evaluate.metrics import lpips  # noqa: E402
from shotfit.files import write_text_atomic  # noqa: E402
from shotfit.infer.predictor import Predictor, load_network  # noqa: E402
from shotfit.io import ColourPipeline, colour_of_run, open_shot  # noqa: E402
from shotfit.losses.lpips import load_lpips  # noqa: E402
from shotfit.runs.folder import RunFolder  # noqa: E402
from shotfit.suggest.choose import largest_gap_middle  # noqa: E402

log = logging.getLogger("bench.suggest")
BOOKKEEPING = ("train.preview_every=1000000000", "train.checkpoint_every=1000000000", "train.checkpoint_minutes=0")


def even_frames(frames: list[int], count: int) -> list[int]:
    """The centre frame of each of ``count`` equal stretches of the shot."""
    return [frames[min(len(frames) - 1, int((i + 0.5) * len(frames) / count))] for i in range(count)]


def spread(frames: list[int], count: int | None) -> list[int]:
    if count is None or count >= len(frames):
        return list(frames)
    return [frames[round(i * (len(frames) - 1) / (count - 1))] for i in range(count)]


class Bench:
    """One task, one seed: trains from keyframe sets (cached by name) and scores them."""

    def __init__(self, task: Task, folder: Path, steps: int, seed: int, threads: int, max_scored: int | None,
                 overrides: tuple[str, ...] = ()):
        self.task, self.folder, self.steps, self.seed, self.threads = task, folder, steps, seed, threads
        self.overrides = overrides
        with open_shot(task.source) as shot:
            self.frames = shot.frames
        self.pool = spread(self.frames, max_scored)
        self.lpips_net = load_lpips()
        self.timings: dict[str, float] = {}

    def train(self, name: str, keyframes: list[int]) -> Path:
        """A run trained from the truth's ``keyframes``; reused when already finished."""
        folder = self.folder / name
        run = folder / "run"
        if (run / "model.pt").is_file() and (folder / "keys.json").is_file() \
                and json.loads((folder / "keys.json").read_text()) == sorted(keyframes):
            return run
        shutil.rmtree(folder, ignore_errors=True)
        keys = folder / "keys"
        keys.mkdir(parents=True)
        with open_shot(self.task.truth) as truth:
            for frame in keyframes:
                shutil.copy(truth.file(frame), keys / truth.file(frame).name)
        overrides = (*SAMPLE_OVERRIDES, *BOOKKEEPING, f"train.threads={self.threads}", f"train.seed={self.seed}",
                     *self.overrides)
        started = time.monotonic()
        api.train(self.task.source, keys, run, overrides=overrides, steps=self.steps, device="cpu",
                  tracking=api.TrackingOptions(enabled=False))
        self.timings[name] = round(time.monotonic() - started, 1)
        (folder / "keys.json").write_text(json.dumps(sorted(keyframes)))
        return run

    def errors(self, run: Path, frames: list[int]) -> dict[int, float]:
        """Real LPIPS of the run's 8-bit output against the truth, per frame."""
        folder = RunFolder(run)
        cfg = folder.read_config()
        network, _ = load_network(folder)
        colour = ColourPipeline(colour_of_run(folder.read_info().colour_record()))
        predictor = Predictor(network, colour, torch.device("cpu"), cfg.render.tile, cfg.render.tile_overlap,
                              cfg.render.blend)
        out = {}
        with open_shot(self.task.source) as source, open_shot(self.task.truth) as truth:
            for frame in frames:
                pred = np.rint(np.clip(predictor(source.read(frame)[..., :3]), 0, 1) * 255) / 255
                out[frame] = lpips(pred.astype(np.float32), truth.read(frame)[..., :3], self.lpips_net)
        return out

    def held_out(self, *painted: list[int]) -> list[int]:
        used = {f for keys in painted for f in keys}
        return [f for f in self.pool if f not in used]

    def keyframes(self, count: int) -> dict[str, Any]:
        suggested = [f.frame for f in api.suggest(api.SuggestRequest(self.task.source, count=count,
                                                                     device="cpu")).frames]
        even = even_frames(self.frames, count)
        frames = self.held_out(suggested, even)
        scores = {}
        for label, keys in (("suggested", suggested), ("even", even)):
            errors = self.errors(self.train(f"{label}-{count}", keys), frames)
            scores[label] = float(np.mean(list(errors.values())))
        return {"suggested": sorted(suggested), "even": even, "held_out_frames": len(frames),
                "lpips_suggested": round(scores["suggested"], 5), "lpips_even": round(scores["even"], 5),
                "lpips_change_pct": round(100 * (scores["suggested"] / scores["even"] - 1), 2)}

    def ranking_and_next(self, base_count: int = 3) -> dict[str, Any]:
        base_keys = even_frames(self.frames, base_count)
        base = self.train(f"even-{base_count}", base_keys)
        started = time.monotonic()
        ranked = api.suggest(api.SuggestRequest(self.task.source, run=base, device="cpu",
                                                json_path=self.folder / "ranking.json")).frames
        rank_seconds = time.monotonic() - started
        scored = [f for f in ranked if f.frame in set(self.pool)]
        real = self.errors(base, [f.frame for f in scored])
        write_text_atomic(self.folder / "real-even3.json",  # beside ranking.json: bench/suggest_replay.py reads both
                          json.dumps({str(frame): value for frame, value in real.items()}) + "\n")
        truth = [real[f.frame] for f in scored]

        def rho(values: list[float | None]) -> float:
            return round(float(spearmanr(values, truth).statistic), 4)

        top = ranked[0].frame
        index_of = {f: i for i, f in enumerate(self.frames)}
        gap = self.frames[largest_gap_middle([index_of[f] for f in base_keys], len(self.frames))]
        if gap == top:  # the same frame: no comparison to make, say so
            return self._ranking(rho, scored, rank_seconds) | {"next_frame": {"top_ranked": top, "gap_middle": gap,
                                                                             "same_frame": True}}
        frames = self.held_out(base_keys, [top, gap])
        base_lpips = float(np.mean(list(self.errors(base, frames).values())))
        with_top = float(np.mean(list(self.errors(self.train("even-3+top", [*base_keys, top]), frames).values())))
        with_gap = float(np.mean(list(self.errors(self.train("even-3+gap", [*base_keys, gap]), frames).values())))
        return self._ranking(rho, scored, rank_seconds) | {"next_frame": {
            "top_ranked": top, "gap_middle": gap, "held_out_frames": len(frames), "lpips_base": round(base_lpips, 5),
            "lpips_with_top": round(with_top, 5), "lpips_with_gap": round(with_gap, 5),
            "improvement_top": round(base_lpips - with_top, 5), "improvement_gap": round(base_lpips - with_gap, 5),
            "top_beats_gap": with_top < with_gap}}

    def _ranking(self, rho: Any, scored: list[Any], seconds: float) -> dict[str, Any]:
        return {"ranking": {"run": "even-3", "frames": len(scored), "seconds": round(seconds, 1),
                            "spearman_predicted": rho([f.predicted_error for f in scored]),
                            "spearman_flip_disagreement": rho([f.disagreement for f in scored]),
                            "spearman_keyframe_distance": rho([f.distance for f in scored])}}


def summarise(results: list[dict[str, Any]], counts: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for count in counts:
        changes = [r[f"k{count}"]["lpips_change_pct"] for r in results]
        summary[f"k{count}_lpips_change_pct_mean"] = round(float(np.mean(changes)), 2)
    ranked = [r for r in results if "ranking" in r]
    if not ranked:
        return summary
    summary["spearman_mean"] = round(float(np.mean([r["ranking"]["spearman_predicted"] for r in ranked])), 4)
    nexts = [r["next_frame"] for r in ranked if "top_beats_gap" in r["next_frame"]]
    summary["top_beats_gap"] = f"{sum(n['top_beats_gap'] for n in nexts)}/{len(nexts)}"
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="suggested vs evenly spaced keyframes; ranking vs real error")
    parser.add_argument("--tasks", default="sample")
    parser.add_argument("--counts", default="3,5")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-scored", type=int, default=None, help="held-out pool: this many frames, spread")
    parser.add_argument("--out", type=Path, default=Path("bench-suggest"))
    parser.add_argument("--shared-data", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], help="a config override on top of the sample's recipe")
    parser.add_argument("--no-ranking", action="store_true", help="compare keyframe sets only: no ranking, no next frame")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)  # an entry point: the process is ours
    counts = [int(c) for c in args.counts.split(",")]
    started, load_before = time.monotonic(), os.getloadavg()
    results = []
    for name in args.tasks.split(","):
        task = prepare_task(name, args.out.resolve(), args.shared_data)
        for seed in (int(s) for s in args.seeds.split(",")):
            bench = Bench(task, args.out.resolve() / "runs" / name / f"seed{seed}", args.steps, seed, args.threads,
                          args.max_scored, tuple(args.set))
            result: dict[str, Any] = {"task": name, "seed": seed, "frames": len(bench.frames)}
            for count in counts:
                result[f"k{count}"] = bench.keyframes(count)
                log.info("%s seed %d K=%d: %s", name, seed, count, result[f"k{count}"])
            if not args.no_ranking:
                result.update(bench.ranking_and_next())
            result["train_seconds"] = bench.timings
            log.info("%s seed %d: %s", name, seed, result)
            results.append(result)
    combined = {"settings": {"steps": args.steps, "counts": counts, "threads": args.threads,
                             "recipe": [*SAMPLE_OVERRIDES, *args.set], "max_scored": args.max_scored,
                             "even": "centre of each of K equal stretches"},
                "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                            "load_average_after": [round(x, 2) for x in os.getloadavg()],
                            "seconds": round(time.monotonic() - started, 1), "torch": torch.__version__},
                "summary": summarise(results, counts), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "suggest.json", json.dumps(combined, indent=1) + "\n")
    print(json.dumps(combined, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
