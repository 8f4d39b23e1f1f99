"""What to train in the cloud: the top trials of a sweep, or config files, each a Config and the keys given.

A job's config travels as hyperparameters (``"loss.lpips": "0.3"``) that the container applies to the
defaults. A candidate carries its :class:`~shotfit.config.Config` and the dotted keys that were given
for it (a config file's own keys, a sweep's settings and the trial's, ``--set``), and only those keys
travel; the keys that belong to the machine rather than the edit are left out unless ``--set`` gives
them: ``train.threads`` and ``train.device`` (the job picks its own), and ``train.steps`` (a job trains
for its time budget, or to ``--steps``). The values become strings only in :meth:`Candidate.hyperparameters`.

From a sweep folder (``shotfit sweep --out``): the finished trials ranked as the sweep ranks them
(:func:`shotfit.search.results.rank`, top-k phase first when it finished), each rebuilt as
``base.yaml`` + the trial's settings. The sweep's held-out keyframes stay held out by default, so
every job reports the ``val/*`` numbers the sweep ranked by; ``hold_out=False`` trains on all of them.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shotfit.cloud import contract
from shotfit.cloud.shot_upload import ShotPaths
from shotfit.config import Config, apply_values, config_to_dict, load_config
from shotfit.errors import ConfigError, RunError, quoted
from shotfit.runs.folder import read_json
from shotfit.runs.record import RunInfo
from shotfit.search.results import collect, rank
from shotfit.search.spec import METRICS
from shotfit.search.values import config_file_keys, read_settings

MACHINE_KEYS = ("train.threads", "train.device", "train.steps")


@dataclass(frozen=True)
class Candidate:
    """One configuration to train: a short name, its config and the keys given for it, where it comes from."""

    name: str
    config: Config
    given: tuple[str, ...]  # the dotted keys of config that travel (set by the user, the sweep, the trial)
    origin: str  # for the plan: "trial-003 (val/lpips 0.1234)" or "config 'a.yaml'"
    steps: int | None = None  # a config file's own train.steps (None: the time budget decides)

    @property
    def settings(self) -> dict[str, Any]:
        """The given keys and their values (``{"loss.lpips": 0.3}``), in the config's order (the
        network's options by name, after ``model.arch``)."""
        given = set(self.given)
        settings = {}
        for section, values in config_to_dict(self.config).items():
            keys = sorted(values, key=lambda k: (k != "arch", k)) if section == "model" else list(values)
            settings.update({f"{section}.{k}": values[k] for k in keys if f"{section}.{k}" in given})
        return settings

    def hyperparameters(self) -> dict[str, str]:
        """The settings as SageMaker hyperparameters: every value a string that reads back the same."""
        return contract.to_hyperparameters({key: override_text(value) for key, value in self.settings.items()})


@dataclass(frozen=True)
class Choice:
    """What a launch trains: the candidates (``--set`` applied and checked), the shot, a label for job names."""

    candidates: tuple[Candidate, ...]
    shot: ShotPaths
    label: str  # the sweep's name, or "shotfit" for config files
    described: str  # "sweep 'loss-ablation'" or "config files"
    notes: tuple[str, ...] = ()


def choose(sweep: Path | None = None, top: int = 5, configs: Sequence[Path] = (), shot: ShotPaths | None = None,
           masks: str | None = None, hold_out: bool = True, extra: Sequence[str] = ()) -> Choice:
    """The candidates of a sweep's best trials or of config files, and the shot they train on (``shot``,
    else the sweep's; ``masks`` adds mattes to the sweep's shot).

    Raises:
        ConfigError: both or neither of a sweep and config files, no shot, a key the config refuses.
    """
    if (sweep is None) == (not configs):
        raise ConfigError("give a sweep folder (its best trials) or config files (one job per file)")
    if sweep is not None:
        pick = from_sweep(sweep, top, hold_out)
        candidates, label, notes, described = pick.candidates, pick.name, pick.notes, f"sweep '{pick.name}'"
        shot = shot or (dataclasses.replace(pick.shot, masks=masks or pick.shot.masks) if pick.shot else None)
    else:
        candidates, label, notes, described = tuple(from_configs(configs)), "shotfit", (), "config files"
    if shot is None:
        raise ConfigError("give the source and its keyframes: the shot to train on" + (
            " (the sweep's trials no longer say where theirs is)" if sweep is not None else ""))
    return Choice(tuple(check_candidate(c, extra) for c in candidates), shot, label, described, notes)


@dataclass(frozen=True)
class SweepPick:
    """The trials chosen from a sweep, the sweep's shot (None if it cannot be told) and a note."""

    name: str
    metric: str
    candidates: tuple[Candidate, ...]
    shot: ShotPaths | None
    notes: tuple[str, ...] = field(default_factory=tuple)


