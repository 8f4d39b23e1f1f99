"""Which value wins, one function per command: a request's own field, then the config file it names,
then the run's saved config, then the defaults (:class:`shotfit.config.Config`)."""

from __future__ import annotations

import dataclasses

from shotfit.config import Config, RenderConfig, apply_overrides, load_config, parse_override
from shotfit.errors import ConfigError, quoted
from shotfit.runs.folder import RunFolder
from shotfit.workflows.requests import RenderRequest, TrainRequest


def resolve_train_config(request: TrainRequest, run: RunFolder) -> Config:
    """The config a training run uses: ``request.config`` or ``request.config_file``, else (resuming)
    the run's own config.yaml, else the defaults; then the overrides; then the request's own fields
    (``steps`` and the colour options), which win over everything. (``request.device`` wins over
    ``train.device`` in the same way, where the device is picked.)

    Raises:
        ConfigError: the config cannot be read, or a resumed run's saved config names a loss plug-in
            (code to run) that this request does not name (see :func:`allowed_plugins`).
    """
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
    cfg = dataclasses.replace(cfg, colour=dataclasses.replace(cfg.colour, **changes)) if changes else cfg
    _refuse_unnamed_plugins(request, run, cfg)
    return cfg


def allowed_plugins(request: TrainRequest, cfg: Config) -> frozenset[str]:
    """The loss plug-ins (``loss.extra`` networks: code that runs) that training with ``cfg``, as
    resolved from ``request``, may import: those the request names, in its config or config file, in an
    override of ``loss.extra`` or in ``allowed_plugins`` — never one that only a resumed run's saved
    config names (a run folder received from elsewhere must not run code, as its model.pt cannot)."""
    named = set(request.allowed_plugins)
    from_saved = request.resume and request.config is None and not request.config_file
    # an override of loss.extra replaces the saved list whole, so every term left is the request's
    if not from_saved or any(parse_override(item)[:2] == ("loss", "extra") for item in request.overrides):
        named.update(term.network for term in cfg.loss.extra)
    return frozenset(named)


def _refuse_unnamed_plugins(request: TrainRequest, run: RunFolder, cfg: Config) -> None:
    allowed = allowed_plugins(request, cfg)
    for term in cfg.loss.extra:
        if term.weight > 0 and term.network not in allowed:
            raise ConfigError(f"{quoted(run.config_path)} names the loss plug-in {term.network!r} (loss.extra), "
                              "code that this training was not asked to run: to run it, name it in "
                              "allowed_plugins", parameter="allowed_plugins")


def resolve_render_config(request: RenderRequest, saved: RenderConfig) -> RenderConfig:
    """The render settings: the request's ``tile``, ``tile_overlap`` and ``precision`` where given
    (a tile of 0 leaves the run's), else the run's ``render`` section."""
    return RenderConfig(tile=request.tile or saved.tile,
                        tile_overlap=saved.tile_overlap if request.tile_overlap is None else request.tile_overlap,
                        blend=saved.blend, precision=request.precision or saved.precision, compile=saved.compile)
