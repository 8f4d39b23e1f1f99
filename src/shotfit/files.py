"""File-system habits every writer in shotfit shares: atomic writes and never writing among plates."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from shotfit.errors import ShotfitError, quoted


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A crash or an exception leaves the previous file (if any) untouched and no temporary behind.
    The temporary is hidden (a leading dot) so a folder scan during a render never picks it up, and
    keeps the suffix, so writers that choose a format by extension still work.

    Raises:
        ShotfitError: the folder cannot be created or written, naming it.
    """
    path = Path(path)
    folder = ensure_writable_folder(path.parent)
    temp = folder / f".{path.stem}.partial-{secrets.token_hex(4)}{path.suffix}"
    try:
        # os.open rather than mkstemp: mkstemp's 0600 would make outputs unreadable to others on a farm.
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise ShotfitError(f"folder {_folder_name(folder)} is not writable ({_reason(err)})") from None
    try:
        yield temp
        os.replace(temp, path)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise ShotfitError(f"cannot write {quoted(path)} ({_reason(err)})") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as temp:
        temp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as temp:
        temp.write_text(text, encoding="utf-8")


def ensure_writable_folder(folder: str | Path) -> Path:
    """Create ``folder`` if needed; a one-line error when it cannot be created or written."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ShotfitError(f"output folder {_folder_name(folder)} is a file, not a folder") from None
    except OSError as err:
        raise ShotfitError(f"cannot create folder {_folder_name(folder)} ({_reason(err)})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ShotfitError(f"folder {_folder_name(folder)} is not writable (Permission denied)")
    return folder


# How the outputs a request names are called in messages.
_OUTPUTS = {"out": "output folder", "review": "review movie"}


def refuse_inside(out: str | Path, plates: str | Path, what: str = "source", parameter: str = "out") -> None:
    """Refuse an output folder equal to or inside the folder that holds plates.

    Args:
        out: The folder about to be written.
        plates: The folder of the source frames (for a pattern, the folder it lives in).
        what: How the plates are named in the message.
        parameter: The request field that named ``out`` (the error carries it; each face names its option).
    """
    out_abs, plates_abs = Path(out).resolve(), Path(plates).resolve()
    if out_abs == plates_abs or plates_abs in out_abs.parents:
        raise ShotfitError(f"{_OUTPUTS.get(parameter, parameter)} {quoted(out)} is inside the {what} folder "
                           f"{_folder_name(plates)}: choose another folder (shotfit never writes among the plates)",
                           parameter=parameter)


def _folder_name(folder: str | Path) -> str:
    text = str(folder)
    return quoted(text if text in ("", ".", "/") or text.endswith("/") else f"{text}/")


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def plates_folder(spec: str | Path) -> Path | None:
    """The folder that holds a sequence's files (for a pattern, its folder); None for a video file."""
    path = Path(spec)
    if path.is_dir():
        return path
    if path.is_file():
        return None
    return path.parent
