"""OpenColorIO behind a few cached functions: configs by name, colour spaces by name, CPU processors.

A config is named by a string: a built-in URI (``ocio://studio-config-latest``, pinned on resolution
to the exact version, e.g. ``ocio://studio-config-v5.0.0_aces-v2.1_ocio-v2.6``, so a run renders the
same under a later OpenColorIO), or a file path (made absolute). Loaded configs and processors are
cached per process (a config file again when it changes); processors run on float32 RGB in place
(OCIO's CPU path, lossless optimisation).
Every failure a user can cause is a one-line :class:`~shotfit.errors.ConfigError`.
"""

from __future__ import annotations

import atexit
import difflib
import functools
import logging
import os
import re
from pathlib import Path

import PyOpenColorIO as OCIO

from shotfit.errors import ConfigError, quoted

log = logging.getLogger(__name__)

BUILTIN_CONFIG = "ocio://studio-config-latest"
DEFAULT_DISPLAY = "sRGB - Display"
# "" and "auto" mean "choose for me" wherever a config or colour space is named.
AUTO = ("", "auto")
# Encodings of spaces whose values are already meant for a screen (sRGB PNGs, Rec.709 video).
_VIDEO_ENCODINGS = ("sdr-video", "hdr-video", "edr-video")


def resolve_config(ocio_config: str | Path | None = None) -> str:
    """The config to use, as it is saved in a run: a pinned built-in URI or an absolute file path.

    Args:
        ocio_config: A built-in URI or a config file; None, "" or "auto" take ``$OCIO`` when it is
            set, else :data:`BUILTIN_CONFIG`.

    Raises:
        ConfigError: the config does not exist or cannot be read (one line naming it).
    """
    text = "" if ocio_config is None else str(ocio_config).strip()
    origin = ""
    if text.lower() in AUTO:
        text = os.environ.get("OCIO", "").strip()
        origin = " (from $OCIO)" if text else ""
        text = text or BUILTIN_CONFIG
    if text.startswith("ocio://"):
        name = OCIO.ResolveConfigPath(text)
    else:
        name = str(Path(text).expanduser().absolute())
    load_config(name, origin)
    return name


def load_config(name: str, origin: str = "") -> OCIO.Config:
    """The OCIO config ``name`` (a built-in URI or a file path), loaded once per process and again
    when its file changes."""
    return _load_config(name, _stamp(name, origin), origin)


def _stamp(name: str, origin: str = "") -> tuple[int, int] | None:
    """What tells one version of a config file from another (None for built-in configs)."""
    if name.startswith("ocio://"):
        return None
    try:
        stat = os.stat(name)
    except FileNotFoundError:
        raise ConfigError(f"OCIO config {quoted(name)}{origin} does not exist") from None
    except OSError as err:
        raise ConfigError(f"OCIO config {quoted(name)}{origin} cannot be read ({err.strerror})") from None
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=16)
def _load_config(name: str, stamp: tuple[int, int] | None, origin: str) -> OCIO.Config:
    _route_ocio_messages()
    try:
        return OCIO.Config.CreateFromFile(name)
    except OCIO.ExceptionMissingFile:
        raise ConfigError(f"OCIO config {quoted(name)}{origin} does not exist") from None
    except OCIO.Exception as err:
        if name.startswith("ocio://"):
            raise ConfigError(f"OCIO config {quoted(name)} is not one of OpenColorIO's built-in configs "
                              f"(e.g. {BUILTIN_CONFIG})") from None
        raise ConfigError(f"OCIO config {quoted(name)}{origin} cannot be read ({_reason(err)})") from None


def canonical_space(config: str, name: str, what: str = "") -> str:
    """The colour space that ``name`` (a name, alias or role, any case) stands for in ``config``.

    Raises:
        ConfigError: ``name`` is not in the config; the message lists the closest names.
    """
    found = load_config(config).getCanonicalName(name) if name.strip() else ""
    if not found:
        close = _close_names(load_config(config), name)
        hint = f" (closest: {', '.join(close)})" if close else ""
        raise ConfigError(f"{what + ' ' if what else ''}colour space {name!r} is not in OCIO config "
                          f"{quoted(config)}{hint}; 'shotfit colorspaces' lists them")
    return found


def role_space(config: str, role: str, needed_for: str) -> str:
    """The colour space of a role (``scene_linear``, ``color_timing``, ...), or a ConfigError."""
    cfg = load_config(config)
    if not cfg.hasRole(role):
        raise ConfigError(f"OCIO config {quoted(config)} has no '{role}' role to choose the {needed_for} "
                          "colour space from; name one")
    return cfg.getCanonicalName(role)


def encoding(config: str, space: str) -> str:
    """The space's encoding ("scene-linear", "log", "sdr-video", "data", ... or "" if unset)."""
    colour_space = load_config(config).getColorSpace(space)
    return "data" if colour_space.isData() else colour_space.getEncoding()


