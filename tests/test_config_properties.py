"""The run config over random values: every valid config survives YAML, ``--set section.key=value`` sets
exactly the value written, and any value of any numeric setting (in range or not, 1e12, inf, NaN) either
trains and renders a tiny shot or is refused in one line. The values come from the fields' own types,
ranges and choices, so a new setting is covered without a line here."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, get_type_hints

import pytest
import torch
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from shots import TINY, write_graded_shot

from shotfit import api
from shotfit.config import Config, ExtraLossConfig, ModelConfig, apply_overrides, load_config, save_config
from shotfit.errors import ConfigError, ShotfitError

# printable text without line breaks: what a person types into a config file or after --set
TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x24F, exclude_characters="\x7f"), max_size=12)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
SETTINGS = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


def field_value(hint: Any, meta: dataclasses.Field) -> st.SearchStrategy[Any]:
    """Any value the field accepts, from its type and its ``low`` / ``high`` / ``choices`` metadata."""
    low, high, choices = (meta.metadata.get(k) for k in ("low", "high", "choices"))
    if choices:
        return st.sampled_from(choices)
    if hint is bool:
        return st.booleans()
    if hint is int or hint == int | None:
        ints = st.integers(int(low) if low is not None else -(10**6), int(high) if high is not None else 10**6)
        return ints | st.none() if hint == int | None else ints
    if hint is float:
        return st.floats(low if low is not None else -1e6, high if high is not None else 1e6,
                         allow_nan=False, allow_infinity=False)
    if hint is str:
        return TEXT
    if hint == tuple[int, ...]:
        return st.lists(st.integers(0, 10**6), max_size=4).map(tuple)
    if hint == tuple[ExtraLossConfig, ...]:
        return st.lists(section(ExtraLossConfig), max_size=2).map(tuple)
    raise AssertionError(f"no strategy for a config field of type {hint!r}: add one here")


def section(cls: type) -> st.SearchStrategy[Any]:
    """A valid section: random field values, the combinations the section refuses filtered out."""
    hints = get_type_hints(cls)
    values = st.fixed_dictionaries({f.name: field_value(hints[f.name], f) for f in dataclasses.fields(cls)})

    def build(kwargs: dict[str, Any]) -> Any:
        try:
            return cls(**kwargs)
        except ConfigError:  # a rule across fields (render.tile_overlap at most half of render.tile)
            return None

    return values.map(build).filter(lambda built: built is not None)


ARG_VALUE = st.booleans() | st.integers(-1000, 1000) | st.floats(-10, 10, allow_nan=False) | TEXT
MODEL = st.builds(ModelConfig, arch=NAME,
                  args=st.dictionaries(NAME.filter(lambda name: name != "arch"), ARG_VALUE, max_size=3))
CONFIGS = st.builds(Config, **{f.name: MODEL if f.name == "model" else section(get_type_hints(Config)[f.name])
                               for f in dataclasses.fields(Config)})


def as_yaml(value: Any) -> str:
    """``value`` as one line of YAML, as a person writes it after ``--set section.key=``."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("...\n").strip()


def overrides_for(cfg: Config) -> list[str]:
    """Every setting of ``cfg`` as a ``section.key=value`` override."""
    out = [f"model.arch={as_yaml(cfg.model.arch)}"]
    out += [f"model.{key}={as_yaml(value)}" for key, value in cfg.model.args.items()]
    for f in dataclasses.fields(cfg):
        if f.name == "model":
            continue
        part = getattr(cfg, f.name)
        for key in (g.name for g in dataclasses.fields(part)):
            value = getattr(part, key)
            if isinstance(value, tuple):
                value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
            out.append(f"{f.name}.{key}={as_yaml(value)}")
    return out


@SETTINGS
@given(cfg=CONFIGS)
def test_every_valid_config_survives_a_yaml_file(cfg: Config, tmp_path_factory) -> None:
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    save_config(cfg, path)
    assert load_config(path) == cfg


@SETTINGS
@given(cfg=CONFIGS)
def test_set_overrides_give_exactly_the_values_written(cfg: Config) -> None:
    assert apply_overrides(Config(), overrides_for(cfg)) == cfg


SECTIONS = [f.name for f in dataclasses.fields(Config) if f.name != "model"]


