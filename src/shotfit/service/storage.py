"""Where a studio's files live, and the checks a file passes before it joins a shot.

Layout under the storage folder (every path built from ids the service made, and one checked name)::

    studios/STUDIO/uploads/UPLOAD.ext        bytes arriving (a resumable upload)
    studios/STUDIO/shots/SHOT/ROLE/NAME      checked files of a shot (source, keyframes, truth)
    studios/STUDIO/jobs/JOB/                 a job's work: run/ (train), frames/ (render), exports

A file name is data: it must be one plain name (letters, digits, ``._+-``, not starting with a dot: no
separator, so no ``..`` can climb) with a known image or video extension; anything else (``../x``,
``a/b``, ``C:\\x``, NUL) is refused before a byte is written, and the final path is checked to lie in its
folder all the same.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from shotfit.errors import ShotfitError
from shotfit.files import atomic_path
from shotfit.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, read_image

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")

# The first bytes of each image type; a video is whatever PyAV opens with a video stream.
MAGIC: dict[str, tuple[bytes, ...]] = {
    ".exr": (b"\x76\x2f\x31\x01",),
    ".dpx": (b"SDPX", b"XPDS"),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
}


class UploadRefused(ShotfitError):
    """An upload the service will not keep; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Checked:
    """What a completed upload turned out to be."""

    format: str  # the canonical extension, or "video"
    width: int
    height: int
    channels: int


def check_name(name: str) -> str:
    """``name`` if it is one plain file name with a known extension; else :class:`UploadRefused` (400)."""
    if not _NAME.fullmatch(name):
        raise UploadRefused(f"file name {name!r} is not a plain file name (letters, digits and ._+- only, "
                            "not starting with a dot; no folders)", 400)
    suffix = Path(name).suffix.lower()
    if suffix not in IMAGE_EXTENSIONS and suffix not in VIDEO_EXTENSIONS:
        raise UploadRefused(f"file name {name!r}: unknown type {suffix or '(no extension)'!r} (frames: "
                            f"{', '.join(IMAGE_EXTENSIONS)}; videos: {', '.join(VIDEO_EXTENSIONS)})", 415)
    return name


class StudioStorage:
    """One studio's folder under the storage root; every path it hands out lies inside it."""

    def __init__(self, root: Path, studio_id: str) -> None:
        self.root = (Path(root).resolve() / "studios" / studio_id)

    def inside(self, path: Path) -> Path:
        """``path`` resolved, refused unless it lies in this studio's folder (a last check, after check_name)."""
        resolved = path.resolve()
        if self.root not in resolved.parents:
            raise UploadRefused(f"path {str(path)!r} lies outside the studio's storage", 400)
        return resolved

    def part(self, upload_id: str, name: str) -> Path:
        return self.inside(self.root / "uploads" / f"{upload_id}{Path(name).suffix.lower()}")

    def shot_role(self, shot_id: str, role: str) -> Path:
        return self.root / "shots" / shot_id / role

    def shot_file(self, shot_id: str, role: str, name: str) -> Path:
        return self.inside(self.shot_role(shot_id, role) / check_name(name))

    def job(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def append(self, upload_id: str, name: str, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` of the part file (created at offset 0), flushed to disk."""
        path = self.part(upload_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o640)
        try:
            os.ftruncate(fd, offset)  # bytes past the agreed offset (a chunk cut short) never count
            os.pwrite(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def place(self, upload_id: str, shot_id: str, role: str, name: str) -> Path:
        """Move a completed, checked part file to its shot's folder in one rename (through the write guard's
        atomic path: a crash leaves the part file or the placed file, never half of one)."""
        target = self.shot_file(shot_id, role, name)
        if target.exists():
            raise UploadRefused(f"the shot already holds {role} file {name!r}", 409)
        with atomic_path(target) as temp:
            os.replace(self.part(upload_id, name), temp)
        return target

    def discard(self, upload_id: str, name: str) -> None:
        self.part(upload_id, name).unlink(missing_ok=True)


def sniff(path: Path, name: str, max_pixels: int) -> Checked:
    """Check a completed upload's bytes: its type (magic bytes, or a video PyAV opens) must be the one its
    name says, and it must decode (size, channels) within ``max_pixels``; else :class:`UploadRefused`."""
    suffix = Path(name).suffix.lower()
    with path.open("rb") as file:
        head = file.read(16)
    found = next((ext for ext, magics in MAGIC.items() if head.startswith(magics)), None)
    if suffix in VIDEO_EXTENSIONS:
        if found is not None:
            raise UploadRefused(f"file {name!r} is named as a video but holds a {found[1:].upper()} image", 415)
        return _check_video(path, name, max_pixels)
    wanted = IMAGE_EXTENSIONS[suffix]
    if found != wanted:
        what = f"a {found[1:].upper()} image" if found else "no image type shotfit reads"
        raise UploadRefused(f"file {name!r} is named {wanted[1:].upper()} but holds {what}", 415)
    try:
        pixels, _ = read_image(path)
    except ShotfitError as err:
        raise UploadRefused(f"file {name!r} cannot be decoded: {_reason(err, path)}", 422) from None
    height, width = pixels.shape[:2]
    if width * height > max_pixels:
        raise UploadRefused(f"file {name!r} is {width}x{height}, over the limit of {max_pixels} pixels", 413)
    return Checked(wanted, width, height, pixels.shape[2] if pixels.ndim == 3 else 1)


def _reason(err: ShotfitError, path: Path) -> str:
    """The decoder's reason, without the server's own path (the client knows the file by its name)."""
    return str(err).replace(f"'{path}'", "the file").replace(str(path), "the file")


def _check_video(path: Path, name: str, max_pixels: int) -> Checked:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UploadRefused(f"file {name!r} holds no video stream", 415)
            stream = container.streams.video[0]
            frame = next(container.decode(stream))
            pixels: np.ndarray = frame.to_ndarray(format="rgb24")
    except UploadRefused:
        raise
    except (av.error.FFmpegError, StopIteration, OSError, ValueError):
        raise UploadRefused(f"file {name!r} is not a video shotfit reads (no decodable frame)", 415) from None
    height, width = pixels.shape[:2]
    if width * height > max_pixels:
        raise UploadRefused(f"file {name!r} is {width}x{height}, over the limit of {max_pixels} pixels", 413)
    return Checked("video", width, height, 3)
