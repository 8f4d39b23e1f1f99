"""Sweep files and their results, without Ray: one-line errors naming file and key, the hold-out, the
checks every trial's config gets before anything starts, and the ranked table, CSV, best config and plot.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from shots import fails
from shots import write_graded_shot as write_shot

from shotfit.config import Config, apply_values, load_config
from shotfit.errors import ConfigError
from shotfit.search.builtin import builtin_sweep, builtin_sweeps
from shotfit.search.plan import auto_validation_frames, plan_sweep
from shotfit.search.results import collect, rank, write_results
from shotfit.search.spec import Budget, load_sweep
from shotfit.search.trial import PROXY, trial_name
from shotfit.search.values import read_settings, settings_text

TINY_SET = "[model.width=4, model.depth=2, augment.patch_size=32, data.batch_size=2, loss.lpips=0]"


def sweep_file(folder: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def shot_sweep(folder: Path, body: str, keyframes: tuple[int, ...] = (1, 3, 5, 8)) -> Path:
    """A sweep file on a tiny 8-frame shot written beside it (paths relative to the file)."""
    write_shot(folder / "shot", frames=range(1, 9), keyframes=keyframes)
    return sweep_file(folder, f"name: tiny\nsource: shot/plate\nkeyframes: shot/kf\nset: {TINY_SET}\n{body}")


def error_of(path: Path, out: Path | None = None) -> str:
    with pytest.raises(ConfigError) as excinfo:
        spec = load_sweep(path)
        plan_sweep(spec, out or path.parent / "out")
    message = str(excinfo.value)
    assert "\n" not in message, message
    assert f"'{path}'" in message, message  # names the file
    return message


# --- the sweep file -------------------------------------------------------------------------------

def test_a_full_sweep_file_reads_with_paths_relative_to_it(tmp_path):
    folder = tmp_path / "shows" / "A"
    folder.mkdir(parents=True)
    spec = load_sweep(sweep_file(folder, """
name: loss-ablation
source: plate/
keyframes: fixed/
truth: clean/
config: base.yaml
set: [model.width=24]
validation_frames: [40]
metric: test/psnr
budget: {steps: 300, minutes: 5}
strategy: optuna
samples: 6
early_stop: {type: asha, grace_period: 50, reduction_factor: 2}
top_k: 2
top_k_budget: {steps: 1000}
space:
  loss.lpips: [0, 0.1, 0.3]
  train.lr: {loguniform: [1e-4, 1e-2]}
  model.width: {choice: [16, 24, 32]}
