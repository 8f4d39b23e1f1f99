"""Which value wins, one function per command: a request's own field, then the config file it names,
then the run's saved config, then the defaults (:class:`shotfit.config.Config`)."""

from __future__ import annotations

import dataclasses

from shotfit.config import Config, RenderConfig, apply_overrides, load_config
from shotfit.errors import ConfigError
from shotfit.runs.folder import RunFolder
from shotfit.workflows.requests import RenderRequest, TrainRequest


def resolve_train_config(request: TrainRequest, run: RunFolder) -> Config:
    """The config a training run uses: ``request.config`` or ``request.config_file``, else (resuming)
    the run's own config.yaml, else the defaults; then the overrides; then the request's own fields
    (``steps`` and the colour options), which win over everything. (``request.device`` wins over
    ``train.device`` in the same way, where the device is picked.)"""
    if request.config is not None and request.config_file is not None:
        raise ConfigError("give a config or a config file, not both", parameter="config")
    if request.config is not None:
        base = request.config
    elif request.config_file:
        base = load_config(request.config_file)
    elif request.resume:
        base = run.read_config()
    else:
        base = Config()
    cfg = apply_overrides(base, request.overrides) if request.overrides else base
    if request.steps is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=request.steps))
    given = {"source": request.colorspace, "working": request.working_space,
             "config": None if request.ocio_config is None else str(request.ocio_config)}
    # written into the config so that the run's config.yaml shows them
    changes = {key: value for key, value in given.items() if value is not None}
    return dataclasses.replace(cfg, colour=dataclasses.replace(cfg.colour, **changes)) if changes else cfg


def resolve_render_config(request: RenderRequest, saved: RenderConfig) -> RenderConfig:
    """The render settings: the request's ``tile``, ``tile_overlap`` and ``precision`` where given
    (a tile of 0 leaves the run's), else the run's ``render`` section."""
    return RenderConfig(tile=request.tile or saved.tile,
                        tile_overlap=saved.tile_overlap if request.tile_overlap is None else request.tile_overlap,
                        blend=saved.blend, precision=request.precision or saved.precision, compile=saved.compile)
