"""File-system habits every writer in shotfit shares: atomic writes, and one guard (:func:`guard_output`)
that every output path passes: never among the plates, never over a file shotfit did not make."""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import re
import secrets
import socket
import stat
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shotfit.errors import ShotfitError, quoted


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename.

    A crash or an exception leaves the previous file (if any) untouched and no temporary behind.
    The temporary is hidden (a leading dot) so a folder scan during a render never picks it up, and
    keeps the suffix, so writers that choose a format by extension still work. Its name carries the
    host and process that write it (:func:`partial_name`), so a later run can tell a temporary left by
    a killed process (removed by :func:`remove_stale_partials`) from one another process is writing.

    The file's bytes reach the disk (``fsync``) before the rename, and the rename itself (the folder
    is synced) before this returns: after a power cut the path holds the old file or the new one,
    never an empty or half-written one.

    Raises:
        ShotfitError: the folder cannot be created or written, naming it.
    """
    path = Path(path)
    folder = ensure_writable_folder(path.parent)
    temp = folder / partial_name(path)
    try:
        # os.open rather than mkstemp: mkstemp's 0600 would make outputs unreadable to others on a farm.
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as err:
        raise ShotfitError(f"folder {_folder_name(folder)} is not writable ({_reason(err)})") from None
    try:
        yield temp
        _sync(temp)  # the writer (OpenCV, OpenEXR, torch...) has closed it; its bytes may still be in memory
        os.replace(temp, path)
        _sync(folder)
    except OSError as err:
        temp.unlink(missing_ok=True)
        raise ShotfitError(f"cannot write {quoted(path)} ({_reason(err)})") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _sync(path: Path) -> None:
    """fsync a file or a folder (a folder: so that a rename in it survives a power cut)."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- temporaries: whose they are, and which a killed process left -------------------------------

# ".plate.0042.partial-render07-1234-0a1b2c3d.exr": the target's stem, the host, the pid, a random token, the suffix.
_PARTIAL = re.compile(r"\.(?P<stem>.*)\.partial-(?P<host>[A-Za-z0-9-]*)-(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\.[^.]*)?")
# A temporary of another host (a render farm on shared storage) cannot be asked whether its writer lives:
# one this old is left by a dead writer (one file is written in seconds or minutes, never a day).
FOREIGN_PARTIAL_AGE_S = 24 * 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def partial_name(path: Path) -> str:
    """The name of a temporary for ``path``: hidden, with its host and process, ending in its suffix."""
    return f".{path.stem}.partial-{_host()}-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}"


def remove_stale_partials(folder: str | Path) -> list[Path]:
    """Remove the temporaries a killed shotfit process left in ``folder``; return those removed.

    Only files named as :func:`partial_name` names them count, and only when their writer is gone:
    one of this host whose process no longer exists, or one of another host untouched for
    :data:`FOREIGN_PARTIAL_AGE_S`. A temporary of a live process (another render into the same
    folder) is never touched; a reused process id keeps a stale one a while longer, never the reverse.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed  # nothing to clean in a folder that is not there (or not readable)
    host, now = _host(), time.time()
    for entry in entries:
        match = _PARTIAL.fullmatch(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if match["host"] == host:
                stale = not _process_exists(int(match["pid"]))
            else:
                stale = now - entry.stat(follow_symlinks=False).st_mtime > FOREIGN_PARTIAL_AGE_S
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue  # gone already (another process cleaned it), or not ours to remove
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: sends nothing, only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except OverflowError:
        return False
    return True


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


def not_a_file(path: str | Path) -> str | None:
    """What is at ``path`` in words when it is not a regular file (links followed); None when it is one.

    ``"a symlink loop"``, ``"a broken symlink (to 'x')"``, ``"a FIFO"``, ``"a socket"``, ``"a device"``,
    ``"a folder"``, ``"missing"``. Only ``stat`` is asked, never ``open``: a FIFO named like a frame is
    described, not read (reading one waits for a writer forever).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "a symlink loop"
        if os.path.islink(path):
            return f"a broken symlink (to {quoted(os.readlink(path))})"
        return "missing" if err.errno == errno.ENOENT else f"unreadable ({_reason(err)})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


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


# --- the one guard every output path goes through -----------------------------------------------

@dataclass(frozen=True)
class OutputKind:
    """A kind of file shotfit writes: how messages call it, the suffixes it must end in (none for a
    folder), and how to recognise one shotfit made (so that one may be replaced)."""

    label: str
    suffixes: tuple[str, ...]
    made_by_shotfit: Callable[[Path], bool] | None = None


def _holds_bytes(marker: bytes) -> Callable[[Path], bool]:
    def check(path: Path) -> bool:
        try:
            with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return data.find(marker) >= 0
        except (OSError, ValueError):  # ValueError: an empty file cannot be mapped
            return False
    return check


