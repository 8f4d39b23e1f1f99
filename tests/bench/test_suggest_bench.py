"""bench/suggest.py's baseline frames and its summary, with and without the ranking part."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_suggest", REPO / "bench" / "suggest.py")
assert _spec is not None and _spec.loader is not None
suggest_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suggest_bench)


def test_even_frames_are_the_centres_of_equal_stretches_whatever_the_cuts():
    assert suggest_bench.even_frames(list(range(250)), 3) == [41, 125, 208]
    assert suggest_bench.even_frames(list(range(250)), 5) == [25, 75, 125, 175, 225]


def test_the_summary_of_keyframe_comparisons_alone_has_no_ranking_figures():
    results = [{"k3": {"lpips_change_pct": -10.0}, "k5": {"lpips_change_pct": 4.0}},
               {"k3": {"lpips_change_pct": 2.0}, "k5": {"lpips_change_pct": -2.0}}]
    assert suggest_bench.summarise(results, [3, 5]) == {"k3_lpips_change_pct_mean": -4.0,
                                                        "k5_lpips_change_pct_mean": 1.0}
    ranked = [r | {"ranking": {"spearman_predicted": s}, "next_frame": {"top_beats_gap": s > 0.5}}
              for r, s in zip(results, (0.7, 0.3))]
    summary = suggest_bench.summarise(ranked, [3, 5])
    assert summary["spearman_mean"] == 0.5 and summary["top_beats_gap"] == "1/2"
