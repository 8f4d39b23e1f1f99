"""The run configuration: frozen dataclasses whose defaults are the only defaults.

A config round-trips through YAML (``save_config`` / ``load_config``) and takes dotted overrides
(``--set train.lr=3e-4``). Every value is checked where it enters: an unknown key or an out-of-range
value is a :class:`~shotfit.errors.ConfigError` naming the key, the value and the file.

The ``model`` section is open-ended: ``arch`` names the architecture and every other key is passed to
its constructor (``model.width=16``); those keys are checked against the constructor when the network
is built, and the resolved values are saved with every run.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, get_type_hints

import yaml

from shotfit.errors import ConfigError, quoted
from shotfit.files import write_text_atomic


def _opt(default: Any, *, low: float | None = None, high: float | None = None,
         choices: Iterable[str] | None = None, doc: str = "") -> Any:
    """A config field with its allowed range, checked on construction."""
    meta = {"low": low, "high": high, "choices": tuple(choices) if choices else None, "doc": doc}
    return field(default=default, metadata=meta)


class _Section:
    """Validation shared by every config section: types, ranges and choices, on construction."""

    def __post_init__(self) -> None:
        name = _SECTION_NAMES.get(type(self), type(self).__name__)
        hints = get_type_hints(type(self))
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            where = f"{name}.{f.name} = {value!r}"
            hint = hints[f.name]
            if value is None and hint == int | None:
                continue
            kind = int if hint == int | None else hint
            if kind in _TYPE_WORDS and not _is_a(value, kind):
                raise ConfigError(f"{where} must be {_TYPE_WORDS[kind]}")
            if kind is float and not math.isfinite(value):  # no setting means anything at inf or NaN
                raise ConfigError(f"{where} must be a finite number")
            low, high, choices = f.metadata.get("low"), f.metadata.get("high"), f.metadata.get("choices")
            if choices is not None and value not in choices:
                raise ConfigError(f"{where} is not one of {', '.join(choices)}")
            # written so that NaN fails the check too
            if low is not None and not value >= low:
                raise ConfigError(f"{where} is out of range (must be >= {low})")
            if high is not None and not value <= high:
                raise ConfigError(f"{where} is out of range (must be <= {high})")


def _is_a(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


@dataclass(frozen=True)
class ModelConfig:
    """Which network, and its constructor arguments (the architecture's own defaults fill the rest)."""

    arch: str = "unet_attn"
    args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise ConfigError(f"model.arch = {self.arch!r} must name an architecture")
        object.__setattr__(self, "args", MappingProxyType(dict(self.args)))


@dataclass(frozen=True)
class ExtraLossConfig(_Section):
    """A feature-distance term on a studio's own embedding network (an age or identity predictor)."""

    network: str = _opt("", doc="'package.module:callable' returning an nn.Module")
    weight: float = _opt(0.0, low=0.0)
    distance: str = _opt("l1", choices=("l1", "l2", "cosine"))
    name: str = _opt("", doc="the term's name in logs; defaults to the callable's name")


def loss_weight(default: float, doc: str = "") -> Any:
    """A loss term's weight, >= 0 (0: the term is neither built nor run); the field's name is the term's.

    Every such field names a term registered in ``shotfit.losses.LOSS_TERMS`` (a test keeps the two in step).
    """
    return field(default=default, metadata={"low": 0.0, "high": None, "choices": None, "doc": doc, "loss_term": True})


@dataclass(frozen=True)
class LossConfig(_Section):
    """Weights of the hybrid loss ``l1·L1 + mse·MSE + lpips·LPIPS + laplacian·LapPyr + ssim·(1-SSIM) + extra
    + temporal·T``.

    The keyframe terms are summed in the order their weights are declared here, then the extra terms,
    then ``temporal``, which compares the outputs of consecutive frames of the shot along the source's
    optical flow (``data.temporal_pairs`` and ``data.temporal_batch`` say how many).
    """

    l1: float = loss_weight(1.0)
    mse: float = loss_weight(0.0)
    lpips: float = loss_weight(0.1)
    laplacian: float = loss_weight(1.0)
    ssim: float = loss_weight(0.1)
    temporal: float = loss_weight(0.0, doc="output of frame t against output of t+1 warped back along the "
                                  "source's flow (Lai et al. 2018), on the shot's own frames; 0: off")
    laplacian_levels: int = _opt(5, low=1, high=10)
    extra: tuple[ExtraLossConfig, ...] = ()

    def term_weights(self) -> dict[str, float]:
        """Each registered term's weight, keyed by its name, in declaration order (which is summation order)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("loss_term")}


@dataclass(frozen=True)
class AugmentConfig(_Section):
    """Paired augmentation, identical on source, target and mask (colour never on the mask)."""

    patch_size: int = _opt(128, low=16, high=16384, doc="square training patches (the frame, if smaller)")
    placement: str = _opt("uniform", choices=("uniform", "even"), doc="even: every row and column of the frame, its "
                          "borders included, in about as many patches as its middle (corners drawn up to a patch "
                          "beyond the frame and moved inside it); uniform: corners drawn uniformly over the frame, "
                          "which trains its border rows and columns tens of times less than its middle; even "
                          "measured worse on a paint-out (docs/quality.md)")
    flip_p: float = _opt(0.5, low=0.0, high=1.0)
    rot90_p: float = _opt(0.0, low=0.0, high=1.0, doc="off by default: faces and plates have an up")
    affine_p: float = _opt(0.3, low=0.0, high=1.0)
    scale: float = _opt(0.1, low=0.0, high=0.9, doc="± relative zoom")
    rotation: float = _opt(5.0, low=0.0, high=180.0, doc="± degrees")
    translate: float = _opt(0.0, low=0.0, high=1.0, doc="± fraction of the patch, where the frame is too "
                            "small to place patches at random")
    colour_p: float = _opt(0.3, low=0.0, high=1.0)
    exposure: float = _opt(0.1, low=0.0, high=4.0, doc="± stops (gain on display values)")
    gamma: float = _opt(0.05, low=0.0, high=0.9, doc="± relative change of the exponent")
    saturation: float = _opt(0.05, low=0.0, high=1.0, doc="± relative change (RGB only)")
    hue: float = _opt(0.01, low=0.0, high=0.5, doc="± fraction of a hue turn (RGB only)")


@dataclass(frozen=True)
class DataConfig(_Section):
    """How keyframes become batches."""

    # Upper bound: far above what any device trains with, far below a value that asks the allocator
    # for terabytes (1e12 read as a batch size).
    batch_size: int = _opt(8, low=1, high=1024)
    validation_frames: tuple[int, ...] = _opt((), doc="keyframes held out of training to validate on")
    mask_outside_weight: float = _opt(0.1, low=0.0, high=1.0,
                                      doc="loss weight outside an artist's mask (inside is 1)")
    preview_frames: int = _opt(3, low=0, doc="non-key frames shown in the contact sheet")
    temporal_pairs: int = _opt(16, low=1, high=100_000, doc="consecutive frame pairs of the shot, spread over it, "
                               "that loss.temporal learns from (each held in memory with its flow)")
    temporal_batch: int = _opt(2, low=1, high=1024, doc="frame pairs per step for loss.temporal (each adds two "
                               "patches to the batch)")
    edit_focus: float = _opt(0.0, low=0.0, high=1.0, doc="share of training patches centred on pixels a keyframe "
                             "changed (a paint-out's markers or wire); off for an edit of more than half the "
                             "pixels (a grade); 0: patches placed uniformly")
    edit_weight: float = _opt(1.0, low=1.0, high=1000.0, doc="loss weight of pixels a keyframe changed, against 1 "
                              "for those it left as the plate; off for an edit of more than half the pixels (a "
                              "grade); 1: all alike")


@dataclass(frozen=True)
class TrainConfig(_Section):
    """The optimisation loop."""

    steps: int = _opt(2000, low=1)
    lr: float = _opt(2e-3, low=0.0, high=1.0)
    weight_decay: float = _opt(1e-4, low=0.0)
    warmup_steps: int = _opt(100, low=0)
    grad_clip: float = _opt(1.0, low=0.0, doc="max gradient norm; 0 turns clipping off")
    seed: int = _opt(0, low=0, high=2**64 - 1, doc="as torch.manual_seed takes it")
    device: str = _opt("auto", doc="auto, cpu, cuda, cuda:N or mps")
    amp: str = _opt("auto", choices=("auto", "off", "bf16", "fp16"), doc="auto: bf16 on CUDA and on CPUs with "
                    "native bf16 (AVX-512-BF16, AMX), else fp32")
    threads: int = _opt(0, low=0, high=1024, doc="CPU threads; 0: OMP_NUM_THREADS when set, else the cores this "
                      "process may use (CPU affinity, cgroup quota)")
    checkpoint_every: int = _opt(250, low=1)
    checkpoint_minutes: float = _opt(1.0, low=0.0, high=1440.0, doc="also checkpoint when this many minutes "
                                     "have passed since the last checkpoint, so a kill loses at most that; 0: off")
    keep_checkpoints: int = _opt(3, low=1)
    preview_every: int = _opt(500, low=1)
    validate_every: int = _opt(100, low=1, doc="steps between validations on data.validation_frames")


@dataclass(frozen=True)
class RenderConfig(_Section):
    """Full-resolution inference."""

    # Upper bounds: a tile side of a million pixels is past any frame (a larger one would render it whole all the
    # same), so a larger value is a slip of the hand, said at once rather than by the tiling mid-render.
    tile: int = _opt(0, low=0, high=2**20, doc="frames larger than this are rendered in overlapping tiles; 0: by "
                     "device (CPU: frames up to 2K whole, larger in 1216 tiles, 4K under 2 GB; CUDA: 4096)")
    tile_overlap: int | None = _opt(None, low=0, high=2**19, doc="unset: the network's reach, so seams cannot show")
    blend: str = _opt("hann", choices=("hann", "linear"))
    precision: str = _opt("auto", choices=("auto", "fp32", "tf32", "bf16", "fp16"),
                          doc="auto: fp16 on CUDA for 8-bit outputs (checked against fp32 on the first "
                          "frame), else fp32")
    compile: str = _opt("auto", choices=("auto", "always", "never"), doc="torch.compile the network; auto: on CUDA")

    def __post_init__(self) -> None:
        super().__post_init__()
        if 0 < self.tile < 32:
            raise ConfigError(f"render.tile = {self.tile} is out of range (must be >= 32, or 0 for the device's "
                              "default)")
        if self.tile and self.tile_overlap is not None and 2 * self.tile_overlap > self.tile:
            raise ConfigError(f"render.tile_overlap = {self.tile_overlap} must be at most half "
                              f"of render.tile = {self.tile}")


@dataclass(frozen=True)
class ColourConfig(_Section):
    """OpenColorIO colour spaces ("auto": chosen from the data; resolved names are saved in run.json)."""

    source: str = _opt("auto", doc="space of the plates, keyframes and renders; auto: the config's "
                       "scene_linear role for float data, texture_paint (sRGB) for integer data")
    working: str = _opt("auto", doc="space the network sees; auto: the color_timing role (ACEScct) for "
                        "float data, the source space for integer data")
    config: str = _opt("auto", doc="an OCIO config file or ocio:// URI; auto: $OCIO, else the built-in "
                       "ACES studio config")


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    colour: ColourConfig = field(default_factory=ColourConfig)


_SECTION_NAMES = {LossConfig: "loss", AugmentConfig: "augment", DataConfig: "data",
                  TrainConfig: "train", RenderConfig: "render", ColourConfig: "colour",
                  ExtraLossConfig: "loss.extra[]"}


# --- dict / YAML round trip -------------------------------------------------------------------

def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain nested dicts and lists, ready for YAML or JSON."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        if isinstance(section, ModelConfig):
            out[f.name] = {"arch": section.arch, **dict(section.args)}
        else:
            out[f.name] = _section_to_dict(section)
    return out


def _section_to_dict(section: Any) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, tuple):
            value = [_section_to_dict(v) if dataclasses.is_dataclass(v) else v for v in value]
        out[f.name] = value
    return out


def config_from_dict(data: Mapping[str, Any] | None, origin: str = "config") -> Config:
    """Build a Config from nested dicts, checking every key and value.

    Args:
        data: Nested mapping as read from YAML; missing keys take the defaults.
        origin: Where the data came from, for error messages (a file name).
    """
    data = dict(data or {})
    sections: dict[str, Any] = {}
    hints = get_type_hints(Config)
    for key, value in data.items():
        if key not in hints:
            raise ConfigError(f"unknown config section {key!r} in {origin} "
                              f"(known: {', '.join(hints)})")
        if not isinstance(value, Mapping):
            raise ConfigError(f"config section {key!r} in {origin} must be a mapping, got {value!r}")
        try:
            sections[key] = _build_section(hints[key], key, value, origin)
        except ConfigError as err:
            raise ConfigError(f"{err} in {origin}") from None
    return Config(**sections)


def _build_section(cls: type, name: str, values: Mapping[str, Any], origin: str) -> Any:
    if cls is ModelConfig:
        values = dict(values)
        return ModelConfig(arch=values.pop("arch", ModelConfig.arch), args=values)
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            known = ", ".join(f.name for f in dataclasses.fields(cls))
            raise ConfigError(f"unknown config key '{name}.{key}' (known: {known})")
        kwargs[key] = _coerce(hints[key], f"{name}.{key}", value, origin)
    return cls(**kwargs)


def _coerce(hint: Any, key: str, value: Any, origin: str) -> Any:
    if hint == int | None:
        return None if value is None else _coerce(int, key, value, origin)
    if hint in (int, float) and isinstance(value, str):
        value = _parse_number(value)  # PyYAML reads '3e-4' (no dot) as a string
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):  # YAML 1.1 reads off/on/no/yes as booleans: train.amp=off means "off"
            return "on" if value else "off"
    elif hint == tuple[int, ...]:
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
        raise ConfigError(f"{key} = {value!r} must be a list of frame numbers")
    elif hint == tuple[ExtraLossConfig, ...]:
        if isinstance(value, (list, tuple)):
            items = []
            for item in value:
                if not isinstance(item, Mapping):
                    raise ConfigError(f"{key} entries must be mappings, got {item!r}")
                items.append(_build_section(ExtraLossConfig, key, item, origin))
            return tuple(items)
    raise ConfigError(f"{key} = {value!r} must be {_TYPE_WORDS.get(hint, 'a list of mappings')}")


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _parse_number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def load_config(path: str | Path) -> Config:
    """Read a YAML config; a missing or malformed file is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config {quoted(path)} does not exist") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config {quoted(path)} is not a YAML text file (not UTF-8 at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"config {quoted(path)} cannot be read ({err.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {quoted(path)} is not valid YAML{where}") from None
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        raise ConfigError(f"config {quoted(path)} is nested too deeply to be a shotfit config") from None
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"config {quoted(path)} must hold a mapping of sections")
    return config_from_dict(data, origin=quoted(path))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the config as YAML, atomically."""
    write_text_atomic(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def parse_override(item: str) -> tuple[str, str, Any]:
    """``"train.steps=500"`` -> ``("train", "steps", 500)``: the one reader of ``section.key=value``.

    The value is parsed as YAML (``0.5``, ``true``, ``[1, 2]``; a bare word, and ``3e-4``, stay
    strings, which the config's own check turns into numbers); section and key are checked against
    the config by :func:`apply_overrides`, not here.
    """
    key, sep, raw = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise ConfigError(f"override {item!r} must look like section.key=value (e.g. train.lr=3e-4)",
                          parameter="overrides")
    try:
        value = yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError):
        raise ConfigError(f"override {item!r}: cannot parse the value {raw!r}", parameter="overrides") from None
    return parts[0], parts[1], value


def apply_overrides(cfg: Config, overrides: Iterable[str], *, origin: str = "--set",
                    parameter: str = "overrides") -> Config:
    """Apply ``section.key=value`` overrides (read by :func:`parse_override`) on top of ``cfg``; errors name
    ``origin`` (where the overrides came from: the CLI's ``--set``, a service job's settings) and ``parameter``."""
    parsed = [(item, *parse_override(item)) for item in overrides]
    return _set_values(cfg, [(f"override {item!r}", section, name, value) for item, section, name, value in parsed],
                       origin=origin, parameter=parameter)


def apply_values(cfg: Config, values: Mapping[str, Any], *, origin: str = "the settings",
                 parameter: str = "overrides") -> Config:
    """``cfg`` with each dotted key (``"loss.lpips"``) set to its typed value, checked as a config file's
    values are. A sweep's samplers return numpy scalars: a value with ``.item()`` is read as the number it holds.

    Raises:
        ConfigError: one line naming the key at fault (unknown key, a value of the wrong type or range).
    """
    items = []
    for key, value in values.items():
        section, _, name = key.partition(".")
        if not name or "." in name or not section:
            raise ConfigError(f"{key!r} in {origin} is not a config key (section.key, e.g. train.lr)",
                              parameter=parameter)
        items.append((repr(key), section, name, value.item() if hasattr(value, "item") else value))
    return _set_values(cfg, items, origin=origin, parameter=parameter)


def _set_values(cfg: Config, items: Iterable[tuple[str, str, str, Any]], *, origin: str, parameter: str) -> Config:
    """``cfg`` with each ``(where, section, key, value)`` set, then checked whole; ``where`` names the item
    in the error when its section is unknown."""
    data = config_to_dict(cfg)
    for where, section, name, value in items:
        if section not in data:
            raise ConfigError(f"unknown config section {section!r} in {where} (known: {', '.join(data)})",
                              parameter=parameter)
        data[section][name] = value
    return config_from_dict(data, origin=origin)
