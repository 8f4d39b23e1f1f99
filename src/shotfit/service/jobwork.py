"""What a job does, given its folders: the settings a job may carry, checked when it is submitted, and the
:mod:`shotfit.api` call each kind makes (never the CLI's).

A job's settings are config overrides (``"train.steps": 200``) plus a few request fields
(``render.frames``, ``render.review``, ``render.evaluate``, ``render.workers``: Ray workers sharing the
frames; ``export.format``, ``export.tolerance``). Nothing in a job
record decides which code runs: settings that would import code or read files on the server
(``loss.extra``, a ``colour.config`` file) are refused.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shotfit import api
from shotfit.config import Config, apply_overrides
from shotfit.errors import ConfigError
from shotfit.infer.render import FrameDone
from shotfit.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from shotfit.runs.folder import RunFolder
from shotfit.service.settings_schema import REQUEST_FIELDS, check_types
from shotfit.workflows import rendering

T = TypeVar("T")

EXPORT_NAMES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}


@dataclass(frozen=True)
class JobFolders:
    """Where a job reads and writes: the shot's role folders, the training run, and its own folder."""

    source: Path
    keyframes: Path
    truth: Path
    run: Path | None  # the train job's run folder (render/export), or this train job's
    work: Path  # this job's folder

    def source_spec(self) -> Path:
        """The source as shotfit opens it: the folder of frames, or the one video file in it."""
        videos = [p for p in self.source.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS] if self.source.is_dir() else []
        return videos[0] if len(videos) == 1 else self.source


def _override_text(key: str, value: Any) -> str:
    """``"train.steps", 200`` -> ``"train.steps=200"``: the value as JSON, which YAML reads back as it was
    (a JSON string stays a string: no surprises from ``yes`` or ``1e3``)."""
    return f"{key}={json.dumps(value)}"


def config_overrides(settings: Mapping[str, Any], fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The settings that are config keys, as ``section.key=value`` strings (request fields left out)."""
    return tuple(_override_text(key, value) for key, value in sorted(settings.items()) if key not in fields)


def check_settings(kind: str, settings: Mapping[str, Any]) -> None:
    """Refuse settings a job cannot take, in one line (:class:`ConfigError`): unknown keys, wrong types,
    keys that would run code or read the server's files, values out of the config's ranges."""
    if kind == "sweep":
        raise ConfigError("sweep jobs are not run by this server yet", parameter="kind")
    check_types(settings)
    colour = settings.get("colour.config", "auto")
    if not (isinstance(colour, str) and (colour == "auto" or colour.startswith("ocio://"))):
        raise ConfigError("setting 'colour.config' may only name a built-in config (ocio://...) or 'auto' on "
                          "the service", parameter="settings")
    _check_config(config_overrides(settings, REQUEST_FIELDS))


def _check_config(overrides: tuple[str, ...]) -> None:
    """Unknown keys and bad values, in one line that names the job's settings (not the CLI's --set)."""
    apply_overrides(Config(), overrides, origin="the job's settings", parameter="settings")


def train(folders: JobFolders, settings: Mapping[str, Any], tracking: api.TrackingOptions,
          callbacks: api.TrainCallbacks) -> api.TrainSummary:
    """Train into the job's run folder; a run already there (an earlier attempt) is resumed, never restarted."""
    assert folders.run is not None
    run = RunFolder(folders.run)
    resume = run.is_run()
    if not resume and folders.run.exists():  # an attempt that died before writing its run: ours to clear
        shutil.rmtree(folders.run)
    request = api.TrainRequest(folders.source_spec(), folders.keyframes, folders.run, resume=resume,
                               overrides=config_overrides(settings, REQUEST_FIELDS), tracking=tracking)
    return api.train(request, on_step=callbacks.on_step, on_metrics=callbacks.on_metrics,
                     should_stop=callbacks.should_stop)


