"""A zip made while it is sent: zipfile writes to a sink that hands its bytes on chunk by chunk.

Frames (EXR, DPX, PNG) are compressed already: entries are stored, so a 4K shot streams at disk speed.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from typing import IO, Protocol

CHUNK = 1 << 20


class Readable(Protocol):
    """A file to put in the zip: a local ``Path``, or a file in the service's store."""

    def open(self, mode: str = ...) -> IO[bytes]: ...


class _Sink:
    """A write-only, unseekable file: zipfile then writes data descriptors after each entry."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def zip_chunks(files: Mapping[str, Readable]) -> Iterator[bytes]:
    """The bytes of a zip holding ``files`` (name in the zip -> file), in chunks of about a MiB."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:  # type: ignore[arg-type]
        for name, path in files.items():
            with path.open("rb") as source, archive.open(name, "w", force_zip64=True) as entry:
                while block := source.read(CHUNK):
                    entry.write(block)
                    if sink.position and len(sink.parts) > 0:
                        yield sink.take()
            yield sink.take()
    yield sink.take()
