"""The run config: YAML round trip, dotted overrides, and one-line errors naming key, value and file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from shotfit.config import (
    Config,
    ExtraLossConfig,
    RenderConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)
from shotfit.errors import ConfigError


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(excinfo: pytest.ExceptionInfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


# --- round trip ---------------------------------------------------------------------------------

def test_defaults_round_trip_through_yaml(tmp_path):
    path = tmp_path / "config.yaml"
    save_config(Config(), path)
    assert load_config(path) == Config()
    # every default is written out, so a saved run documents itself
    written = yaml.safe_load(path.read_text())
    assert written["train"]["lr"] == 2e-3
    assert written["render"]["tile_overlap"] is None
    assert written["model"] == {"arch": "unet_attn"}


def test_changed_values_and_extra_losses_round_trip(tmp_path):
    cfg = apply_overrides(Config(), [
        "train.lr=3e-4", "train.steps=150", "model.width=4", "model.residual=false",
        "loss.extra=[{network: 'studio.nets:age', weight: 0.5, distance: cosine}]",
        "render.tile_overlap=48", "render.blend=linear",
    ])
    path = tmp_path / "config.yaml"
    save_config(cfg, path)
    again = load_config(path)
    assert again == cfg
    assert again.loss.extra == (ExtraLossConfig(network="studio.nets:age", weight=0.5, distance="cosine"),)
    assert dict(again.model.args) == {"width": 4, "residual": False}
    assert again.render.tile_overlap == 48
    assert config_to_dict(config_from_dict(config_to_dict(cfg))) == config_to_dict(cfg)


def test_a_missing_key_takes_its_default(tmp_path):
    cfg = load_config(write_yaml(tmp_path / "c.yaml", "train:\n  steps: 77\n"))
    assert cfg.train == dataclasses.replace(TrainConfig(), steps=77)
    assert cfg.render == RenderConfig()


def test_an_empty_file_is_the_defaults(tmp_path):
    assert load_config(write_yaml(tmp_path / "c.yaml", "")) == Config()


# --- overrides ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("override", "section", "key", "expected"), [
    ("train.lr=3e-4", "train", "lr", 3e-4),          # YAML reads 3e-4 (no dot) as a string
    ("train.lr=1.5E-3", "train", "lr", 1.5e-3),
    ("train.lr=1", "train", "lr", 1.0),
    ("train.steps=1e3", "train", "steps", 1000),
    ("train.steps= 12 ", "train", "steps", 12),
    ("data.batch_size=2", "data", "batch_size", 2),
    ("render.tile_overlap=null", "render", "tile_overlap", None),
    ("render.tile_overlap=~", "render", "tile_overlap", None),
    ("render.tile_overlap=32", "render", "tile_overlap", 32),
    ("train.device=cuda:1", "train", "device", "cuda:1"),
    ("train.amp=off", "train", "amp", "off"),        # YAML 1.1 reads off as false
    ("render.precision=bf16", "render", "precision", "bf16"),
    ("render.compile=never", "render", "compile", "never"),
])
def test_override_values_are_parsed(override, section, key, expected):
    value = getattr(getattr(apply_overrides(Config(), [override]), section), key)
    assert value == expected
    assert type(value) is type(expected)


def test_null_unsets_a_tile_overlap_that_was_set():
    cfg = apply_overrides(Config(), ["render.tile_overlap=64"])
    assert apply_overrides(cfg, ["render.tile_overlap=null"]).render.tile_overlap is None


def test_later_overrides_win():
    assert apply_overrides(Config(), ["train.steps=5", "train.steps=9"]).train.steps == 9


def test_extra_losses_are_a_list_of_mappings():
    cfg = apply_overrides(Config(), ["loss.extra=[{network: 'a.b:age', weight: 0.2}, "
                                     "{network: 'a.b:id', weight: 1, name: identity}]"])
    assert [(e.network, e.weight, e.name, e.distance) for e in cfg.loss.extra] == [
        ("a.b:age", 0.2, "", "l1"), ("a.b:id", 1.0, "identity", "l1")]
    assert apply_overrides(cfg, ["loss.extra=[]"]).loss.extra == ()


def test_model_keys_go_to_the_architecture_arguments():
    cfg = apply_overrides(Config(), ["model.width=4", "model.depth=2", "model.residual=false",
                                     "model.upsample=nearest"])
    assert cfg.model.arch == "unet_attn"
    assert dict(cfg.model.args) == {"width": 4, "depth": 2, "residual": False, "upsample": "nearest"}


def test_model_keys_from_a_file_go_to_the_architecture_arguments(tmp_path):
    cfg = load_config(write_yaml(tmp_path / "c.yaml", "model:\n  arch: unet_attn\n  width: 8\n  max_width: 16\n"))
    assert dict(cfg.model.args) == {"width": 8, "max_width": 16}


def test_overrides_never_change_the_config_they_start_from():
    base = Config()
    apply_overrides(base, ["train.steps=5", "model.width=4"])
    assert base == Config()
    assert dict(base.model.args) == {}


# --- errors: one line naming the key, the value and where it came from ---------------------------

def test_unknown_section_names_it_and_the_file(tmp_path):
    path = write_yaml(tmp_path / "shot.yaml", "trian:\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = one_line_error(excinfo)
    assert "unknown config section 'trian'" in message
    assert f"'{path}'" in message
    assert "train" in message.split("known:")[1]  # lists what would have been right


def test_unknown_key_names_it_and_the_file(tmp_path):
    path = write_yaml(tmp_path / "shot.yaml", "train:\n  lrate: 0.1\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = one_line_error(excinfo)
    assert "'train.lrate'" in message
    assert f"'{path}'" in message
    assert " lr," in message  # the known keys are listed


@pytest.mark.parametrize(("text", "expected"), [
    ("train:\n  lr: 2.0\n", "train.lr = 2.0 is out of range (must be <= 1.0)"),
    ("train:\n  steps: 0\n", "train.steps = 0 is out of range (must be >= 1)"),
    ("augment:\n  patch_size: 8\n", "augment.patch_size = 8 is out of range (must be >= 16)"),
    # values that would ask the allocator for terabytes, or the OS for a million threads
    ("data:\n  batch_size: 1e12\n", "data.batch_size = 1000000000000 is out of range (must be <= 1024)"),
    ("augment:\n  patch_size: 100000\n", "augment.patch_size = 100000 is out of range (must be <= 16384)"),
    ("train:\n  threads: 1000000\n", "train.threads = 1000000 is out of range (must be <= 1024)"),
    ("data:\n  mask_outside_weight: -0.5\n", "data.mask_outside_weight = -0.5 is out of range (must be >= 0.0)"),
    ("train:\n  amp: fp8\n", "train.amp = 'fp8' is not one of auto, off, bf16, fp16"),
    ("render:\n  tile: 16\n", "render.tile = 16 is out of range (must be >= 32, or 0 for the device's default)"),
    ("render:\n  tile: 1e300\n", "render.tile = 1000000000000000052504760255204420248704468581108159154915854115511"),
    ("render:\n  tile_overlap: 1e12\n", "render.tile_overlap = 1000000000000 is out of range (must be <= 524288)"),
    ("train:\n  seed: 1e30\n", "train.seed = 1000000000000000019884624838656 is out of range (must be <= "
     "18446744073709551615)"),
    # no setting means anything at infinity or NaN (and NaN slips past a comparison)
    ("train:\n  weight_decay: .inf\n", "train.weight_decay = inf must be a finite number"),
    ("loss:\n  l1: .nan\n", "loss.l1 = nan must be a finite number"),
    ("train:\n  grad_clip: -.inf\n", "train.grad_clip = -inf must be a finite number"),
])
def test_out_of_range_names_key_value_and_file(tmp_path, text, expected):
    path = write_yaml(tmp_path / "shot.yaml", text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = one_line_error(excinfo)
    assert expected in message
    assert f"'{path}'" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("train:\n  steps: many\n", "train.steps = 'many' must be an integer"),
    ("train:\n  steps: 2.5\n", "train.steps = 2.5 must be an integer"),
    ("train:\n  steps: true\n", "train.steps = True must be an integer"),
    ("train:\n  lr: fast\n", "train.lr = 'fast' must be a number"),
    ("train:\n  device: 0\n", "train.device = 0 must be a string"),
    ("loss:\n  extra: 3\n", "loss.extra = 3 must be a list of mappings"),
    ("render:\n  tile_overlap: wide\n", "render.tile_overlap = 'wide' must be an integer"),
])
def test_wrong_type_names_key_value_and_file(tmp_path, text, expected):
    path = write_yaml(tmp_path / "shot.yaml", text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = one_line_error(excinfo)
    assert expected in message
    assert f"'{path}'" in message


def test_a_section_that_is_not_a_mapping_is_named(tmp_path):
    path = write_yaml(tmp_path / "shot.yaml", "train: 5\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = one_line_error(excinfo)
    assert "'train'" in message and "must be a mapping" in message and f"'{path}'" in message


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path):
    path = write_yaml(tmp_path / "shot.yaml", "- train\n- render\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert one_line_error(excinfo) == f"config '{path}' must hold a mapping of sections"


@pytest.mark.parametrize(("text", "line"), [
    ("train:\n  lr: 0.1\n\tsteps: 5\n", 3),           # a tab in the indentation
    ("train:\n  lr: 0.1\n  steps: 5\n loss: 3\n", 4),  # a stray indent
    ("a: b: c\n", 1),
])
def test_malformed_yaml_names_the_file_and_line(tmp_path, text, line):
    path = write_yaml(tmp_path / "shot.yaml", text)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert one_line_error(excinfo) == f"config '{path}' is not valid YAML at line {line}"


@pytest.mark.parametrize(("content", "expected"), [
    (bytes(range(128, 256)) * 3, "is not a YAML text file (not UTF-8 at byte 0)"),
    (b"train:\n  lr: 0.1\n# caf\xe9\n", "is not a YAML text file (not UTF-8 at byte 22)"),
    (b"[" * 20000, "is nested too deeply to be a shotfit config"),
])
def test_a_config_that_is_not_yaml_text_is_one_line_naming_it(tmp_path, content, expected):
    path = tmp_path / "shot.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    assert one_line_error(excinfo) == f"config '{path}' {expected}"


def test_an_override_nested_too_deeply_is_one_line():
    with pytest.raises(ConfigError) as excinfo:
        parse_override("data.validation_frames=" + "[" * 20000)
    assert one_line_error(excinfo).startswith("override 'data.validation_frames=[[[")


def test_missing_config_file_is_named():
    with pytest.raises(ConfigError) as excinfo:
        load_config("configs/shot.yaml")
    assert one_line_error(excinfo) == "config 'configs/shot.yaml' does not exist"


def test_a_folder_given_as_config_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_config(tmp_path)
    message = one_line_error(excinfo)
    assert f"config '{tmp_path}' cannot be read" in message


@pytest.mark.parametrize(("override", "expected"), [
    ("train.lr=-1", "train.lr = -1.0 is out of range (must be >= 0.0)"),
    ("train.steps=lots", "train.steps = 'lots' must be an integer"),
    ("train.stepz=5", "unknown config key 'train.stepz'"),
    ("render.precision=fp8", "render.precision = 'fp8' is not one of auto, fp32, tf32, bf16, fp16"),
])
def test_override_errors_name_key_value_and_origin(override, expected):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(Config(), [override])
    message = one_line_error(excinfo)
    assert expected in message
    assert "--set" in message


def test_a_tile_overlap_over_half_the_tile_is_refused():
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(Config(), ["render.tile=1024", "render.tile_overlap=600"])
    assert "render.tile_overlap = 600 must be at most half of render.tile = 1024" in one_line_error(excinfo)
    # with the tile left to the device (0), the overlap is checked against it at render time
    assert apply_overrides(Config(), ["render.tile_overlap=600"]).render.tile == 0


@pytest.mark.parametrize("override", ["trainlr=3", "train.lr", "train.lr.max=3", ".lr=3", "train.=3"])
def test_malformed_override_shows_the_expected_form(override):
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(Config(), [override])
    assert one_line_error(excinfo) == (f"override {override!r} must look like section.key=value "
                                       "(e.g. train.lr=3e-4)")


def test_override_of_an_unknown_section_names_it():
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(Config(), ["trian.lr=0.1"])
    message = one_line_error(excinfo)
    assert "unknown config section 'trian'" in message and "'trian.lr=0.1'" in message


def test_override_value_that_is_not_yaml_is_named():
    with pytest.raises(ConfigError) as excinfo:
        apply_overrides(Config(), ["loss.extra=[{network: a"])
    assert "cannot parse the value '[{network: a'" in one_line_error(excinfo)


def test_unknown_key_in_an_extra_loss_is_named(tmp_path):
    path = write_yaml(tmp_path / "shot.yaml", "loss:\n  extra:\n    - network: a.b:c\n      wieght: 0.5\n")
    with pytest.raises(ConfigError) as excinfo:
        load_config(path)
    message = one_line_error(excinfo)
    assert "'loss.extra.wieght'" in message and f"'{path}'" in message


@pytest.mark.parametrize("item, parsed", [
    ("train.lr=0.5", ("train", "lr", 0.5)), ("train.amp=off", ("train", "amp", False)),
    ("train.lr=3e-4", ("train", "lr", "3e-4")),  # YAML 1.1's reading; the config's check makes it a number
    (" data.validation_frames = [1, 2]", ("data", "validation_frames", [1, 2])),
    ("model.arch=unet", ("model", "arch", "unet")), ("colour.source=a=b", ("colour", "source", "a=b")),
])
def test_parse_override_reads_section_key_and_a_yaml_value(item, parsed):
    assert parse_override(item) == parsed


def test_a_malformed_override_names_the_overrides_parameter():
    with pytest.raises(ConfigError) as excinfo:
        parse_override("train.lr")
    assert excinfo.value.parameter == "overrides"