"""))
    assert spec.name == "loss-ablation"
    assert spec.source == folder / "plate" and spec.truth == folder / "clean" and spec.config == folder / "base.yaml"
    assert spec.metric == "test/psnr" and spec.mode == "max"  # the direction comes with the metric
    assert spec.budget == Budget(steps=300, minutes=5.0) and spec.top_k_budget == Budget(steps=1000)
    assert spec.space["train.lr"].kind == "loguniform" and spec.space["train.lr"].values == (1e-4, 1e-2)
    assert spec.space["train.lr"].is_log  # PyYAML reads 1e-4 as text; the sweep reads it as a number
    assert spec.space["loss.lpips"].values == (0, 0.1, 0.3)
    assert (spec.early_stop.kind, spec.early_stop.grace_period, spec.early_stop.reduction_factor) == ("asha", 50, 2)


def test_defaults(tmp_path):
    spec = load_sweep(sweep_file(tmp_path, "shot: sample\nspace: {loss.lpips: [0, 0.1]}\n", "my-sweep.yaml"))
    assert spec.name == "my-sweep"  # the file's name
    assert (spec.metric, spec.mode, spec.strategy, spec.samples, spec.early_stop.kind, spec.top_k) == (
        "val/lpips", "min", "grid", 1, "none", 0)
    assert spec.has_truth  # the sample brings the clean clip


@pytest.mark.parametrize(("text", "key", "words"), [
    ("shot: sample\nspace: {loss.l1: [1]}\nbudgett: {steps: 3}\n", "budgett", "unknown key"),
    ("source: plate/\nspace: {loss.l1: [1]}\n", "keyframes", "missing"),
    ("shot: sample\nsource: plate/\nspace: {loss.l1: [1]}\n", "source", "sample shot brings its own"),
    ("shot: carphone\nspace: {loss.l1: [1]}\n", "shot", "only built-in shot"),
    ("shot: sample\nmetric: val/loss\nspace: {loss.l1: [1]}\n", "metric", "not one of"),
    ("source: p/\nkeyframes: k/\nmetric: test/psnr\nspace: {loss.l1: [1]}\n", "metric", "give truth"),
    ("shot: sample\nmetric: val/psnr\nmode: min\nspace: {loss.l1: [1]}\n", "mode", "better when higher"),
    ("shot: sample\nbudget: {epochs: 3}\nspace: {loss.l1: [1]}\n", "budget", "steps and/or minutes"),
    ("shot: sample\nbudget: {steps: 0}\nspace: {loss.l1: [1]}\n", "budget.steps", "integer >= 1"),
    ("shot: sample\nstrategy: bayes\nspace: {loss.l1: [1]}\n", "strategy", "not one of"),
    ("shot: sample\nearly_stop: hyperband\nspace: {loss.l1: [1]}\n", "early_stop", "asha, none"),
    ("shot: sample\ntop_k: 2\nspace: {loss.l1: [1]}\n", "top_k_budget", "missing"),
    ("shot: sample\n", "space", "missing"),
    ("shot: sample\nspace: {loss.l1: [1]}\ntrials: [{name: a}]\n", "trials", "not both"),
    ("shot: sample\nspace: {train.lr: {loguniform: [1e-4, 1e-2]}}\n", "space.train.lr", "grid needs a list"),
    ("shot: sample\nstrategy: random\nspace: {train.lr: {loguniform: [0, 1]}}\n", "space.train.lr", "low > 0"),
    ("shot: sample\nstrategy: random\nspace: {train.lr: {uniform: [1, 0.5]}}\n", "space.train.lr", "low < high"),
    ("shot: sample\nspace: {train.lr: 0.01}\n", "space.train.lr", "fixed value goes in set"),
    ("shot: sample\nspace: {lr: [1]}\n", "space.lr", "section.key"),
    ("shot: sample\nspace: {train.steps: [100, 200]}\n", "space.train.steps", "set by the sweep"),
    ("shot: sample\nset: [lr=3]\nspace: {loss.l1: [1]}\n", "set", "section.key=value"),
    ("shot: sample\ntrials: [{name: a}, {name: a}]\n", "trials", "names repeat"),
    ("shot: sample\ntrials: [{name: 'a b'}]\n", "trials[0].name", "short name"),
    ("shot: sample\nstrategy: optuna\ntrials: [{name: a}]\n", "strategy", "named trials"),
])
def test_mistakes_in_the_sweep_file_are_one_line_naming_file_and_key(tmp_path, text, key, words):
    path = sweep_file(tmp_path, text)
    with pytest.raises(ConfigError) as excinfo:
        load_sweep(path)
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"sweep '{path}': {key}: "), message
    assert words in message, message


def test_unreadable_sweep_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_sweep(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_sweep(sweep_file(tmp_path, "name: a\nspace: [\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_sweep(sweep_file(tmp_path, "- a\n"))


# --- checked against the shot and the config schema ---------------------------------------------

@pytest.mark.parametrize(("body", "key", "words"), [
    ("space: {loss.lpipz: [0, 1]}", "space.loss.lpipz", "unknown config key 'loss.lpipz'"),
    ("space: {loss.l1: [1, -1]}", "space.loss.l1", "out of range"),
    ("space: {model.widht: [4, 8]}", "space.model.widht", "unknown option 'widht'"),
    ("strategy: random\nspace: {model.width: {uniform: [4, 8]}}", "space.model.width", "integer setting"),
    ("trials: [{name: a, set: [loss.l1=-2]}]", "trials.a", "out of range"),
    ("validation_frames: [2]\nspace: {loss.l1: [1]}", "validation_frames", "frame 2 is not a keyframe"),
    ("validation_frames: [1, 3, 5, 8]\nspace: {loss.l1: [1]}", "validation_frames", "every keyframe"),
    ("truth: nowhere/\nspace: {loss.l1: [1]}", "truth", "does not exist"),
])
def test_every_trial_config_is_checked_before_anything_runs(tmp_path, body, key, words):
    message = error_of(shot_sweep(tmp_path, body))
    assert f": {key}: " in message and words in message, message
    assert not (tmp_path / "out").exists()  # nothing written for a sweep that cannot run


def test_a_plan_holds_out_the_middle_keyframe_and_resolves_the_budget(tmp_path):
    spec = load_sweep(shot_sweep(tmp_path, "space: {loss.l1: [0.5, 1]}"))
    plan = plan_sweep(spec, tmp_path / "out")
    assert plan.validation_frames == (5,)  # keyframes 1, 3, 5, 8: nearest the middle of 1..8 is 5
    assert plan.budget == Budget(steps=Config().train.steps)  # no budget: the config's own steps
    assert plan.shot.keyframe_frames == (1, 3, 5, 8) and plan.shot.held_out == (2, 4, 6, 7)
    assert plan.memory_per_trial > 2**30


def test_the_temporal_weight_is_a_search_dimension_and_its_frame_pairs_are_budgeted(tmp_path):
    without = plan_sweep(load_sweep(shot_sweep(tmp_path, "space: {loss.l1: [0.5, 1]}")), tmp_path / "out")
    spec = load_sweep(sweep_file(tmp_path, (tmp_path / "sweep.yaml").read_text().replace(
        "space: {loss.l1: [0.5, 1]}", "metric: test/warping_error\ntruth: shot/plate\nspace: {loss.temporal: [0, 1]}"),
        "temporal.yaml"))
    plan = plan_sweep(spec, tmp_path / "out-temporal")
    assert spec.space["loss.temporal"].values == (0, 1) and spec.mode == "min"
    # 16 pairs of a 40 x 48 shot: two frames, flow and mask each (9 floats a pixel), and 4 more patches a step
    pairs = 16 * 40 * 48 * 9 * 4
    patches = 40 * 4 * 4 * 32**2 * 4
    assert plan.memory_per_trial - without.memory_per_trial == pairs + patches


def test_the_built_in_sweeps_are_found_by_name_and_read():
    assert sorted(builtin_sweeps()) == ["loss_ablation", "temporal"]
    spec = load_sweep("temporal")  # as `shotfit sweep temporal` names it, from any folder
    assert spec.shot == "sample" and spec.metric == "test/warping_error"
    assert spec.space["loss.temporal"].values == (0, 0.5, 1, 3)
    assert [t.name for t in load_sweep("loss_ablation").trials][:2] == ["l1-only", "mse-only"]
    with pytest.raises(ConfigError, match=r"does not exist \(built-in sweeps, by name: loss_ablation, temporal\)"):
        load_sweep("sweeps/temporal.yaml")
    with pytest.raises(ConfigError, match="'../temporal' is not a built-in sweep"):
        builtin_sweep("../temporal")


@pytest.mark.parametrize(("keyframes", "held_out"), [
    ((0, 40, 80, 119), (40,)),  # the sample's: 40 is nearer the middle (59.5) than 80
    ((1, 2), (1,)),
    ((1, 10, 20, 30, 40, 50, 60, 70), (20, 50)),  # 8 or more: the two nearest the thirds
])
def test_automatic_hold_out(keyframes, held_out):
    assert auto_validation_frames(keyframes) == held_out


def test_one_keyframe_cannot_score_a_sweep(tmp_path):
    with pytest.raises(ConfigError, match="only 1 keyframe"):
        plan_sweep(load_sweep(shot_sweep(tmp_path, "space: {loss.l1: [1]}", keyframes=(4,))), tmp_path / "out")


def test_settings_go_into_the_config_as_values_and_into_the_record_as_text():
    params = {"train.lr": 0.003, "model.width": 8, "render.blend": "linear", "loss.l1": 1.0}
    assert read_settings(settings_text(params)) == params
    cfg = apply_values(Config(), {**params, "loss.lpips": 0, "train.seed": 3.0})
    assert (cfg.train.lr, cfg.model.args["width"], cfg.render.blend) == (0.003, 8, "linear")
    assert isinstance(cfg.loss.lpips, float) and cfg.train.seed == 3  # typed by the config's own rules
    with pytest.raises(ConfigError, match=r"loss\.l1 = 'x' must be a number"):
        apply_values(Config(), {"loss.l1": "x"})
    assert trial_name({"loss.l1": 1.0}, 12) == "trial-012"
    assert trial_name({"trial": "l1-only-seed1"}, 0) == "l1-only-seed1"
    assert all(PROXY[m].startswith("val/") for m in PROXY)


# --- results, from trial records ---------------------------------------------------------------

def record(out: Path, name: str, status: str, lpips: float | None, step: int, **params: float) -> None:
    folder = out / "trials" / name
    folder.mkdir(parents=True)
    metrics = {} if lpips is None else {"val/lpips": lpips, "val/psnr": 30 - 10 * lpips}
    (folder / "trial.json").write_text(json.dumps({
        "name": name, "phase": "search", "params": params, "overrides": settings_text(params),
        "status": status, "step": step, "metrics": metrics, "seconds": 1.5, "run": str(folder / "run"),
        "error": "the loss became nan at step 3" if status == "error" else None}))


def test_results_rank_write_csv_best_config_and_plot(tmp_path):
    path = shot_sweep(tmp_path, "budget: {steps: 40}\nspace: {loss.l1: [0.5, 1, 2]\n  , train.lr: [0.001, 0.1]}")
    spec = load_sweep(path)
    plan = plan_sweep(spec, tmp_path / "out")
    out = plan.out
    record(out, "trial-000", "stopped", 0.05, 10, **{"loss.l1": 0.5, "train.lr": 0.001})
    record(out, "trial-001", "finished", 0.20, 40, **{"loss.l1": 1.0, "train.lr": 0.001})
    record(out, "trial-002", "finished", 0.10, 40, **{"loss.l1": 2.0, "train.lr": 0.1})
    record(out, "trial-003", "error", None, 3, **{"loss.l1": 1.0, "train.lr": 0.1})

    ranked = rank(collect(out), "val/lpips", "min")
    assert [r.name for r in ranked] == ["trial-002", "trial-001", "trial-000", "trial-003"]

    result = write_results(out, spec, plan.budget, plan.base)
    assert result.best.name == "trial-002"  # a trial stopped early is never the best, however it looked
    rows = list(csv.DictReader(result.csv.open()))
    assert [r["trial"] for r in rows] == ["trial-002", "trial-001", "trial-000", "trial-003"]
    assert rows[0]["loss.l1"] == "2.0" and rows[0]["val/lpips"] == "0.1" and rows[3]["status"] == "error"
    assert rows[3]["error"] == "the loss became nan at step 3"

    text = result.best_config.read_text()
    assert text.startswith("# shotfit sweep 'tiny': best trial 'trial-002'") and "every keyframe" in text
    best = load_config(result.best_config)  # its run folder is gone: rebuilt from the trial's overrides
    assert best.loss.l1 == 2.0 and best.train.lr == 0.1 and best.train.steps == 40
    assert best.data.validation_frames == ()  # trains on every keyframe
    assert result.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.best_metrics() == {"best/val/lpips": 0.1, "best/val/psnr": 29.0}


def test_named_trials_plot_as_bars(tmp_path):
    spec = load_sweep(shot_sweep(tmp_path, "trials:\n  - {name: base}\n  - {name: l1-only, set: [loss.laplacian=0]}"))
    plan = plan_sweep(spec, tmp_path / "out")
    record(plan.out, "base", "finished", 0.2, 100)
    record(plan.out, "l1-only", "finished", 0.1, 100, **{"loss.laplacian": 0})
    result = write_results(plan.out, spec, plan.budget, plan.base)
    assert result.best.name == "l1-only" and result.plot.stat().st_size > 1000


def test_the_command_line_says_what_is_wrong_in_one_line(tmp_path):
    path = shot_sweep(tmp_path, "space: {loss.lpipz: [0, 1]}")
    line = fails("sweep", path, "--out", tmp_path / "out", "--no-track")
    assert line == (f"shotfit: sweep '{path}': space.loss.lpipz: unknown config key 'loss.lpipz' "
                    "(known: l1, mse, lpips, laplacian, ssim, temporal, laplacian_levels, extra) in the sweep file")
    assert "does not exist" in fails("sweep", tmp_path / "missing.yaml")
    yaml.safe_load(path.read_text())


def test_the_python_api_takes_a_sweep_request(tmp_path):
    from shotfit import api
    from shotfit.errors import RunError

    spec = api.load_sweep(shot_sweep(tmp_path, "space: {loss.l1: [1]}"))
    assert api.SweepRequest(spec).folder == Path("tiny")  # the sweep's name, as the command line's default
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text("{}")
    with pytest.raises(RunError, match="already holds a sweep: resume it to continue") as excinfo:
        api.sweep(api.SweepRequest(spec, out=out))
    assert "--" not in str(excinfo.value)  # parameter names, not the command line's flags
