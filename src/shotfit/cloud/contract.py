"""What a SageMaker training job and shotfit agree on: paths, channels, hyperparameters, metric lines.

Inside a job, SageMaker (the training-container contract) lays out::

    /opt/ml/input/config/hyperparameters.json   every value a string
    /opt/ml/input/data/source/                  the plates (frames, or one video file)
    /opt/ml/input/data/keyframes/               the artist's fixed frames
    /opt/ml/input/data/masks/                   optional: one matte per keyframe
    /opt/ml/checkpoints/                        synced to S3 while training; restored after a spot interruption
    /opt/ml/model/                              tarred to S3 as model.tar.gz when the job ends
    /opt/ml/output/failure                      the reason, when the job fails

``$SAGEMAKER_BASE_DIR`` moves the whole tree (as in sagemaker-training-toolkit), and the ``SM_*``
variables that toolkit sets (``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``SM_OUTPUT_DIR``,
``SM_INPUT_CONFIG_DIR``, ``SM_NUM_GPUS``, ``SM_HPS``) override single paths.

Hyperparameters: a dotted key is a config override (``"train.lr": "3e-4"`` is ``--set train.lr=3e-4``);
the plain keys in :data:`OPTION_KEYS` are ``shotfit train``'s options; keys starting ``sagemaker_``
(added by the SageMaker SDK) are ignored.

Metrics: every tracked window is one stdout line, ``shotfit-metrics: step=120 loss/total=0.01234 ...``
(:func:`metric_line`); :func:`metric_definitions` are the regexes a job declares so SageMaker charts them,
and :func:`parse_metric_line` reads the same lines back from CloudWatch Logs.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from shotfit.errors import ConfigError, quoted

BASE_DIR = "/opt/ml"
CHANNELS = ("source", "keyframes", "masks")
REQUIRED_CHANNELS = ("source", "keyframes")
RUN_NAME = "run"  # the run folder's name under the checkpoint folder and in model.tar.gz

# plain hyperparameters: shotfit train's options (values arrive as strings)
OPTION_KEYS = {
    "steps": int, "minutes": float, "first": int, "last": int, "mask": str, "colorspace": str,
    "working_space": str, "ocio_config": str, "experiment": str, "export": str, "device": str,
}
EXPORT_FORMATS = ("onnx", "torchscript", "none")

METRIC_PREFIX = "shotfit-metrics:"
# what a launched job asks SageMaker to chart (at most 40 are allowed per job)
CHARTED_METRICS = ("loss/total", "loss/l1", "loss/mse", "loss/lpips", "loss/laplacian", "loss/ssim", "lr",
                   "speed/steps_per_s", "val/psnr", "val/ssim", "val/lpips", "step")
_NUMBER = r"[-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf)"
_PAIR = re.compile(r"(\S+?)=(" + _NUMBER + r")(?=\s|$)")


@dataclass(frozen=True)
class JobPaths:
    """Where one training job's files are, from ``$SAGEMAKER_BASE_DIR`` and the ``SM_*`` variables."""

    base: Path
    hyperparameters: Path
    channels: Mapping[str, Path]
    checkpoints: Path
    model: Path
    output: Path

    @property
    def failure(self) -> Path:
        return self.output / "failure"

    @property
    def run(self) -> Path:
        """The run folder: inside the checkpoint folder, so a restarted spot job finds it."""
        return self.checkpoints / RUN_NAME

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> JobPaths:
        env = os.environ if environ is None else environ
        base = Path(env.get("SAGEMAKER_BASE_DIR", BASE_DIR))
        config_dir = Path(env.get("SM_INPUT_CONFIG_DIR", base / "input" / "config"))
        channels = {name: Path(env.get(f"SM_CHANNEL_{name.upper()}", base / "input" / "data" / name))
                    for name in CHANNELS}
        return cls(base=base, hyperparameters=config_dir / "hyperparameters.json", channels=channels,
                   checkpoints=base / "checkpoints",
                   model=Path(env.get("SM_MODEL_DIR", base / "model")),
                   output=Path(env.get("SM_OUTPUT_DIR", base / "output")))

    def is_job(self) -> bool:
        """True inside a SageMaker training job (or a simulated one): its hyperparameters file exists."""
        return self.hyperparameters.is_file()


