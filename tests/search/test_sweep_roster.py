"""Which trials a sweep runs, known from the sweep file alone: what ``--resume`` relies on instead of Ray
Tune's pickled experiment. No Ray here: the sweep is parsed, its roster drawn, records written by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shotfit.errors import RunError
from shotfit.search.roster import draw, has_roster, progress, search_roster, top_k_roster
from shotfit.search.spec import parse_sweep
from shotfit.search.values import settings_text

SHOT = {"source": "/shot/plate", "keyframes": "/shot/kf"}


def spec_of(**data):
    return parse_sweep({"name": "tiny", **SHOT, **data}, Path("/sweeps/tiny.yaml"))


def test_a_grid_runs_every_combination_once_named_in_order_its_first_key_varying_fastest():
    spec = spec_of(space={"loss.l1": [0.5, 1.0], "train.lr": [0.01, 0.00001]})
    roster = search_roster(spec, base_seed=0)
    assert [t.name for t in roster] == ["trial-000", "trial-001", "trial-002", "trial-003"]
    assert [dict(t.values) for t in roster] == [{"loss.l1": 0.5, "train.lr": 0.01}, {"loss.l1": 1.0, "train.lr": 0.01},
                                               {"loss.l1": 0.5, "train.lr": 0.00001},
                                               {"loss.l1": 1.0, "train.lr": 0.00001}]
    assert roster[0].overrides == ("loss.l1=0.5", "train.lr=0.01")
    seeded = search_roster(spec_of(space={"loss.l1": [0.5, 1.0]}, samples=2), base_seed=7)
    assert [dict(t.values) for t in seeded] == [{"loss.l1": 0.5, "train.seed": 7}, {"loss.l1": 1.0, "train.seed": 7},
                                               {"loss.l1": 0.5, "train.seed": 8}, {"loss.l1": 1.0, "train.seed": 8}]


def test_named_trials_keep_their_names_and_with_samples_get_one_per_seed():
    trials = [{"name": "l1-only", "set": ["loss.lpips=0"]}, {"name": "hybrid", "set": []}]
    assert [t.name for t in search_roster(spec_of(trials=trials), 0)] == ["l1-only", "hybrid"]
    seeded = search_roster(spec_of(trials=trials, samples=2), base_seed=3)
    assert [t.name for t in seeded] == ["l1-only-seed3", "l1-only-seed4", "hybrid-seed3", "hybrid-seed4"]
    assert seeded[1].overrides == ("loss.lpips=0", "train.seed=4")
    assert dict(seeded[1].values) == {"loss.lpips": 0, "train.seed": 4}


def test_a_random_search_draws_the_same_trials_for_its_seed_in_any_process_and_others_for_another():
    space = {"train.lr": {"loguniform": [1e-4, 1e-2]}, "model.width": {"randint": [4, 6]},
             "loss.l1": {"choice": [0.5, 1, 2]}, "loss.ssim": {"uniform": [0, 1]},
             "data.batch_size": {"lograndint": [1, 8]}}
    spec = spec_of(strategy="random", samples=40, seed=11, space=space)
    drawn = [dict(t.values) for t in search_roster(spec, 0)]
    assert drawn == [dict(t.values) for t in search_roster(spec, 0)]
    # another interpreter (a resumed sweep is another process): the same numbers, to the bit
    code = ("import json; from shotfit.search.roster import draw; from shotfit.search.spec import parse_sweep; "
            f"s = parse_sweep({json.dumps({'name': 'tiny', **SHOT, 'strategy': 'random', 'space': space})}, "
            "__import__('pathlib').Path('/x.yaml')); print(json.dumps(draw(s.space, 40, 11)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(other.stdout) == drawn
    assert drawn != draw(spec.space, 40, 12)
    assert all(1e-4 <= d["train.lr"] <= 1e-2 and 0 <= d["loss.ssim"] < 1 for d in drawn)
    assert {d["model.width"] for d in drawn} == {4, 5, 6}  # both bounds reachable, as the sweep file says
    assert {d["loss.l1"] for d in drawn} == {0.5, 1, 2}
    assert all(1 <= d["data.batch_size"] <= 8 and isinstance(d["data.batch_size"], int) for d in drawn)


def test_only_an_optuna_search_has_no_roster():
    assert not has_roster(spec_of(strategy="optuna", space={"loss.l1": {"uniform": [0, 1]}}), "search")
    assert has_roster(spec_of(strategy="optuna", space={"loss.l1": {"uniform": [0, 1]}}), "top-k")
    with pytest.raises(ValueError, match="no roster"):
        search_roster(spec_of(strategy="optuna", space={"loss.l1": {"uniform": [0, 1]}}), 0)


def _record(out: Path, name: str, status: str, params: dict, phase: str = "search", psnr: float | None = None) -> None:
    folder = out / "trials" / name
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({
        "name": name, "phase": phase, "params": params, "overrides": settings_text(params), "status": status,
        "step": 10, "metrics": {} if psnr is None else {"val/psnr": psnr}, "seconds": 1.0,
        "run": str(folder / "run"), "error": None}))


def test_progress_keeps_ended_trials_and_continues_begun_ones_and_refuses_other_settings(tmp_path):
    spec = spec_of(space={"loss.l1": [0.5, 1.0, 2.0]}, metric="val/psnr", top_k=1, top_k_budget={"steps": 20})
    roster = search_roster(spec, 0)
    _record(tmp_path, "trial-000", "finished", {"loss.l1": 0.5}, psnr=20.0)
    _record(tmp_path, "trial-001", "stopped", {"loss.l1": 1.0}, psnr=25.0)
    _record(tmp_path, "trial-002", "running", {"loss.l1": 2.0})
    known = progress(tmp_path, "search", roster)
    assert sorted(known.done) == ["trial-000", "trial-001"] and sorted(known.begun) == ["trial-002"]
    # top-k trains the best *finished* search trial further, whatever a stopped one scored
    assert [(t.name, dict(t.values)) for t in top_k_roster(tmp_path, spec)] == [("trial-000-top", {"loss.l1": 0.5})]

    other = spec_of(space={"loss.l1": [0.5, 3.0, 2.0]})
    with pytest.raises(RunError, match="trial 'trial-001' .* was run with other settings"):
        progress(tmp_path, "search", search_roster(other, 0))
