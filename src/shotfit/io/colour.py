"""Colour management: from the plates' colour space to the values the network sees, and back, exactly.

Three spaces matter, all named in an OpenColorIO config (OCIO's built-in ACES studio config unless
``--ocio-config`` or ``$OCIO`` names a studio's own):

- the **source** space: what the plates and keyframes are in, and what renders are written in;
- the **working** space: what the network sees, mapped to [-1, 1] (``2 * working - 1``);
- a **display** and view, only to look at frames (contact sheets, review movies).

Defaults follow the data (:func:`resolve_colour`): float frames (EXR, float TIFF) are scene-linear
(the config's ``scene_linear`` role, ACEScg) and train in the ``color_timing`` role (ACEScct), a log
encoding where linear 0.18 sits at 0.41 and 1.0 is reached only at linear ~222, so highlights keep
their detail. Integer frames are sRGB (the ``texture_paint`` role) and train as they are: they are
already perceptually even and hold no highlights above 1.0.

Only numpy here (no torch), so ``shotfit.io`` works on machines without PyTorch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import shotfit.io.ocio as ocio
from shotfit.errors import RunError
from shotfit.io.formats import PixelFormat
from shotfit.io.ocio import AUTO, BUILTIN_CONFIG


@dataclass(frozen=True)
class ColourSettings:
    """How a run's frames are colour managed; saved in run.json so a render matches its training.

    Attributes:
        config: The OCIO config: a pinned built-in URI (``ocio://studio-config-v5.0.0_...``) or an
            absolute file path.
        source: Canonical name of the space of the plates, keyframes and rendered frames.
        working: Canonical name of the space the network sees.
    """

    config: str
    source: str
    working: str

    def to_dict(self) -> dict[str, str]:
        return {"config": self.config, "source": self.source, "working": self.working}

    @classmethod
    def from_dict(cls, data: Any, where: str = "colour settings") -> ColourSettings:
        """The settings as saved by :meth:`to_dict`; anything else is a one-line RunError."""
        keys = ("config", "source", "working")
        if not isinstance(data, Mapping) or not all(isinstance(data.get(k), str) and data[k] for k in keys):
            raise RunError(f"{where} holds no valid colour settings (needs {', '.join(keys)}), got {data!r}")
        return cls(data["config"], data["source"], data["working"])


def resolve_colour(fmt: PixelFormat, colorspace: str | None = None, working: str | None = None,
                   ocio_config: str | Path | None = None) -> ColourSettings:
    """The colour settings for frames of format ``fmt``, every name made canonical.

    Args:
        fmt: The source's pixel format; float data defaults to scene-linear, integer data to sRGB.
        colorspace: Source space (name, alias or role); None, "" or "auto": the config's
            ``scene_linear`` role for float data, ``texture_paint`` for integer data.
        working: Working space; None, "" or "auto": the ``color_timing`` role for float data, the
            source space itself (no conversion) for integer data.
        ocio_config: A config file or built-in URI; default ``$OCIO``, else the built-in studio config.

    Raises:
        ConfigError: an unknown config, space or role (one line, with the closest names).

    Example:
        >>> resolve_colour(PixelFormat(".exr", "half", 3))  # doctest: +ELLIPSIS
        ColourSettings(config='ocio://studio-config-v...', source='ACEScg', working='ACEScct')
    """
    config = ocio.resolve_config(ocio_config)
    kind = "float" if fmt.is_float else "integer"
    if _is_auto(colorspace):
        source = ocio.role_space(config, "scene_linear" if fmt.is_float else "texture_paint", f"{kind} source")
    else:
        source = ocio.canonical_space(config, str(colorspace), "source")
    if not _is_auto(working):
        target = ocio.canonical_space(config, str(working), "working")
    elif fmt.is_float:
        target = ocio.role_space(config, "color_timing", "working")
    else:
        target = source
    return ColourSettings(config, source, target)


def override_colour(settings: ColourSettings, colorspace: str | None = None,
                    ocio_config: str | Path | None = None) -> ColourSettings:
    """A run's settings with another source space or config (a render's ``--colorspace`` and
    ``--ocio-config``); the working space stays the run's, looked up in the new config."""
    config = settings.config if _is_auto(ocio_config) else ocio.resolve_config(ocio_config)
    source = settings.source if _is_auto(colorspace) else str(colorspace)
    return ColourSettings(config, ocio.canonical_space(config, source, "source"),
                          ocio.canonical_space(config, settings.working, "working"))


def colour_of_run(info: Mapping[str, Any], where: str = "run.json") -> ColourSettings:
    """The colour settings a run was trained with, from its run.json.

    Runs made before colour management hold ``"transfer"`` instead: ``"none"`` (integer data, no
    conversion) or ``"acescct"`` (the ACEScct curve on ACEScg values), which the built-in config
    reproduces to float precision.
    """
    if "colour" in info:
        return ColourSettings.from_dict(info["colour"], where)
    config = ocio.resolve_config(BUILTIN_CONFIG)
    transfer = info.get("transfer")
    if transfer == "acescct":
        return ColourSettings(config, "ACEScg", "ACEScct")
    if transfer == "none":
        srgb = ocio.role_space(config, "texture_paint", "integer source")
        return ColourSettings(config, srgb, srgb)
    raise RunError(f"{where} says neither how colour was handled ('colour') nor the older 'transfer' "
                   f"(found {transfer!r})")


