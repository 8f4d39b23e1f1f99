#!/usr/bin/env python
"""The post-run ranking's score replayed on runs bench/suggest.py kept, with no training or rendering: how
well each form of the score would have ranked the real per-frame error.

    python bench/suggest_replay.py OUT/runs/TASK/seedN [...] [--alien 1,2,3]

Each folder holds what bench/suggest.py left there: ``ranking.json`` (``suggest --run`` on the even K = 3
run: each unpainted frame's flip disagreement and distance to a keyframe) and ``real-even3.json`` (that
run's real LPIPS on the scored frames). For each folder, the Spearman correlation with the real error of
the flips alone, the distance alone, and the shipped score (:func:`shotfit.suggest.confidence.predicted_error`)
at each ``--alien`` threshold; and how far the furthest frame lay, in interquartile ranges. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(path) for path in (_ROOT / "src", _ROOT) if path.is_dir()]

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from shotfit.errors import ShotfitError  # noqa: E402
from shotfit.suggest.confidence import ALIEN_DISTANCE, predicted_error  # noqa: E402


def replay(folder: Path, thresholds: list[float]) -> dict[str, Any]:
    """The Spearman figures of one kept run (see the module's docstring)."""
    try:
        ranked = json.loads((folder / "ranking.json").read_text())["frames"]
        real = json.loads((folder / "real-even3.json").read_text())
    except (OSError, ValueError, KeyError) as err:
        raise ShotfitError(f"{folder} holds no ranking.json and real-even3.json of bench/suggest.py ({err})") from None
    disagreement = np.array([f["disagreement"] for f in ranked], float)
    distance = np.array([f["distance"] for f in ranked], float)
    scored = [i for i, f in enumerate(ranked) if str(f["frame"]) in real]
    truth = [real[str(ranked[i]["frame"])] for i in scored]

    def rho(values: np.ndarray) -> float:
        return round(float(spearmanr(values[scored], truth).statistic), 4)

    low, middle, high = np.percentile(distance, [25, 50, 75])
    return {"folder": str(folder), "frames": len(scored),
            "furthest_iqr": round(float((distance.max() - middle) / (high - low)), 2) if high > low else None,
            "flips_alone": rho(disagreement), "distance_alone": rho(distance),
            "score": {str(t): rho(predicted_error(disagreement, distance, t)) for t in thresholds}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="replay suggest's ranking score on bench/suggest.py's kept runs")
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--alien", default=f"1,{ALIEN_DISTANCE:g},3", help="thresholds, in interquartile ranges")
    args = parser.parse_args(argv)
    try:
        results = [replay(folder, [float(t) for t in args.alien.split(",")]) for folder in args.folders]
    except ShotfitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"shipped_alien": ALIEN_DISTANCE, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
