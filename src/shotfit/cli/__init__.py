"""The ``shotfit`` command: parses arguments, calls :mod:`shotfit.api`, shows progress and tables.

The typer app lives in :mod:`shotfit.cli.app`; importing this package registers every command on it.
"""

from __future__ import annotations

import sys

import typer

# typer (>= 0.29, pinned) carries its own copy of click; its usage errors are caught to print one line.
from typer._click.exceptions import NoArgsIsHelpError, UsageError

# Each module registers its commands on ``app`` when imported.
from shotfit.cli import bench, cloud, colour, commands, serve, suggest  # noqa: F401
from shotfit.cli.app import app, error_line
from shotfit.cli.display import console
from shotfit.cpus import use_passive_wait

__all__ = ["app", "main"]


def main() -> None:
    """The console script: usage mistakes are one line too, with exit status 2."""
    # the command owns its process: OpenMP threads that sleep rather than spin on a busy machine, set
    # before any command imports PyTorch (the runtime reads it once, as it loads); a user's choice stays
    use_passive_wait()
    try:
        status = app(standalone_mode=False)
    except NoArgsIsHelpError as err:
        console.print(err.format_message(), markup=False, highlight=False)
        status = 0
    except UsageError as err:
        command = err.ctx.command_path if err.ctx is not None else "shotfit"
        error_line(f"shotfit: {err.format_message()} (see '{command} --help')")
        status = 2
    except typer.Abort:
        error_line("shotfit: interrupted; everything already written is kept")
        status = 130
    sys.exit(status or 0)


if __name__ == "__main__":
    main()
