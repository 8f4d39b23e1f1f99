"""What a job does, given its folders: the settings a job may carry, checked when it is submitted, and the
:mod:`shotfit.api` call each kind makes (never the CLI's).

A job's settings are config overrides (``"train.steps": 200``) plus a few request fields
(``render.frames``, ``render.review``, ``render.evaluate``, ``render.workers``: Ray workers sharing the
frames; ``export.format``, ``export.tolerance``; ``suggest.count``, ``suggest.strategy``,
``suggest.sheet_frames``: a suggest job takes only these; a sweep's ``sweep.*``, see
:mod:`shotfit.service.sweepjob`). Nothing in a job
record decides which code runs: settings that would import code or read files on the server
(``loss.extra``, a ``colour.config`` file) are refused.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shotfit import api
from shotfit.config import Config, apply_overrides
from shotfit.errors import ConfigError
from shotfit.infer.render import FrameDone
from shotfit.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, open_shot
from shotfit.runs.folder import RunFolder
from shotfit.service import sweepjob
from shotfit.service.settings_schema import REQUEST_FIELDS, check_types
from shotfit.workflows import rendering

T = TypeVar("T")

log = logging.getLogger(__name__)

EXPORT_NAMES = {"onnx": "model.onnx", "torchscript": "model.torchscript.pt"}
SUGGEST_NAMES = ("suggest.json", "suggest.png")  # the suggested frames with their scores; the heat-map sheet


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
        return _shot_spec(self.source)

    def truth_spec(self) -> Path:
        """The truth as shotfit opens it (as :meth:`source_spec`)."""
        return _shot_spec(self.truth)


def _shot_spec(folder: Path) -> Path:
    videos = [p for p in folder.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS] if folder.is_dir() else []
    return videos[0] if len(videos) == 1 else folder


def _override_text(key: str, value: Any) -> str:
    """``"train.steps", 200`` -> ``"train.steps=200"``: the value as JSON, which YAML reads back as it was
    (a JSON string stays a string: no surprises from ``yes`` or ``1e3``)."""
    return f"{key}={json.dumps(value)}"


def config_overrides(settings: Mapping[str, Any], fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The settings that are config keys, as ``section.key=value`` strings (request fields and a sweep's
    ``sweep.*`` left out)."""
    return tuple(_override_text(key, value) for key, value in sorted(settings.items())
                 if key not in fields and not key.startswith("sweep."))


def check_settings(kind: str, settings: Mapping[str, Any], run_id: str | None = None) -> None:
    """Refuse settings a job cannot take, in one line (:class:`ConfigError`): unknown keys, wrong types,
    keys that would run code or read the server's files, values out of the config's ranges, settings of
    another kind of job (``suggest.*``), a suggest job before painting without its count."""
    _check_kind_keys(kind, settings, run_id)
    _check_values(settings)
    overrides = config_overrides(settings, REQUEST_FIELDS)
    _check_config(overrides)
    if kind == "sweep":
        sweepjob.check_sweep(settings, overrides, _check_searched)


def _check_values(settings: Mapping[str, Any]) -> None:
    check_types(settings)
    colour = settings.get("colour.config", "auto")
    if not (isinstance(colour, str) and (colour == "auto" or colour.startswith("ocio://"))):
        raise ConfigError("setting 'colour.config' may only name a built-in config (ocio://...) or 'auto' on "
                          "the service", parameter="settings")


def _check_searched(key: str, value: Any) -> None:
    """A value a sweep would set: checked as the same setting of a job would be."""
    _check_values({key: value})
    _check_config((_override_text(key, value),))


def _check_kind_keys(kind: str, settings: Mapping[str, Any], run_id: str | None) -> None:
    """A suggest job reads no config (only ``suggest.*``); ``suggest.*`` and ``sweep.*`` belong to their kind."""
    if kind == "suggest":
        other = next((key for key in settings if not key.startswith("suggest.")), None)
        if other is not None:
            raise ConfigError(f"setting {other!r}: a suggest job takes only suggest.* settings", parameter="settings")
        if run_id is None and "suggest.count" not in settings:
            raise ConfigError("a suggest job before painting (no run_id) needs setting 'suggest.count': how many "
                              "frames to suggest", parameter="settings")
        return
    for prefix in ("suggest.", "sweep."):
        stray = next((key for key in settings if key.startswith(prefix)), None)
        if stray is not None and kind != prefix[:-1]:
            raise ConfigError(f"setting {stray!r} is for {prefix[:-1]} jobs, not {kind}", parameter="settings")


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
    """Once every frame is there: the review movie (a resumed render's holds them all) and, where rendered
    frames have truth frames, ``eval.json`` scoring those (its ``compared_frames`` lists them)."""
    if settings.get("render.review", True):
        api.render(_with_review(render_request(folders, settings), folders.work / "review.mp4"))
    scored = frames_with_truth(folders) if settings.get("render.evaluate", True) else []
    if scored:
        api.evaluate(api.EvaluateRequest(folders.work / "frames", folders.truth_spec(), source=folders.source_spec(),
                                         json_path=folders.work / "eval.json", frames=tuple(scored)))