def override_text(value: Any) -> str:
    """A value as ``apply_overrides`` reads it back unchanged: plain strings stay plain, the rest is JSON."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value)


def check_candidate(candidate: Candidate, extra: Sequence[str] = ()) -> Candidate:
    """The candidate with ``extra`` (``--set``: ``section.key=value``) applied and its keys given.

    Raises:
        ConfigError: one line naming the candidate and the key at fault.
    """
    try:
        values = read_settings(extra)
        if "train.steps" in values:
            raise ConfigError("set train.steps: give the steps option instead (a job trains for its time "
                              "budget, or up to its steps, whichever ends first)")
        cfg = apply_values(candidate.config, values, origin="the overrides")
    except ConfigError as err:
        raise ConfigError(f"{candidate.origin}: {err}") from None
    extra_keys = tuple(values)
    given = tuple(k for k in dict.fromkeys((*candidate.given, *extra_keys))
                  if k not in MACHINE_KEYS or k in extra_keys)
    if len(given) > 95:  # SageMaker takes at most 100 hyperparameters; a few are options
        raise ConfigError(f"{candidate.origin}: {len(given)} given config keys is more than a training "
                          "job's 100 hyperparameters allow")
    return dataclasses.replace(candidate, config=cfg, given=given)


def from_configs(paths: Sequence[Path]) -> list[Candidate]:
    """One candidate per config file, named after the file (``a.yaml`` -> ``a``): the keys the file sets."""
    candidates = []
    names: set[str] = set()
    for path in paths:
        cfg = load_config(path)
        given = config_file_keys(path)
        name = job_word(Path(path).stem) or "config"
        while name in names:
            name = f"{name}-{len(names) + 1}"
        names.add(name)
        steps = cfg.train.steps if "train.steps" in given else None
        candidates.append(Candidate(name, cfg, _edit_keys(given), f"config {quoted(path)}", steps))
    return candidates


def from_sweep(out: Path, top: int, hold_out: bool = True) -> SweepPick:
    """The ``top`` best finished trials of the sweep in ``out``, best first.

    Raises:
        ConfigError: ``out`` is not a sweep folder, or no trial has finished with a score.
    """
    out = Path(out)
    try:
        state = json.loads((out / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"sweep folder {quoted(out)} is not a sweep folder (no readable sweep.json): give "
                          "the folder a sweep wrote") from None
    if not (out / "base.yaml").is_file():
        raise ConfigError(f"sweep folder {quoted(out)} has no base.yaml (the config every trial started from)")
    sweep_file = state.get("sweep_file") or {}
    name = str(state.get("name") or out.name)
    metric = str(sweep_file.get("metric", "val/lpips"))
    mode = METRICS.get(metric, "min")
    base = load_config(out / "base.yaml")
    # what the sweep set; a sweep that did not record it hands over the whole of base.yaml
    base_keys = state.get("base_keys")
    base_given = tuple(base_keys) if isinstance(base_keys, list) else config_file_keys(out / "base.yaml")

    rows = collect(out)
    top_k = rank([r for r in rows if r.phase == "top-k"], metric, mode)
    search = rank([r for r in rows if r.phase == "search"], metric, mode)
    pool = top_k if any(r.status == "finished" for r in top_k) else search
    finished = [r for r in pool if r.status == "finished" and r.value(metric) is not None]
    if not finished:
        raise ConfigError(f"sweep {quoted(out)} has no finished trial scored by {metric} yet")
    chosen = finished[:top]
    notes = [f"sweep '{name}' has {len(finished)} finished trial{'s' if len(finished) != 1 else ''}; "
             f"launching {len(chosen)}"] if len(finished) < top else []
    candidates = []
    for row in chosen:
        try:
            cfg = apply_values(base, row.params, origin=f"trial {row.name}'s settings")
        except ConfigError as err:
            raise ConfigError(f"sweep {quoted(out)}: trial {row.name}: {err}") from None
        given = _edit_keys((*base_given, *row.params))
        if not hold_out:
            given = tuple(k for k in given if k != "data.validation_frames")
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, validation_frames=()))
        origin = f"trial {row.name} ({metric} {row.value(metric):.4g})"
        candidates.append(Candidate(row.name, cfg, given, origin))
    return SweepPick(name, metric, tuple(candidates), _sweep_shot(out, chosen, sweep_file), tuple(notes))


def _edit_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """The keys that travel: each once, the machine's left to the job."""
    return tuple(k for k in dict.fromkeys(keys) if k not in MACHINE_KEYS)


def job_word(text: str) -> str:
    """``text`` as a piece of a SageMaker job name: letters, digits and single hyphens."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _sweep_shot(out: Path, rows: Sequence[Any], sweep_file: Mapping[str, Any]) -> ShotPaths | None:
    """The shot the trials trained on, from their run folders (absolute paths), else the sample's."""
    for row in rows:
        path = Path(row.run) / "run.json"
        try:
            info = RunInfo.from_dict(read_json(path, "run description"), quoted(path))
        except RunError:
            continue
        if info.source and info.keyframes:
            return ShotPaths(info.source, info.keyframes, info.masks)
    if sweep_file.get("shot") == "sample" and (out / "sample" / "source").is_dir():
        return ShotPaths(str(out / "sample" / "source"), str(out / "sample" / "keyframes"))
    source, keyframes = sweep_file.get("source"), sweep_file.get("keyframes")
    if isinstance(source, str) and isinstance(keyframes, str) and Path(source).is_absolute() \
            and Path(keyframes).is_absolute():
        masks = sweep_file.get("masks")
        return ShotPaths(source, keyframes, masks if isinstance(masks, str) else None)
    return None

