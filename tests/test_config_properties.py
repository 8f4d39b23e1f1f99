"""The run config over random valid values: every config survives YAML, and ``--set section.key=value`` sets
exactly the value written. The values come from the fields' own types, ranges and choices, so a new setting
is covered without a line here."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shotfit.config import Config, ExtraLossConfig, ModelConfig, apply_overrides, load_config, save_config
from shotfit.errors import ConfigError

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