def is_display_ready(config: str, space: str) -> bool:
    """Values already meant for a screen: a video encoding, or (configs without encodings) the
    ``texture_paint`` role's space, where 8/16-bit images live."""
    cfg = load_config(config)
    if encoding(config, space) in _VIDEO_ENCODINGS:
        return True
    return not cfg.getColorSpace(space).getEncoding() and cfg.hasRole("texture_paint") \
        and cfg.getCanonicalName("texture_paint") == space


def conversion(config: str, source: str, target: str) -> OCIO.CPUProcessor | None:
    """The CPU processor from ``source`` to ``target`` (canonical names); None when it changes nothing."""
    return _conversion(config, _stamp(config), source, target)


@functools.lru_cache(maxsize=64)
def _conversion(config: str, stamp: tuple[int, int] | None, source: str, target: str) -> OCIO.CPUProcessor | None:
    try:
        processor = load_config(config).getProcessor(source, target)
    except OCIO.Exception as err:
        raise ConfigError(f"OCIO config {quoted(config)} cannot convert {source!r} to {target!r} "
                          f"({_reason(err)})") from None
    return None if processor.isNoOp() else _cpu(processor)


def display_conversion(config: str, source: str, display: str, view: str) -> OCIO.CPUProcessor | None:
    """``source`` to what ``display`` shows: through ``view`` for scene-referred spaces, colorimetric
    (no tone mapping) for spaces whose values are already display-ready."""
    return _display_conversion(config, _stamp(config), source, display, view)


@functools.lru_cache(maxsize=16)
def _display_conversion(config: str, stamp: tuple[int, int] | None, source: str, display: str, view: str
                        ) -> OCIO.CPUProcessor | None:
    cfg = load_config(config)
    try:
        if is_display_ready(config, source):
            target = cfg.getDisplayViewColorSpaceName(display, view)
            target = display if target in ("", "<USE_DISPLAY_NAME>") else target
            processor = cfg.getProcessor(source, target)
        else:
            processor = cfg.getProcessor(OCIO.DisplayViewTransform(src=source, display=display, view=view))
    except OCIO.Exception as err:
        raise ConfigError(f"OCIO config {quoted(config)} cannot show {source!r} on display {display!r}, "
                          f"view {view!r} ({_reason(err)})") from None
    return None if processor.isNoOp() else _cpu(processor)


def display_and_view(config: str, display: str | None = None, view: str | None = None
                     ) -> tuple[str, str] | None:
    """The display (default: ``sRGB - Display`` if the config has it, else its default) and view
    (default: the display's default view), checked against the config; None for a config without
    displays when none was asked for."""
    cfg = load_config(config)
    displays = list(cfg.getDisplays())
    if display is None and not displays:
        return None
    if display is None:
        display = DEFAULT_DISPLAY if DEFAULT_DISPLAY in displays else cfg.getDefaultDisplay()
    if display not in displays:
        raise ConfigError(f"OCIO config {quoted(config)} has no display {display!r} "
                          f"(it has: {', '.join(displays) or 'none'})")
    views = list(cfg.getViews(display))
    view = view or cfg.getDefaultView(display)
    if view not in views:
        raise ConfigError(f"display {display!r} of OCIO config {quoted(config)} has no view {view!r} "
                          f"(it has: {', '.join(views)})")
    return display, view


def _cpu(processor: OCIO.Processor) -> OCIO.CPUProcessor:
    # Lossless: the default optimisation approximates log and exp (errors near 1e-5), which would
    # break the exact round trip a render depends on.
    return processor.getOptimizedCPUProcessor(OCIO.BIT_DEPTH_F32, OCIO.BIT_DEPTH_F32, OCIO.OPTIMIZATION_LOSSLESS)


def _close_names(cfg: OCIO.Config, name: str) -> list[str]:
    """Up to three names, aliases or roles of ``cfg`` that look like ``name`` (case ignored)."""
    known: dict[str, str] = {}
    for space in cfg.getColorSpaces(OCIO.SEARCH_REFERENCE_SPACE_ALL, OCIO.COLORSPACE_ALL):
        for label in (space.getName(), *space.getAliases()):
            known.setdefault(label.lower(), label)
    for role, _ in cfg.getRoles():
        known.setdefault(role.lower(), role)
    return [known[k] for k in difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.6)]


def _reason(err: BaseException) -> str:
    """OCIO's message without its "Error: Loading the OCIO profile '...' failed." preamble, one line."""
    text = re.sub(r"^Error: Loading the OCIO profile '[^']*' failed\.\s*", "", str(err).strip())
    return (text.splitlines() or ["unknown error"])[0][:200]


@functools.cache
def _route_ocio_messages() -> None:
    # OCIO prints its info and warnings on stderr; shotfit's errors are one line, so they go to logging.
    OCIO.SetLoggingFunction(lambda message: log.debug("OpenColorIO: %s", message.strip()))
    # A Python logging function left in place hangs the interpreter's exit; OCIO's own one is put back.
    atexit.register(OCIO.ResetToDefaultLoggingFunction)