@dataclass(frozen=True)
class ColourPipeline:
    """Converts frames between the source, working and display spaces of ``settings``.

    Every method takes numpy float arrays (H, W, C) or (N, H, W, C) with C in {1, 3, 4} and returns a
    new float32 array of the same shape; the input is never changed. RGB goes through OCIO; alpha
    (C = 4) is passed through untouched; a grey frame (C = 1) is converted as the neutral R = G = B and
    the mean of the three results kept (exact for curve-only conversions, and neutrals stay neutral
    through the configs' white-balanced gamut changes).

    Constructing one loads the config and its processors, so a missing config or an unknown space
    fails here, before any work. It holds only its settings, so it pickles.
    """

    settings: ColourSettings

    def __post_init__(self) -> None:
        s = self.settings
        ocio.canonical_space(s.config, s.source, "source")
        ocio.canonical_space(s.config, s.working, "working")
        ocio.conversion(s.config, s.source, s.working)
        ocio.conversion(s.config, s.working, s.source)

    @property
    def is_identity(self) -> bool:
        """True when the network sees the source values themselves (integer data by default)."""
        return ocio.conversion(self.settings.config, self.settings.source, self.settings.working) is None

    def to_working(self, pixels: np.ndarray) -> np.ndarray:
        """Source values -> working values (ACEScct: about [0.07, 1.0] for linear [0, 222])."""
        s = self.settings
        return _apply(ocio.conversion(s.config, s.source, s.working), pixels)

    def from_working(self, values: np.ndarray) -> np.ndarray:
        """Working values -> source values; the exact inverse of :meth:`to_working` to float precision."""
        s = self.settings
        return _apply(ocio.conversion(s.config, s.working, s.source), values)

    def to_network(self, pixels: np.ndarray) -> np.ndarray:
        """Source values -> what the network sees: ``2 * working - 1``, [-1, 1] for in-range data
        (not clipped). Alpha, if present, is carried unchanged (the network never sees it)."""
        return _affine(self.to_working(pixels), 2.0, -1.0)

    def from_network(self, values: np.ndarray) -> np.ndarray:
        """Network values (nominally [-1, 1]) -> source values; ``from_network(to_network(x)) == x``
        to float precision. Not clipped here (writing an integer file clips)."""
        return self.from_working(_affine(values, 0.5, 0.0, before=1.0))

    def to_display(self, pixels: np.ndarray, display: str | None = None, view: str | None = None) -> np.ndarray:
        """Source values -> display-referred values in [0, 1] (clipped; alpha untouched), for previews
        and review movies.

        Args:
            display: An OCIO display (default ``sRGB - Display``, else the config's default).
            view: One of its views (default: the display's default view, e.g. the ACES SDR output).

        Scene-referred sources (linear, log) go through the view; sources whose values are already
        display-ready (sRGB, Rec.709 video) are converted colorimetrically, with no tone mapping;
        ``data`` spaces, and every space of a config without displays, are only clipped.
        """
        s = self.settings
        chosen = ocio.display_and_view(s.config, display, view)
        if chosen is None or ocio.encoding(s.config, s.source) == "data":
            processor = None  # nothing to show it through: the values themselves, clipped
        else:
            processor = ocio.display_conversion(s.config, s.source, *chosen)
        out = _apply(processor, pixels)
        colour = out if out.shape[-1] != 4 else out[..., :3]
        np.clip(colour, 0.0, 1.0, out=colour)
        return out


def _is_auto(value: str | Path | None) -> bool:
    return value is None or str(value).strip().lower() in AUTO


def _apply(processor: Any, pixels: np.ndarray) -> np.ndarray:
    """Run an OCIO CPU processor (None: no change) over the colour channels of a copy of ``pixels``."""
    out = _float32_copy(pixels)
    if processor is None or out.size == 0:
        return out
    if out.shape[-1] == 1:
        rgb = np.repeat(out.reshape(-1, 1), 3, axis=1)
        processor.applyRGB(rgb)
        # in float64, so that three equal results average to exactly themselves
        out[...] = rgb.mean(axis=1, dtype=np.float64).reshape(out.shape)
    elif out.shape[-1] == 3:
        processor.applyRGB(out.reshape(-1, 3))  # a view of the contiguous copy: converted in place
    else:
        rgb = np.ascontiguousarray(out[..., :3]).reshape(-1, 3)
        processor.applyRGB(rgb)
        out[..., :3] = rgb.reshape(*out.shape[:-1], 3)
    return out


def _affine(values: np.ndarray, scale: float, offset: float, before: float = 0.0) -> np.ndarray:
    """``(values + before) * scale + offset`` on the colour channels, in float32; alpha untouched."""
    out = _float32_copy(values)
    colour = out if out.shape[-1] != 4 else out[..., :3]
    if before:
        colour += np.float32(before)
    colour *= np.float32(scale)
    if offset:
        colour += np.float32(offset)
    return out


def _float32_copy(pixels: np.ndarray) -> np.ndarray:
    array = np.asarray(pixels)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"expected a floating-point array, got dtype {array.dtype}")
    if array.ndim not in (3, 4) or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected (H, W, C) or (N, H, W, C) with C in 1, 3, 4; got shape {array.shape}")
    return np.array(array, dtype=np.float32, order="C", copy=True)
