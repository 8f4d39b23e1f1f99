"""From a sweep file to a plan: the shot's folders, the hold-out, the base config, every trial checked.

Everything a trial could fail on because of the sweep file is found here, before Ray starts: an unknown
config key, a value out of range, a distribution on an integer setting, a hold-out that is not a
keyframe or leaves none to train on.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.archs import build_network, resolve_network_args
from shotfit.config import Config, apply_overrides, apply_values, load_config
from shotfit.data.keyframes import pair_keyframes
from shotfit.device import seeded_build
from shotfit.errors import ConfigError, ShotfitError, quoted
from shotfit.infer.tile_plan import default_tile
from shotfit.io import open_shot
from shotfit.sample_footage import prepare_sample
from shotfit.search.spec import Budget, Dimension, SweepSpec
from shotfit.search.values import config_file_keys, read_settings

log = logging.getLogger(__name__)

# A Ray worker with torch, the perceptual network and the trackers loaded, before any frame.
WORKER_BYTES = 1_200 * 2**20


@dataclass(frozen=True)
class ShotFolders:
    """Absolute paths of the shot a sweep trains on, and what was read of it."""

    source: Path
    keyframes: Path
    masks: Path | None
    truth: Path | None
    keyframe_frames: tuple[int, ...]
    held_out: tuple[int, ...]  # source frames nobody fixed: scored against the truth
    frame_size: tuple[int, int]


@dataclass(frozen=True)
class SweepPlan:
    """What the runner needs: the spec, the shot, the base config every trial starts from."""

    spec: SweepSpec
    out: Path
    shot: ShotFolders
    base: Config  # config file + set: + the hold-out
    given: tuple[str, ...]  # the dotted keys of base that the sweep set (config file, set:, hold-out)
    budget: Budget  # steps resolved from the base config when the sweep file names none
    memory_per_trial: int  # bytes, a rough upper estimate for scheduling

    @property
    def validation_frames(self) -> tuple[int, ...]:
        return self.base.data.validation_frames


def plan_sweep(spec: SweepSpec, out: str | Path) -> SweepPlan:
    """Check the sweep against its shot and the config schema; the sample is decoded into OUT/sample.

    Raises:
        ShotfitError: one line naming the sweep file and the key at fault (or the frame file).
    """
    out = Path(out).resolve()
    shot = _shot_folders(spec, out)
    base, given = _base_config(spec)
    if len(shot.keyframe_frames) < 2:
        raise _error(spec, "keyframes", f"{quoted(shot.keyframes)} holds only 1 keyframe, and a sweep scores "
                                        "each trial on a keyframe held out of training: add keyframes")
    frames = spec.validation_frames or base.data.validation_frames or auto_validation_frames(shot.keyframe_frames)
    key = "validation_frames" if spec.validation_frames else "config data.validation_frames"
    unknown = [f for f in frames if f not in shot.keyframe_frames]
    if unknown:
        raise _error(spec, key, f"frame {unknown[0]} is not a keyframe (keyframes: "
                                f"{', '.join(map(str, shot.keyframe_frames))})")
    if len(set(frames)) >= len(shot.keyframe_frames):
        raise _error(spec, key, f"holds out every keyframe ({', '.join(map(str, frames))}); keep at least "
                                "one to train on")
    base = dataclasses.replace(base, data=dataclasses.replace(base.data, validation_frames=tuple(frames)))
    check_trials(spec, base)
    budget = spec.budget if spec.budget != Budget() else Budget(steps=base.train.steps)
    given = tuple(dict.fromkeys((*given, "data.validation_frames")))
    return SweepPlan(spec, out, shot, base, given, budget, estimate_trial_memory(spec, base, shot))


def auto_validation_frames(keyframes: Sequence[int]) -> tuple[int, ...]:
    """The hold-out when the sweep names none: the keyframe nearest the middle of the keyframed span,
    or, from 8 keyframes on, the two nearest its thirds (one hole in the middle would be harder to
    bridge than the shot ever asks)."""
    if len(keyframes) < 2:
        raise ValueError(f"holding a keyframe out needs 2 or more, got {list(keyframes)}")
    first, last = keyframes[0], keyframes[-1]
    marks = (0.5,) if len(keyframes) < 8 else (1 / 3, 2 / 3)
    chosen = []
    for mark in marks:
        target = first + mark * (last - first)
        chosen.append(min((f for f in keyframes if f not in chosen), key=lambda f: (abs(f - target), f)))
    return tuple(sorted(chosen))


def check_trials(spec: SweepSpec, base: Config) -> None:
    """Build every configuration the sweep can reach (per value: the list, the choices, both bounds)."""
    for trial in spec.trials:
        _build(spec, f"trials.{trial.name}", base, trial.values)
    for key, dim in spec.space.items():
        where = f"space.{key}"
        current = _current_value(spec, base, key)
        if dim.kind in ("uniform", "loguniform") and isinstance(current, int) and not isinstance(current, bool):
            raise _error(spec, where, f"{key} is an integer setting: use randint, lograndint, choice or a list")
        for value in dim.values:
            _build(spec, where, base, {key: value})
    grid = [spec.space[k].values for k in spec.space] if spec.strategy == "grid" else []
    if grid and _product_size(grid) <= 512:
        for combination in _product(list(spec.space), grid):
            _build(spec, "space", base, combination)


def estimate_trial_memory(spec: SweepSpec, base: Config, shot: ShotFolders) -> int:
    """Bytes one trial may use at most, roughly: the worker, the keyframes, the widest network's
    activations on whole frames (validation, previews) and on training batches, and with the temporal
    term the frame pairs it holds (two frames, flow and mask each) and their patches."""
    widths = [base.model.args.get("width", 32)]
    if "model.width" in spec.space:
        widths += [v for v in spec.space["model.width"].values if isinstance(v, (int, float))]
    width = max(int(w) for w in widths)
    height, frame_width = shot.frame_size
    pixels = min(height * frame_width, default_tile(base.render.tile, "cpu", height, frame_width) ** 2)
    keyframe_bytes = len(shot.keyframe_frames) * height * frame_width * 3 * 4 * 4
    inference = 8 * width * pixels * 4
    temporal = [base.loss.temporal]
    if "loss.temporal" in spec.space:
        temporal += [v for v in spec.space["loss.temporal"].values if isinstance(v, (int, float))]
    pairs, patches = 0, base.data.batch_size
    if max(temporal) > 0:
        pairs = base.data.temporal_pairs * height * frame_width * (3 + 3 + 2 + 1) * 4
        patches += 2 * base.data.temporal_batch
    training = 40 * width * patches * base.augment.patch_size ** 2 * 4
    return int(WORKER_BYTES + keyframe_bytes + pairs + inference + training)


# --- helpers ------------------------------------------------------------------------------------

def _shot_folders(spec: SweepSpec, out: Path) -> ShotFolders:
    if spec.shot == "sample":
        folders = prepare_sample(out / "sample")
        source, keyframes, masks, truth = folders["source"], folders["keyframes"], None, folders["truth"]
    else:
        source, keyframes, masks, truth = spec.source, spec.keyframes, spec.masks, spec.truth
    assert source is not None and keyframes is not None  # the spec insists
    for key, path in (("source", source), ("keyframes", keyframes), ("masks", masks), ("truth", truth)):
        if path is not None and not path.exists():
            raise _error(spec, key, f"{quoted(path)} does not exist")
    shot = open_shot(source)
    pairs = pair_keyframes(shot, open_shot(keyframes), None if masks is None else open_shot(masks))
    frames = tuple(p.frame for p in pairs)
    held_out = tuple(f for f in shot.frames if f not in frames)
    if truth is not None:
        truth_frames = set(open_shot(truth).frames)
        missing = [f for f in held_out if f not in truth_frames]
        if missing:
            raise _error(spec, "truth", f"{quoted(truth)} has no frame {missing[0]} (the truth must cover "
                                        "every frame that is not a keyframe)")
    return ShotFolders(source, keyframes, masks, truth, frames, held_out, tuple(pairs[0].source.shape[:2]))


def _base_config(spec: SweepSpec) -> tuple[Config, tuple[str, ...]]:
    """The config every trial starts from, and the dotted keys the config file and set: gave."""
    given: tuple[str, ...] = ()
    if spec.config is not None:
        try:
            base = load_config(spec.config)
        except ConfigError as err:
            raise _error(spec, "config", str(err)) from None
        given = config_file_keys(spec.config)
    else:
        base = Config()
    try:
        base = apply_overrides(base, spec.overrides)  # the sweep file's set: list, as --set reads it
        given = (*given, *read_settings(spec.overrides))
    except ShotfitError as err:
        raise _error(spec, "set", str(err)) from None
    return _check_network(spec, "set", base), tuple(dict.fromkeys(given))


def _build(spec: SweepSpec, where: str, base: Config, values: Mapping[str, Any]) -> Config:
    """The config with ``values`` set, and its network built once."""
    try:
        cfg = apply_values(base, values, origin="the sweep file")
    except ShotfitError as err:
        raise _error(spec, where, str(err)) from None
    return _check_network(spec, where, cfg)


def _check_network(spec: SweepSpec, where: str, cfg: Config) -> Config:
    """Model options are only checked by the architecture's constructor: build the network once."""
    try:
        seeded_build(lambda: build_network(cfg.model.arch, **{"in_channels": 3, "out_channels": 3, **cfg.model.args}),
                     0)
    except ShotfitError as err:
        raise _error(spec, where, str(err)) from None
    except (TypeError, ValueError) as err:  # a constructor refusing a value of the wrong kind
        raise _error(spec, where, f"model options {dict(cfg.model.args)} are refused by "
                                  f"{cfg.model.arch!r}: {err}") from None
    return cfg


def _current_value(spec: SweepSpec, base: Config, key: str) -> Any:
    section, name = key.split(".")
    if section == "model":
        try:
            return resolve_network_args(base.model.arch, {"in_channels": 3, "out_channels": 3,
                                                          **base.model.args}).get(name)
        except ShotfitError as err:
            raise _error(spec, f"space.{key}", str(err)) from None
    return getattr(getattr(base, section, None), name, None)


def _product_size(values: list[tuple[Any, ...]]) -> int:
    size = 1
    for v in values:
        size *= len(v)
    return size


def _product(keys: list[str], values: list[tuple[Any, ...]]) -> Iterable[dict[str, Any]]:

    for combination in itertools.product(*values):
        yield dict(zip(keys, combination, strict=True))


def _error(spec: SweepSpec, key: str, problem: str) -> ConfigError:
    return ConfigError(f"sweep {quoted(spec.path)}: {key}: {problem}")


def describe_dimension(dim: Dimension) -> str:
    """``[0, 0.1, 0.3]`` or ``loguniform(0.0001, 0.01)``, for tables and logs."""
    if dim.kind == "list":
        return "[" + ", ".join(map(str, dim.values)) + "]"
    return f"{dim.kind}({', '.join(map(str, dim.values))})"
