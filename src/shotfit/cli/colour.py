"""``shotfit colorspaces``: the colour spaces and roles of an OpenColorIO config, and shotfit's defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from shotfit.cli.app import OcioConfigOpt, app, user_errors
from shotfit.cli.display import console
from shotfit.errors import ConfigError
from shotfit.io import PixelFormat, resolve_colour
from shotfit.io.ocio import load_config, resolve_config

if TYPE_CHECKING:
    from shotfit.io import PixelFormat


@app.command("colorspaces")
def list_colorspaces(ocio_config: OcioConfigOpt = None) -> None:
    """The colour spaces (with their aliases) and roles of the OCIO config, for --colorspace and --working-space."""
    with user_errors():
        name = resolve_config(ocio_config)
        config = load_config(name)
        defaults = {kind: _default(name, PixelFormat(*fmt)) for kind, fmt in
                    (("float frames (EXR)", (".exr", "half", 3)), ("8/16-bit frames", (".png", "uint16", 3)))}
    spaces = Table(title=f"colour spaces of {name}")
    for column in ("name", "encoding", "aliases"):
        spaces.add_column(column)
    for space in config.getColorSpaces():
        encoding = "data" if space.isData() else space.getEncoding()
        spaces.add_row(space.getName(), encoding, ", ".join(space.getAliases()))
    console.print(spaces)
    roles = Table(title="roles (usable as names)")
    for column in ("role", "colour space"):
        roles.add_column(column)
    for role, space in sorted(config.getRoles()):
        roles.add_row(role, space)
    console.print(roles)
    console.print("defaults: " + "; ".join(f"{kind} {text}" for kind, text in defaults.items()),
                  highlight=False, markup=False)


def _default(config: str, fmt: PixelFormat) -> str:
    """What shotfit picks for ``fmt`` in this config: ``'ACEScg' -> working 'ACEScct'``, or why nothing."""
    try:
        settings = resolve_colour(fmt, ocio_config=config)
    except ConfigError as err:
        return f"none ({str(err).split(' to choose')[0].split('; ')[0]})"
    if settings.source == settings.working:
        return f"'{settings.source}', as they are"
    return f"'{settings.source}' -> working '{settings.working}'"
