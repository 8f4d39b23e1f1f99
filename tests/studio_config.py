"""A small studio OpenColorIO config, built with OCIO's Config API and written to a file.

Three spaces: ``show_linear`` (the reference, scene-linear), ``show_log`` (log2(x) / 16 + 0.6 above
linear 1/128, a straight line below, like ACEScct with other numbers) and ``show_srgb`` (the sRGB
encoding); one display, ``Show Monitor``, whose view ``Show View`` shows ``show_srgb``.
Imported by name (``from studio_config import ...``): the tests folder is on sys.path.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import PyOpenColorIO as OCIO

ROLES = {"scene_linear": "show_linear", "color_timing": "show_log", "texture_paint": "show_srgb"}


def write_studio_config(path: Path, roles: Iterable[str] = tuple(ROLES)) -> Path:
    """Write the config to ``path`` with the given roles (``default`` is always ``show_linear``)."""
    config = OCIO.Config.CreateRaw()
    config.setName("show")
    linear = OCIO.ColorSpace(OCIO.REFERENCE_SPACE_SCENE, "show_linear", encoding="scene-linear")
    log = OCIO.ColorSpace(OCIO.REFERENCE_SPACE_SCENE, "show_log", encoding="log")
    log.setTransform(OCIO.LogCameraTransform(linSideBreak=[2**-7] * 3, base=2.0, logSideSlope=[1 / 16] * 3,
                                             logSideOffset=[0.6] * 3), OCIO.COLORSPACE_DIR_FROM_REFERENCE)
    srgb = OCIO.ColorSpace(OCIO.REFERENCE_SPACE_SCENE, "show_srgb", encoding="sdr-video")
    srgb.setTransform(OCIO.ExponentWithLinearTransform(gamma=[2.4, 2.4, 2.4, 1.0], offset=[0.055, 0.055, 0.055, 0.0],
                                                       direction=OCIO.TRANSFORM_DIR_INVERSE),
                      OCIO.COLORSPACE_DIR_FROM_REFERENCE)
    for space in (linear, log, srgb):
        config.addColorSpace(space)
    config.setRole("default", "show_linear")
    for role in roles:
        config.setRole(role, ROLES[role])
    config.clearDisplays()  # CreateRaw's own sRGB / Raw
    config.addDisplayView("Show Monitor", "Show View", "show_srgb")
    config.setActiveDisplays("Show Monitor")
    config.setActiveViews("Show View")
    config.validate()
    path.write_text(config.serialize())
    return path