def frames_with_truth(folders: JobFolders) -> list[int]:
    """The rendered frames a truth frame was uploaded for: a studio may check a few frames, not the shot."""
    if not (_holds_frames(folders.truth) and _holds_frames(folders.work / "frames")):
        return []
    with open_shot(folders.work / "frames") as rendered, open_shot(folders.truth_spec()) as truth:
        known = set(truth.frames)
        scored = [frame for frame in rendered.frames if frame in known]
    if not scored:
        log.warning("no rendered frame has a truth frame: nothing to score")
    return scored


def pending_frames(folders: JobFolders, settings: Mapping[str, Any]) -> tuple[list[int], int]:
    """(the frames still to render, how many the job renders in all): what chunks share out, as the
    library's render on workers counts them (:func:`shotfit.workflows.rendering.pending_frames`)."""
    return rendering.pending_frames(render_request(folders, settings))


def _with_review(request: api.RenderRequest, review: Path) -> api.RenderRequest:
    fields = {name: getattr(request, name) for name in request.__dataclass_fields__}
    return api.RenderRequest(**{**fields, "review": review})


def _holds_frames(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in (*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS) for p in folder.iterdir())


def export(folders: JobFolders, settings: Mapping[str, Any]) -> api.ExportResult:
    assert folders.run is not None
    fmt = str(settings.get("export.format", "onnx"))
    return api.export(api.ExportRequest(folders.run, fmt, folders.work / EXPORT_NAMES[fmt],
                                        tolerance=float(settings.get("export.tolerance", 1e-4))))


def suggest(folders: JobFolders, settings: Mapping[str, Any],
            on_progress: Callable[[api.SuggestProgress], None]) -> api.SuggestResult:
    """Which frames to paint: before painting (no run; keyframes uploaded so far count as painted), or after
    a run (its unpainted frames ranked, the worst drawn in a heat-map contact sheet). Writes
    ``suggest.json`` and, after a run, ``suggest.png`` (an earlier attempt's are written again)."""
    after = folders.run is not None
    count = settings.get("suggest.count")
    request = api.SuggestRequest(
        folders.source_spec(), count=None if count is None else int(count),
        have=folders.keyframes if _holds_frames(folders.keyframes) else None, run=folders.run,
        json_path=folders.work / SUGGEST_NAMES[0], sheet=folders.work / SUGGEST_NAMES[1] if after else None,
        sheet_frames=int(settings.get("suggest.sheet_frames", 6)), strategy=str(settings.get("suggest.strategy",
                                                                                            "cover")))
    return api.suggest(request, on_progress=on_progress)


def sweep(folders: JobFolders, settings: Mapping[str, Any], tracking: api.TrackingOptions,
          on_trial: Callable[[Any], None], should_stop: Callable[[], bool]) -> api.SweepResult:
    """Sweep the job's shot as its settings say (:mod:`shotfit.service.sweepjob`), resuming an earlier attempt's."""
    data = sweepjob.sweep_file(settings, config_overrides(settings, REQUEST_FIELDS), folders.source_spec(),
                               folders.keyframes, sweepjob.truth_for(folders.source_spec(), folders.keyframes,
                                                                     folders.truth_spec()))
    return sweepjob.run(folders.work, data, settings, tracking, on_trial, should_stop)


def results(kind: str, files: Mapping[str, T]) -> dict[str, T]:
    """A job's downloadable files by name, picked from ``files`` (every file of the job's folder by its path
    relative to it, as the storage lists them): flat names; a URL's name is looked up here, never joined to a path."""
    if kind == "sweep":
        return sweepjob.results(files)
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
    elif kind == "suggest":
        for name in SUGGEST_NAMES:
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
