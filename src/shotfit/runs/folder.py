"""A run folder: everything one training run writes, and all that rendering needs.

```
RUN/
  config.yaml          the resolved config (every default written out)
  run.json             what it was trained on: source, keyframes, masks, frame numbers, pixel format
                       (read and written as a typed RunInfo, shotfit.runs.record)
  checkpoints/         step_000250.pt ... (the last K; written atomically)
  model.pt             the final weights with the network's name and constructor arguments
  previews/            contact sheets: step_000500.png ... final.png
  metrics.json         loss terms by step and the final numbers
```
"""

from __future__ import annotations

import errno
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

from shotfit import __version__
from shotfit.config import Config, load_config, save_config
from shotfit.errors import RunError, quoted
from shotfit.files import atomic_path, write_text_atomic
from shotfit.io.masks import ALPHA
from shotfit.runs.record import RunInfo

CHECKPOINT_NAME = re.compile(r"^step_(\d+)\.pt$")
MODEL_FILE = "model.pt"


class RunFolder:
    """Paths and files of one run; reading and writing them with clear errors."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.info_path = self.path / "run.json"
        self.checkpoints = self.path / "checkpoints"
        self.previews = self.path / "previews"
        self.metrics_path = self.path / "metrics.json"
        self.model_path = self.path / MODEL_FILE

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def is_run(self) -> bool:
        return self.config_path.is_file()

    def require_run(self) -> None:
        if not self.path.is_dir():
            raise RunError(f"run folder {quoted(self.path)} does not exist")
        if not self.is_run():
            raise RunError(f"{quoted(self.path)} is not a shotfit run folder (no config.yaml)")

    # --- config and info -----------------------------------------------------------------------

    def write_config(self, cfg: Config) -> None:
        save_config(cfg, self.config_path)

    def read_config(self) -> Config:
        self.require_run()
        return load_config(self.config_path)

    def write_info(self, info: RunInfo) -> None:
        write_json(self.info_path, info.to_dict(__version__))

    def read_info(self) -> RunInfo:
        """run.json, checked: a wrong type or a missing field is a RunError naming the file and the field."""
        self.require_run()
        data = read_json(self.info_path, what="run description")
        return RunInfo.from_dict(data, f"run description {quoted(self.info_path)}")

    def inputs(self, info: RunInfo) -> list[tuple[str, str | Path]]:
        """What a command working from this run must never write among or over, as (what, spec) pairs for
        :func:`shotfit.files.guard_output`: the shot, keyframes and masks it was trained on, its model
        and its checkpoints."""
        inputs: list[tuple[str, str | Path]] = [
            (what, spec) for what, spec in (("source", info.source), ("keyframes", info.keyframes),
                                            ("masks", info.masks)) if spec and spec != ALPHA]
        if self.model_path.is_file():
            inputs.append(("trained model", self.model_path))
        if self.checkpoints.is_dir():
            inputs.append(("checkpoints", self.checkpoints))
        return inputs

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.metrics_path, metrics)

    # --- checkpoints ---------------------------------------------------------------------------

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:06d}.pt"

    def list_checkpoints(self) -> list[Path]:
        """Checkpoints sorted by step, oldest first."""
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir()
                 if (m := CHECKPOINT_NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest_checkpoint(self) -> Path | None:
        found = self.list_checkpoints()
        return found[-1] if found else None

    def save_checkpoint(self, state: dict[str, Any], step: int, keep: int) -> Path:
        """Write ``state`` as the checkpoint of ``step`` and keep only the newest ``keep``."""
        path = self.checkpoint_path(step)
        save_state(state, path)
        for old in self.list_checkpoints()[:-keep]:
            old.unlink(missing_ok=True)
        return path

    def weights_path(self) -> Path:
        """The file rendering reads: the final model, else the newest checkpoint of a stopped run."""
        self.require_run()
        if self.model_path.is_file():
            return self.model_path
        latest = self.latest_checkpoint()
        if latest is None:
            raise RunError(f"run folder {quoted(self.path)} has no model.pt and no checkpoints "
                           "(has it trained a step yet?)")
        return latest


def model_state(state: dict[str, Any]) -> dict[str, Any]:
    """What ``model.pt`` holds, from a checkpoint: the weights and what rebuilds the network, nothing
    to resume (no optimiser, no history)."""
    return {"shotfit": state.get("shotfit", __version__), "kind": "model", "step": state["step"],
            "arch": state["arch"], "arch_args": dict(state["arch_args"]), "network": state["network"]}


def save_state(state: dict[str, Any], path: Path) -> None:
    """torch.save through a temporary file and a rename."""
    import torch  # here, not above: rendering through onnxruntime reads run folders without PyTorch

    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise RunError(f"cannot write {quoted(path)}: the disk is full ({err.strerror})") from None
            raise
        except RuntimeError as err:  # torch's zip writer reports a failed write (a full disk) as "unexpected pos"
            detail = str(err).splitlines()[0][:120] if str(err) else "write failed"
            raise RunError(f"cannot write {quoted(path)}: the write failed; is the disk full? ({detail})") from None


def load_state(path: Path) -> dict[str, Any]:
    """Load a checkpoint or model file; a damaged or foreign file is a one-line RunError.

    Every file shotfit saves is a PyTorch zip archive: anything else (random bytes, a file cut short,
    whose zip directory at the end is missing) is said to be no shotfit file before torch reads it,
    so the message speaks of the file, not of torch's loader options.
    """
    import torch

    what = "model file" if path.name == MODEL_FILE else "checkpoint"
    try:
        archive = zipfile.is_zipfile(path)
    except OSError as err:
        raise RunError(f"{what} {quoted(path)} cannot be read ({err.strerror or type(err).__name__})") from None
    if not archive:
        if not path.exists():
            raise RunError(f"{what} {quoted(path)} does not exist")
        raise RunError(f"{quoted(path)} is not a shotfit {what} (damaged, cut short or made by another program)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{what} {quoted(path)} does not exist") from None
    except Exception as err:  # torch raises many kinds for damaged files
        detail = "it holds objects other than weights" if isinstance(err, pickle.UnpicklingError) else (
            f"{type(err).__name__}: {str(err).splitlines()[0][:120]}" if str(err) else "damaged file")
        raise RunError(f"{quoted(path)} is not a shotfit {what} ({detail})") from None
    if not isinstance(state, dict) or "network" not in state or "arch" not in state:
        raise RunError(f"{quoted(path)} is not a shotfit {what}")
    return state


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def read_json(path: Path, what: str = "file") -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{what} {quoted(path)} does not exist") from None
    except (OSError, ValueError) as err:
        raise RunError(f"{what} {quoted(path)} cannot be read ({err})") from None
