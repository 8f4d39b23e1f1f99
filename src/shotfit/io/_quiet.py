"""Holding back what C decoders print about a damaged file (libpng and OpenCV on stderr, OpenEXR on stdout).

They print their own complaint before returning an error that shotfit then reports as one line naming
the file; a user would otherwise see two or three messages, some without the file's name.

libpng (inside OpenCV) and OpenEXR write straight to file descriptors 2 and 1 from C, with no log
level or callback to silence them per call, and a descriptor is the whole process's: redirecting it
delays every other thread's output too. So the library redirects nothing unless the entry point that
owns the process (the ``shotfit`` command) asks for it with :func:`hold_native_output`; a server that
hosts jobs leaves it off, and the decoders' complaints reach its stderr beside shotfit's one-line errors.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

# File descriptors are per process: two threads redirecting at once would restore each other's files.
_REDIRECTING = threading.Lock()
_holding = False  # set only by an entry point, through hold_native_output


def hold_native_output(enabled: bool = True) -> None:
    """From now on, hold back (``enabled``) or let through what C decoders print during a decode.

    For an entry point that owns its process's stdout and stderr (the CLI): the redirection is
    process-wide. Library calls never turn it on.
    """
    global _holding
    _holding = enabled


@dataclass
class HeldOutput:
    """Set ``discard`` when the decode failed: what was held is then dropped, not written out."""

    discard: bool = False


@contextlib.contextmanager
def native_output_held() -> Iterator[HeldOutput]:
    """Redirect file descriptors 1 and 2 to temporary files for the duration of a decode.

    Afterwards the held output is written where it was going, unless an exception escaped or
    ``discard`` was set: a warning about a file that still decodes (or another thread's output) is
    delayed, not lost. Where stdout or stderr is no real file descriptor, nothing is redirected.
    Decodes in several threads take turns here. Unless an entry point called
    :func:`hold_native_output`, nothing is redirected and the decode runs as it is.
    """
    if not _holding:
        yield HeldOutput()
        return
    with _REDIRECTING:
        with _held() as held:
            yield held


@contextlib.contextmanager
def _held() -> Iterator[HeldOutput]:
    held = HeldOutput()
    saved: dict[int, int] = {}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            saved[fd] = os.dup(fd)
    except (OSError, ValueError, AttributeError):
        for copy in saved.values():
            os.close(copy)
        saved = {}
    if not saved:
        yield held
        return
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        buffers = {1: out, 2: err}
        for fd, buffer in buffers.items():
            os.dup2(buffer.fileno(), fd)
        try:
            yield held
        except BaseException:
            held.discard = True
            raise
        finally:
            for fd, buffer in buffers.items():
                os.dup2(saved[fd], fd)
                os.close(saved[fd])
                buffer.seek(0)
                if (text := buffer.read()) and not held.discard:
                    os.write(fd, text)
