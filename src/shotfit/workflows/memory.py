"""Out of memory as one line: what ran out, how much it asked for, and which settings make it smaller.

An allocation that fails is the user's settings meeting the machine (a batch, a patch, a network or a
tile too large for it), not a bug, so each workflow turns it into a :class:`~shotfit.errors.ShotfitError`
at its boundary. What counts as running out: ``MemoryError`` (Python, NumPy), PyTorch's
``OutOfMemoryError`` (CUDA, MPS, XPU), the CPU allocator's ``RuntimeError`` ("DefaultCPUAllocator: can't
allocate memory" / "not enough memory"), onnxruntime's "Failed to allocate memory" and OpenCV's
"Insufficient memory". PyTorch is never imported here: ``render --engine onnxruntime`` runs where it
is not installed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator

from shotfit.errors import OutOfMemory

# What the allocators say, and where they say how much they wanted.
_OUT_OF_MEMORY = re.compile(
    r"DefaultCPUAllocator: (can't allocate memory|not enough memory)|out of memory|"
    r"Failed to allocate memory|Insufficient memory|std::bad_alloc|Unable to allocate", re.IGNORECASE)
_BYTES = re.compile(r"(?:tried to allocate|requested buffer of size|failed to allocate) (\d+)(?: bytes)?",
                    re.IGNORECASE)
_WITH_UNIT = re.compile(r"(?:tried to allocate|unable to allocate) ([\d.]+ ?[KMGTP]i?B)", re.IGNORECASE)
_UNITS = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB")


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocation that failed (see the module docstring for the kinds)."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    # onnxruntime's and OpenCV's errors are plain Exceptions: they are known by their module and message
    native = type(err).__module__.split(".")[0] in ("onnxruntime", "cv2")
    return (isinstance(err, RuntimeError) or native) and _OUT_OF_MEMORY.search(str(err)) is not None


def requested_size(message: str) -> str | None:
    """The size the failed allocation asked for, in words (``"32.0 GiB"``), when the message says it."""
    if (match := _WITH_UNIT.search(message)) is not None:  # CUDA's "20.00 GiB", NumPy's "728. TiB"
        return match.group(1)
    if (match := _BYTES.search(message)) is not None:
        size = float(match.group(1))
        unit = 0
        while size >= 1024 and unit < len(_UNITS) - 1:
            size, unit = size / 1024, unit + 1
        return f"{size:.0f} bytes" if unit == 0 else f"{size:.1f} {_UNITS[unit]}"
    return None


@contextlib.contextmanager
def out_of_memory_as_error(what: str, advice: Callable[[], str], parameter: str | None = None) -> Iterator[None]:
    """Run the body; an allocation that fails inside becomes one line: ``"{what} ran out of memory ...: {advice}"``.

    Args:
        what: What ran out, as a sentence begins (``"training"``).
        advice: Called only on failure, so it can name the settings as they were resolved by then;
            says what to lower (``"lower data.batch_size (now 1024) ..."``).
        parameter: The request field the advice points at, if one (the CLI appends its option).
    """
    try:
        yield
    except Exception as err:  # MemoryError, RuntimeError and onnxruntime's own
        if not is_out_of_memory(err):
            raise
        size = requested_size(str(err))
        asked = f" (an allocation of {size} failed)" if size else ""
        raise OutOfMemory(f"{what} ran out of memory{asked}: {advice()}", parameter=parameter) from None