def render_request(folders: JobFolders, settings: Mapping[str, Any],
                   frames: Sequence[int] | None = None) -> api.RenderRequest:
    """The render a job asks for: its frames (``render.frames``, or the chunk ``frames``) into ``frames/``."""
    assert folders.run is not None
    asked = settings.get("render.frames") if frames is None else tuple(frames)
    return api.RenderRequest(
        folders.run, folders.source_spec(), folders.work / "frames",
        tile=settings.get("render.tile"), tile_overlap=settings.get("render.tile_overlap"),
        precision=settings.get("render.precision"),
        frames=asked if asked is None or isinstance(asked, str) else tuple(int(f) for f in asked))


def render(folders: JobFolders, settings: Mapping[str, Any], on_frame: Callable[[FrameDone], None],
           should_stop: Callable[[], bool], frames: Sequence[int] | None = None) -> api.RenderResult:
    """Render the job's frames (or the chunk ``frames``) into ``frames/``; frames already there, from an
    earlier attempt or another chunk, are skipped."""
    return api.render(render_request(folders, settings, frames), on_frame=on_frame, should_stop=should_stop)


def finish_render(folders: JobFolders, settings: Mapping[str, Any]) -> None:
    """Once every frame is there: the review movie (a resumed render's holds them all) and, with truth
    frames, ``eval.json``."""
    if settings.get("render.review", True):
        api.render(_with_review(render_request(folders, settings), folders.work / "review.mp4"))
    if settings.get("render.evaluate", True) and _holds_frames(folders.truth):
        api.evaluate(api.EvaluateRequest(folders.work / "frames", folders.truth, source=folders.source_spec(),
                                         json_path=folders.work / "eval.json"))


def pending_frames(folders: JobFolders, settings: Mapping[str, Any]) -> tuple[list[int], int]:
    """(the frames still to render, how many the job renders in all): what chunks share out, as the
    library's render on workers counts them (:func:`shotfit.workflows.rendering.pending_frames`)."""
    return rendering.pending_frames(render_request(folders, settings))


def _with_review(request: api.RenderRequest, review: Path) -> api.RenderRequest:
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    return api.RenderRequest(**{**fields, "review": review})


def _holds_frames(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir())


def export(folders: JobFolders, settings: Mapping[str, Any]) -> api.ExportResult:
    assert folders.run is not None
    fmt = str(settings.get("export.format", "onnx"))
    return api.export(api.ExportRequest(folders.run, fmt, folders.work / EXPORT_NAMES[fmt],
                                        tolerance=float(settings.get("export.tolerance", 1e-4))))


def results(kind: str, files: Mapping[str, T]) -> dict[str, T]:
    """A job's downloadable files by name, picked from ``files`` (every file of the job's folder by its path
    relative to it, as the storage lists them): flat names; a URL's name is looked up here, never joined to a path."""
    found: dict[str, T] = {}
    if kind == "train":
        for name in ("model.pt", "metrics.json", "config.yaml"):
            if f"run/{name}" in files:
                found[name] = files[f"run/{name}"]
        for relative in sorted(files):
            if relative.startswith("run/previews/") and relative.count("/") == 2 and relative.endswith(".png"):
                found[f"preview_{relative.rsplit('/', 1)[1]}"] = files[relative]
    elif kind == "render":
        for relative in sorted(files):
            if relative.startswith("frames/") and relative.count("/") == 1:
                found[relative.split("/", 1)[1]] = files[relative]
        for name in ("review.mp4", "eval.json"):
            if name in files:
                found[name] = files[name]
    elif kind == "export":
        for name in EXPORT_NAMES.values():
            if name in files:
                found[name] = files[name]
    return found


def latest_preview(files: Mapping[str, T]) -> T | None:
    """The newest contact sheet of a training job (the final one once there), from its folder's ``files``."""
    sheets = sorted((relative for relative in files if relative.startswith("run/previews/")
                     and relative.count("/") == 2 and relative.endswith(".png")),
                    key=lambda relative: (relative.endswith("/final.png"), relative))
    return files[sheets[-1]] if sheets else None
