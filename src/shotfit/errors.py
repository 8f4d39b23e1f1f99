"""Errors a user can cause.

Library code raises :class:`ShotfitError` with one line that names the file and what is wrong;
the CLI prints it as ``shotfit: <message>`` and exits non-zero, never with a traceback. An error
about one argument of a call names it in ``parameter`` (the request field, e.g. ``"resume"``), so
each face can point at its own spelling of it (the CLI at ``--resume``).
"""

from __future__ import annotations

from pathlib import Path


class ShotfitError(Exception):
    """A problem with the user's input, config or files (not a bug in shotfit).

    Args:
        message: One line that names the file or setting and what is wrong; it says no face's
            spelling of an option (no ``--flag``).
        parameter: The request field the error is about, when it is about one.
    """

    def __init__(self, message: str = "", *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class FrameError(ShotfitError):
    """A frame or sequence cannot be read, written or paired."""


class ConfigError(ShotfitError):
    """A config key is unknown or a value is out of range."""


class RunError(ShotfitError):
    """A run folder or checkpoint is missing, corrupt or made for something else."""


def quoted(path: str | Path) -> str:
    """A path as it appears in messages: ``'plate/0042.png'``."""
    return f"'{path}'"


class ExportError(ShotfitError):
    """An exported model does not reproduce the PyTorch network (nothing is written)."""


class OutOfMemory(ShotfitError):
    """The settings asked for more memory than the device has (a batch, patch, network or tile too large)."""
