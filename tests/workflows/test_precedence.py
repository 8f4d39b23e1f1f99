"""Which value wins, for each command: the request's own field, the config file, the run's saved config,
the defaults. No training here: the config a run would use is decided before anything is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from shotfit.config import Config, RenderConfig, apply_overrides, save_config
from shotfit.errors import ConfigError
from shotfit.runs.folder import RunFolder
from shotfit.workflows.precedence import allowed_plugins, resolve_render_config, resolve_train_config
from shotfit.workflows.requests import RenderRequest, TrainRequest


@pytest.fixture
def saved_run(tmp_path: Path) -> RunFolder:
    run = RunFolder(tmp_path / "run")
    run.write_config(apply_overrides(Config(), ["train.lr=0.01", "train.seed=3", "train.steps=50"]))
    return run


def test_a_fresh_run_takes_the_defaults_then_overrides_then_its_own_fields(tmp_path):
    request = TrainRequest("plate", "kf", tmp_path / "new", overrides=("train.steps=10", "colour.source=ACEScg"),
                           steps=20, colorspace="sRGB")
    cfg = resolve_train_config(request, RunFolder(request.out))
    assert cfg.train.steps == 20 and cfg.colour.source == "sRGB"  # the request's fields win over overrides
    assert cfg.train.lr == Config().train.lr


def test_a_resumed_run_keeps_its_saved_config_under_the_request(saved_run):
    cfg = resolve_train_config(TrainRequest("plate", "kf", saved_run.path, resume=True, overrides=("train.seed=9",)),
                               saved_run)
    assert (cfg.train.lr, cfg.train.seed, cfg.train.steps) == (0.01, 9, 50)


def test_a_config_file_wins_over_the_saved_config(saved_run, tmp_path):
    save_config(apply_overrides(Config(), ["train.lr=0.5"]), tmp_path / "shot.yaml")
    request = TrainRequest("plate", "kf", saved_run.path, resume=True, config_file=tmp_path / "shot.yaml")
    assert resolve_train_config(request, saved_run).train.lr == 0.5
    given = TrainRequest("plate", "kf", saved_run.path, resume=True, config=apply_overrides(Config(), ["train.lr=0.2"]))
    assert resolve_train_config(given, saved_run).train.lr == 0.2


def test_a_config_and_a_config_file_together_are_refused_naming_the_parameter(tmp_path):
    request = TrainRequest("plate", "kf", tmp_path / "run", config=Config(), config_file="shot.yaml")
    with pytest.raises(ConfigError) as excinfo:
        resolve_train_config(request, RunFolder(request.out))
    assert excinfo.value.parameter == "config"


def test_a_lone_override_string_is_one_override():
    assert TrainRequest("plate", "kf", "run", overrides="train.lr=0.1").overrides == ("train.lr=0.1",)


@pytest.mark.parametrize("fields, expected", [
    ({}, (1024, 16, "auto")),
    ({"tile": 512, "tile_overlap": 0, "precision": "fp32"}, (512, 0, "fp32")),
    ({"tile": 0}, (1024, 16, "auto")),  # 0 is "not given" for the tile, as on the command line
])
def test_a_render_takes_the_request_over_the_runs_render_settings(fields, expected):
    saved = RenderConfig(tile=1024, tile_overlap=16, blend="linear")
    resolved = resolve_render_config(RenderRequest("run", "plate", "out", **fields), saved)
    assert (resolved.tile, resolved.tile_overlap, resolved.precision) == expected and resolved.blend == "linear"


# --- loss plug-ins: code runs only when this request names it -------------------------------------

PLUGIN = "[{network: 'studio.age:net', weight: 0.5}]"


@pytest.fixture
def run_naming_a_plugin(tmp_path: Path) -> RunFolder:
    run = RunFolder(tmp_path / "received")
    run.write_config(apply_overrides(Config(), [f"loss.extra={PLUGIN}"]))
    return run


def test_a_plugin_only_the_saved_config_names_is_refused_naming_how_to_allow_it(run_naming_a_plugin):
    request = TrainRequest("plate", "kf", run_naming_a_plugin.path, resume=True, overrides=("train.seed=9",))
    with pytest.raises(ConfigError) as excinfo:
        resolve_train_config(request, run_naming_a_plugin)
    assert str(excinfo.value).startswith(f"'{run_naming_a_plugin.config_path}' names the loss plug-in "
                                         "'studio.age:net' (loss.extra)")
    assert excinfo.value.parameter == "allowed_plugins"


@pytest.mark.parametrize("fields", [
    {"allowed_plugins": "studio.age:net"},
    {"overrides": (f"loss.extra={PLUGIN}",)},
    {"config": apply_overrides(Config(), [f"loss.extra={PLUGIN}"])},
])
def test_a_plugin_this_request_names_is_allowed(run_naming_a_plugin, fields):
    request = TrainRequest("plate", "kf", run_naming_a_plugin.path, resume=True, **fields)
    cfg = resolve_train_config(request, run_naming_a_plugin)
    assert allowed_plugins(request, cfg) == {"studio.age:net"}


def test_a_config_file_naming_a_plugin_allows_it_and_a_zero_weight_needs_no_allowing(run_naming_a_plugin,
                                                                                    tmp_path):
    save_config(apply_overrides(Config(), [f"loss.extra={PLUGIN}"]), tmp_path / "shot.yaml")
    request = TrainRequest("plate", "kf", run_naming_a_plugin.path, resume=True, config_file=tmp_path / "shot.yaml")
    assert allowed_plugins(request, resolve_train_config(request, run_naming_a_plugin)) == {"studio.age:net"}
    # a saved term weighted 0 is never imported: nothing to refuse
    run_naming_a_plugin.write_config(apply_overrides(Config(), ["loss.extra=[{network: 'studio.age:net', weight: 0}]"]))
    off = TrainRequest("plate", "kf", run_naming_a_plugin.path, resume=True)
    assert resolve_train_config(off, run_naming_a_plugin).loss.extra[0].weight == 0
    unnamed = TrainRequest("plate", "kf", run_naming_a_plugin.path, resume=True)
    assert allowed_plugins(unnamed, run_naming_a_plugin.read_config()) == frozenset()