def _torchscript_of_shotfit(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/extra/" + TORCHSCRIPT_MARK) for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _json_with_keys(keys: Sequence[str]) -> Callable[[Path], bool]:
    def check(path: Path) -> bool:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return False
        return isinstance(data, dict) and set(keys) <= set(data)
    return check


# The extra file TorchScript exports carry, the metadata key prefix ONNX exports carry, the keys of an
# evaluation report and the comment of a review movie: what marks a file as shotfit's own.
TORCHSCRIPT_MARK = "shotfit.json"
REPORT_KEYS = ("compared", "flow_from", "summary", "frames")
REVIEW_COMMENT = "shotfit review movie"
# The keys of a suggest list and the PNG text a suggest contact sheet carries.
SUGGEST_KEYS = ("suggest", "frames", "cuts")
SHEET_MARK = "shotfit suggest contact sheet"

KINDS = {
    "onnx": OutputKind("ONNX model", (".onnx",), _holds_bytes(b"shotfit.version")),
    "torchscript": OutputKind("TorchScript model", (".pt", ".pth", ".torchscript"), _torchscript_of_shotfit),
    "json": OutputKind("JSON report", (".json",), _json_with_keys(REPORT_KEYS)),
    "suggestions": OutputKind("suggestion list", (".json",), _json_with_keys(SUGGEST_KEYS)),
    "sheet": OutputKind("contact sheet", (".png",), _holds_bytes(SHEET_MARK.encode())),
    "review": OutputKind("review movie", (".mp4",), _holds_bytes(REVIEW_COMMENT.encode())),
    "tensorboard": OutputKind("TensorBoard folder", ()),
    "frames": OutputKind("output folder", ()),
    "sweep": OutputKind("sweep folder", ()),
    "bench": OutputKind("benchmark folder", ()),
    "launch": OutputKind("launch folder", ()),
}

# A frame pattern names files that do not exist under its own name (plate.####.png, plate.%04d.png, $F4, @@@@).
_PATTERN_SIGNS = ("#", "%", "$", "@")

# What shotfit's own run folders hold: files in one may be replaced (a re-export, new metrics).
_RUN_FILES = ("config.yaml", "run.json")


def guard_output(path: str | Path, kind: str, *, protected: Sequence[tuple[str, str | Path]] = (),
                 parameter: str = "out") -> Path:
    """Check a path shotfit is about to write, before anything is written; return it as a Path.

    Refused, each with a one-line error carrying ``parameter``:

    - a path equal to or inside a protected folder (the plates, keyframes, truth, masks), or a
      protected video file itself: shotfit never writes among what the user gave it to read;
    - a file whose suffix is not its kind's (``.onnx``, ``.pt``, ``.json``, ``.mp4``, ``.png``);
    - a folder where a file goes, or a file where a folder goes;
    - an existing file shotfit did not make. The rule: an existing file is replaced only when it lies
      in a shotfit run folder (its folder holds ``config.yaml`` and ``run.json``), or when it carries
      shotfit's mark for its kind (an ONNX export's ``shotfit.*`` metadata, a TorchScript export's
      ``shotfit.json``, an evaluation report's or a suggest list's keys, a review movie's comment, a
      suggest contact sheet's PNG text). Anything else at that
      path is the user's, and stays.

    Args:
        path: The file or folder about to be written.
        kind: A key of :data:`KINDS` (one without suffixes is a folder that receives new files, as TensorBoard's).
        protected: (what, spec) pairs: how the input is named in messages, and its folder, frame
            pattern or video file.
        parameter: The request field that named ``path`` (each face names its own option).
    """
    path, about = Path(path), KINDS[kind]
    target = path.resolve()
    for what, spec in protected:
        if not Path(spec).exists() and not any(sign in Path(spec).name for sign in _PATTERN_SIGNS):
            continue  # nothing there to protect (a run's source read from another folder, say)
        folder = plates_folder(spec)
        if folder is None:  # a video file: only the file itself is the user's
            if target == Path(spec).resolve():
                raise ShotfitError(f"{about.label} {quoted(path)} is the {what} {quoted(spec)} itself: choose "
                                   "another path (shotfit never writes over its inputs)", parameter=parameter)
            continue
        folder_abs = folder.resolve()
        if target == folder_abs or folder_abs in target.parents:
            raise ShotfitError(f"{about.label} {quoted(path)} is inside the {what} folder {_folder_name(folder)}: "
                               "choose another path (shotfit never writes among the plates)", parameter=parameter)
    if not about.suffixes:
        if path.exists() and not path.is_dir():
            raise ShotfitError(f"{about.label} {quoted(path)} is a file, not a folder", parameter=parameter)
        return path
    if path.suffix.lower() not in about.suffixes:
        raise ShotfitError(f"{about.label} {quoted(path)} must end in {' or '.join(about.suffixes)}",
                           parameter=parameter)
    if path.is_dir():
        raise ShotfitError(f"{about.label} {quoted(path)} is a folder, not a file", parameter=parameter)
    if path.exists() and not _replaceable(path, about):
        raise ShotfitError(f"{quoted(path)} already exists and was not made by shotfit: choose another path "
                           "(shotfit never replaces a file it did not write)", parameter=parameter)
    return path


def _replaceable(path: Path, about: OutputKind) -> bool:
    if path.is_symlink() or not path.is_file():  # a link may point at anything; a FIFO or device is not ours
        return False
    if all((path.parent / name).is_file() for name in _RUN_FILES):
        return True
    return about.made_by_shotfit is not None and about.made_by_shotfit(path)