@dataclass(frozen=True)
class JobOptions:
    """A job's plain hyperparameters, typed (:data:`OPTION_KEYS`); None: not given, the run's config decides."""

    steps: int | None = None
    minutes: float | None = None
    first: int | None = None
    last: int | None = None
    mask: str | None = None
    colorspace: str | None = None
    working_space: str | None = None
    ocio_config: str | None = None
    experiment: str | None = None
    export: str | None = None
    device: str | None = None

    def given(self) -> dict[str, Any]:
        """The options the job was given, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class JobSettings:
    """A job's hyperparameters split into config overrides and ``shotfit train`` options."""

    overrides: tuple[str, ...]
    options: JobOptions = JobOptions()
    ignored: tuple[str, ...] = ()

    @property
    def export(self) -> tuple[str, ...]:
        """Formats to export the model in (default: onnx)."""
        text = self.options.export if self.options.export is not None else "onnx"
        formats = tuple(f.strip() for f in text.split(",") if f.strip())
        return () if formats == ("none",) else formats


def read_hyperparameters(paths: JobPaths, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's hyperparameters (file, else ``$SM_HPS``), every value as a string."""
    env = os.environ if environ is None else environ
    if paths.hyperparameters.is_file():
        try:
            data = json.loads(paths.hyperparameters.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"hyperparameters {quoted(paths.hyperparameters)} cannot be read ({err})") from None
    else:
        data = json.loads(env.get("SM_HPS", "{}"))
    if not isinstance(data, dict):
        raise ConfigError(f"hyperparameters {quoted(paths.hyperparameters)} must be a JSON object")
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in data.items()}


def job_settings(hyperparameters: Mapping[str, str], where: str = "hyperparameters.json") -> JobSettings:
    """Split hyperparameters into ``section.key=value`` overrides and typed options; unknown keys are errors."""
    overrides: list[str] = []
    options: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in hyperparameters.items():
        if key.startswith("sagemaker_"):
            ignored.append(key)
        elif "." in key:
            overrides.append(f"{key}={value}")  # read by config.parse_override, as --set is
        elif key in OPTION_KEYS:
            kind = OPTION_KEYS[key]
            try:
                options[key] = kind(value)
            except ValueError:
                raise ConfigError(f"{where}: '{key}' must be {'an integer' if kind is int else 'a number'}, "
                                  f"not {value!r}") from None
        else:
            raise ConfigError(f"{where}: unknown hyperparameter '{key}' (config keys are dotted, e.g. "
                              f"train.lr; options: {', '.join(sorted(OPTION_KEYS))})")
    settings = JobSettings(tuple(sorted(overrides)), JobOptions(**options), tuple(ignored))
    unknown = [f for f in settings.export if f not in EXPORT_FORMATS]
    if unknown:
        raise ConfigError(f"{where}: export format '{unknown[0]}' is not one of {', '.join(EXPORT_FORMATS)}")
    return settings


def to_hyperparameters(overrides: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The hyperparameters a launcher sends: dotted config keys and options, every value a string."""
    out = {str(key): _text(value) for key, value in overrides.items()}
    for key, value in (options or {}).items():
        if key not in OPTION_KEYS:
            raise ValueError(f"{key!r} is not a training option ({', '.join(sorted(OPTION_KEYS))})")
        if value is not None:
            out[key] = _text(value)
    return out


def metric_line(step: int, metrics: Mapping[str, float]) -> str:
    """One stdout line for SageMaker's metric regexes: ``shotfit-metrics: step=120 loss/total=0.01234``."""
    pairs = " ".join(f"{name}={_number(value)}" for name, value in sorted(metrics.items()) if " " not in name)
    return f"{METRIC_PREFIX} step={int(step)} {pairs}".rstrip()


def parse_metric_line(line: str) -> tuple[int, dict[str, float]] | None:
    """(step, metrics) from a line written by :func:`metric_line`; None for any other line."""
    at = line.find(METRIC_PREFIX)
    if at < 0:
        return None
    values = {name: float(text) for name, text in _PAIR.findall(line[at + len(METRIC_PREFIX):])}
    if "step" not in values:
        return None
    step = int(values.pop("step"))
    return step, values


def metric_definitions(names: tuple[str, ...] = CHARTED_METRICS) -> list[dict[str, str]]:
    """SageMaker ``MetricDefinitions``: one regex per metric, matching only shotfit's metric lines."""
    return [{"Name": name, "Regex": f"{re.escape(METRIC_PREFIX)}.* {re.escape(name)}=({_NUMBER})"}
            for name in names]


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.6g}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)