@SETTINGS
@given(cfg=CONFIGS, data=st.data())
def test_an_override_changes_only_its_own_setting(cfg: Config, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(SECTIONS))
    part = getattr(cfg, name)
    setting = data.draw(st.sampled_from(dataclasses.fields(part)))
    value = data.draw(field_value(get_type_hints(type(part))[setting.name], setting))
    try:
        expected = dataclasses.replace(cfg, **{name: dataclasses.replace(part, **{setting.name: value})})
    except ConfigError:  # refused with the section's other settings (a tile overlap over half the tile)
        assume(False)
    written = [dataclasses.asdict(v) for v in value] if setting.name == "extra" else value
    assert apply_overrides(cfg, [f"{name}.{setting.name}={as_yaml(written)}"]) == expected


# --- every numeric setting, any value: a tiny shot trains and renders, or one line says why -----------

NUMERIC = [(name, f) for name in SECTIONS for f in dataclasses.fields(getattr(Config(), name))
           if get_type_hints(type(getattr(Config(), name)))[f.name] in (int, float, int | None)]
# What a hostile or careless hand types: the bounds and just past them, zero, negatives, numbers that
# exhaust memory or time, and the floats that are no numbers.
EXTREMES = (0, 1, -1, 10**12, 2**64, 10**30, 1e300, -1e300, math.inf, -math.inf, math.nan, 0.5)


def any_value(name: str, setting: dataclasses.Field) -> st.SearchStrategy[Any]:
    hint = get_type_hints(type(getattr(Config(), name)))[setting.name]
    low, high = setting.metadata.get("low"), setting.metadata.get("high")
    edges = [v for bound in (low, high) if bound is not None for v in (bound, bound - 1, bound + 1)]
    return field_value(hint, setting) | st.sampled_from(EXTREMES + tuple(edges))


# The tiny U-Net's own numeric options (tests.shots.TINY sets width 4, depth 2): their bounds, and the
# largest value drawn within them. A 1024-wide network at its bounds trains with gigabytes (tests/archs
# checks those bounds without memory); here the widths stay small enough for a shared machine.
MODEL_OPTIONS = {"width": (1, 1024, 16), "depth": (0, 8, 8), "max_width": (1, 4096, 64)}


def any_option_value(option: str) -> st.SearchStrategy[Any]:
    low, high, drawn = MODEL_OPTIONS[option]
    past = tuple(v for v in EXTREMES if not (isinstance(v, int) and drawn < v <= high))
    return st.integers(low, drawn) | st.sampled_from(past + (low, low - 1, high + 1))


@st.composite
def numeric_overrides(draw: st.DrawFn) -> list[str]:
    """One to three numeric settings (config fields or the network's options), each set to any value."""
    names = [f"{name}.{setting.name}" for name, setting in NUMERIC] + [f"model.{o}" for o in MODEL_OPTIONS]
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
    fields = {f"{name}.{setting.name}": (name, setting) for name, setting in NUMERIC}
    return [f"{key}={as_yaml(draw(any_value(*fields[key]) if key in fields else any_option_value(key[6:])))}"
            for key in chosen]


@pytest.fixture(scope="module")
def tiny_shot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_graded_shot(tmp_path_factory.mktemp("shot"), range(1, 4), keyframes=(1, 3))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(overrides=numeric_overrides())
# cases that once ended in a traceback or a refusal of a valid network, always tried
@example(overrides=["train.seed=1000000000000000000000000000000"])
@example(overrides=["train.weight_decay=.inf", "loss.l1=1.0e+300"])
@example(overrides=["train.steps=1000000000000", "render.tile_overlap=1000000000000"])
@example(overrides=["model.depth=8"])
def test_any_numeric_setting_trains_and_renders_a_tiny_shot_or_is_one_line(
        overrides: list[str], tiny_shot: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    source, keys = tiny_shot
    folder = tmp_path_factory.mktemp("try")
    steps: list[int] = []
    threads = torch.get_num_threads()
    try:
        # a few steps whatever train.steps says (1e12 trains until stopped): the run stops with a checkpoint
        api.train(source, keys, folder / "run", overrides=(*TINY, *overrides), device="cpu",
                  tracking=api.TrackingOptions(enabled=False), on_step=lambda report: steps.append(report.step),
                  should_stop=lambda: len(steps) >= 2)
        rendered = api.render(folder / "run", source, folder / "render", device="cpu")
    except ShotfitError as err:
        assert "\n" not in str(err) and str(err), repr(err)
        return
    finally:
        torch.set_num_threads(threads)
    assert steps and sorted(p.name for p in (folder / "render").iterdir()) == [
        f"plate.{frame:04d}.png" for frame in range(1, 4)], rendered
