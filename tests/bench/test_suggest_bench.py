"""bench/suggest.py's baseline frames and its summary, with and without the ranking part."""

from __future__ import annotations

import importlib.util
import json
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


def _replay_module():
    spec = importlib.util.spec_from_file_location("bench_suggest_replay", REPO / "bench" / "suggest_replay.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_replay_ranks_a_kept_run_by_each_form_of_the_score(tmp_path: Path, capsys):
    # eight frames: the real error follows the flips, the distance runs against it, and frame 8 lies far
    # beyond every other frame, which only the thresholds below its distance raise to the top
    flips = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.15]
    distance = [0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 5.0]
    real = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.9]
    (tmp_path / "ranking.json").write_text(json.dumps({"frames": [
        {"frame": f + 1, "disagreement": u, "distance": d} for f, (u, d) in enumerate(zip(flips, distance))]}))
    (tmp_path / "real-even3.json").write_text(json.dumps({str(f + 1): e for f, e in enumerate(real)}))
    replay = _replay_module()
    assert replay.main([str(tmp_path), "--alien", "1000,2"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["frames"] == 8 and run["furthest_iqr"] > 10
    # the flips alone rank frame 8 second of eight (the worst is last): 1 - 6 * (6 * 1 + 6**2) / (8 * 63)
    assert run["flips_alone"] == run["score"]["1000.0"] == 0.5
    assert run["score"]["2.0"] == 1.0 and run["distance_alone"] < 0


def test_the_replay_of_a_folder_bench_suggest_did_not_fill_is_one_line(tmp_path: Path, capsys):
    assert _replay_module().main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path} holds no ranking.json") and err.count("\n") == 1
