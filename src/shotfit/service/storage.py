"""Where a studio's files live, and the checks a file passes before it joins a shot.

Files are kept in the storage folder, or, when the settings name one (``files``), in any fsspec store
(``s3://bucket/prefix``, ``gs://...``, ``memory://``): the same layout under that URL. The local folder then
holds what must be a local file, as a scratch copy: each PATCH's bytes on their way to the store (one piece
object a PATCH, so any server on the same store and database can take an upload's next PATCH), an upload
whose last byte came, gathered from its pieces to be checked and put in the store in one go, and each job's
scratch copy (a worker stages a job's inputs there, runs :mod:`shotfit.api` on local files, and puts what it
writes back: :class:`Mirror`).

Layout under the storage folder or URL (every path built from ids the service made, and one checked name)::

    studios/STUDIO/uploads/UPLOAD.ext        bytes arriving (a resumable upload; with a store: its scratch copy)
    studios/STUDIO/uploads/UPLOAD/pieces/    with a store: the bytes of each PATCH, START.TAG (bytes from START)
    studios/STUDIO/shots/SHOT/ROLE/NAME      checked files of a shot (source, keyframes, truth)
    studios/STUDIO/jobs/JOB/                 a job's work: run/ (train), frames/ (render), exports

A file name is data: it must be one plain name (letters, digits, ``._+-``, not starting with a dot: no
separator, so no ``..`` can climb) with a known image or video extension; anything else (``../x``,
``a/b``, ``C:\\x``, NUL) is refused before a byte is written, and the final path is checked to lie in its
folder all the same.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import av
import fsspec
import numpy as np
import OpenImageIO as oiio
from fsspec.implementations.local import LocalFileSystem

from shotfit.errors import ShotfitError
from shotfit.files import atomic_path
from shotfit.io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from shotfit.service.settings import ServiceSettings

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,254}")
_UPLOAD_ID = re.compile(r"upload_[0-9a-f]{16}")

# The first bytes of each image type; a video is whatever PyAV opens with a video stream.
MAGIC: dict[str, tuple[bytes, ...]] = {
    ".exr": (b"\x76\x2f\x31\x01",),
    ".dpx": (b"SDPX", b"XPDS"),
    ".tif": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    ".png": (b"\x89PNG\r\n\x1a\n",),
    ".jpg": (b"\xff\xd8\xff",),
}


class PieceMissing(Exception):
    """An acknowledged piece of an upload is not in the store (removed behind the service's back): the upload
    must go on from ``start``."""

    def __init__(self, start: int) -> None:
        super().__init__(f"the piece from byte {start} is missing")
        self.start = start


class UploadRefused(ShotfitError):
    """An upload the service will not keep; ``status`` is the HTTP status that says why."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class AlreadyHeld(UploadRefused):
    """The shot holds a file of the upload's name already (409)."""

    def __init__(self, role: str, name: str) -> None:
        super().__init__(f"the shot already holds {role} file {name!r}", 409)


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


@dataclass(frozen=True)
class StoredFile:
    """A file in the storage, to send to a client: opened from the store, or (``local``) sent from disk."""

    fs: Any  # an fsspec file system
    path: str
    size: int
    local: Path | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def open(self, mode: str = "rb") -> IO[bytes]:
        return self.fs.open(self.path, mode)  # type: ignore[no-any-return]

    def chunks(self, size: int = 1 << 20) -> Iterator[bytes]:
        with self.open() as source:
            while block := source.read(size):
                yield block


@functools.lru_cache(maxsize=16)
def open_files(url: str) -> tuple[Any, str]:
    """The fsspec file system behind ``url`` and the root path in it (``s3://bucket/prefix`` -> ``bucket/prefix``).

    S3 goes through s3fs where it is installed, else through obstore's fsspec adapter (s3fs's aiobotocore pins
    an older botocore than boto3's); both read the usual ``AWS_*`` variables (``AWS_ENDPOINT_URL`` for a store
    other than AWS's)."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        if protocol == "s3" and not _installed("s3fs"):
            # the optional S3 client: imported only when a server keeps its files on S3
            from obstore.fsspec import FsspecStore

            return FsspecStore("s3"), url.split("://", 1)[1].strip("/")
        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:
        raise ShotfitError(f"storage {url!r} cannot be opened: {_first_line(err)}", parameter="storage") from None
    return fs, str(root).rstrip("/")


@functools.lru_cache(maxsize=16)
def bucket_store(bucket: str) -> Any:
    """obstore's own store of an S3 bucket, made as its fsspec adapter makes one (from the ``AWS_*`` variables):
    what :meth:`StudioStorage.head` asks for one object alone."""
    from obstore.store import from_url  # the optional S3 client, loaded where obstore's adapter already is

    return from_url(f"s3://{bucket}")


def check_files(url: str) -> None:
    """Write and remove a probe under ``url``: a store the server cannot write to fails at start, in one line."""
    fs, root = open_files(url)
    probe = f"{root}/.shotfit-probe-{os.getpid()}"
    try:
        fs.pipe_file(probe, b"shotfit")
        fs.rm(probe)
    except Exception as err:  # any backend's error: the server cannot use the store
        raise ShotfitError(f"storage {url!r} is not writable: {_first_line(err)}", parameter="storage") from None


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


class StudioStorage:
    """One studio's files: local paths inside its folder under the storage root and, with a store URL (``files``),
    the same layout in that store (the local paths are then the server's and workers' scratch copies)."""

    def __init__(self, root: Path, studio_id: str, files: str | None = None) -> None:
        self.root = (Path(root).resolve() / "studios" / studio_id)
        self.remote = files is not None
        self.fs, base = open_files(files) if files is not None else (LocalFileSystem(), str(self.root.parent.parent))
        self.base = f"{base}/studios/{studio_id}"

    @classmethod
    def of(cls, settings: ServiceSettings, studio_id: str) -> StudioStorage:
        """The studio's storage as a server's settings say."""
        return cls(settings.storage, studio_id, settings.files)

    def inside(self, path: Path) -> Path:
        """``path`` resolved, refused unless it lies in this studio's folder (a last check, after check_name)."""
        resolved = path.resolve()
        if self.root not in resolved.parents:
            raise UploadRefused(f"path {str(path)!r} lies outside the studio's storage", 400)
        return resolved

    def key(self, path: Path) -> str:
        """Where a local path of this studio lies in the store (the same place under its root)."""
        return f"{self.base}/{self.inside(path).relative_to(self.root).as_posix()}"

    def part(self, upload_id: str, name: str) -> Path:
        return self.inside(self.root / "uploads" / f"{upload_id}{Path(name).suffix.lower()}")

    def shot_role(self, shot_id: str, role: str) -> Path:
        return self.root / "shots" / shot_id / role

    def shot_file(self, shot_id: str, role: str, name: str) -> Path:
        return self.inside(self.shot_role(shot_id, role) / check_name(name))

    def job(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def place(self, upload_id: str, shot_id: str, role: str, name: str, *, replace: bool = False) -> None:
        """Move a completed, checked part file into its shot: in one rename on a local folder (through the write
        guard's atomic path: a crash leaves the part file or the placed file, never half of one); into the store
        in one put (an object appears whole or not at all), the part file removed after. A file already there
        is refused (:class:`AlreadyHeld`) unless ``replace``: it is the upload's own (see ``uploads.complete``)."""
        target = self.shot_file(shot_id, role, name)
        part = self.part(upload_id, name)
        if not self.remote:
            if target.exists() and not replace:
                raise AlreadyHeld(role, name)
            with atomic_path(target) as temp:
                os.replace(part, temp)
            return
        key = self.key(target)
        if not replace and self.head(key) is not None:
            raise AlreadyHeld(role, name)
        self.fs.put_file(str(part), key)
        part.unlink()

    def discard(self, upload_id: str, name: str) -> None:
        """Remove what an upload left: its part file and, with a store, its pieces and their local copies."""
        self.part(upload_id, name).unlink(missing_ok=True)
        if self.remote:
            for receiving in (self.root / "uploads").glob(f".{upload_id}.*.piece"):
                self.inside(receiving).unlink(missing_ok=True)
            self.drop_pieces(upload_id)

    def receiving(self, upload_id: str, tag: str) -> Path:
        """The local file one PATCH's bytes go to on their way to the store (hidden; ``tag`` is the PATCH's own)."""
        return self.inside(self.root / "uploads" / f".{upload_id}.{tag}.piece")

    def piece_key(self, upload_id: str, start: int, tag: str) -> str:
        """The store's key of an upload's piece that starts at byte ``start``."""
        return self.key(self.root / "uploads" / upload_id / "pieces" / f"{start:016d}.{tag}")

    def put_piece(self, local: Path, upload_id: str, start: int, tag: str) -> None:
        """Put one PATCH's bytes in the store, in one request (an object appears whole or not at all)."""
        self.fs.put_file(str(self.inside(local)), self.piece_key(upload_id, start, tag))

    def drop_piece(self, upload_id: str, start: int, tag: str) -> None:
        key = self.piece_key(upload_id, start, tag)
        if self.head(key) is not None:
            self.fs.rm(key)

    def drop_pieces(self, upload_id: str) -> None:
        """Remove every piece of an upload from the store, acknowledged or not."""
        self.remove(self.root / "uploads" / upload_id)

    def uploads_with_pieces(self) -> set[str]:
        """The ids of the uploads that have pieces in the store (none with a storage folder)."""
        if not self.remote:
            return set()
        try:
            entries = self.fs.ls(self.key(self.root / "uploads"), detail=True)
        except FileNotFoundError:
            return set()
        names = {str(entry["name"]).rstrip("/").rsplit("/", 1)[-1] for entry in entries
                 if entry.get("type") == "directory"}
        return {name for name in names if _UPLOAD_ID.fullmatch(name)}  # a key is data: only ids the service made

    def assemble(self, upload_id: str, name: str, pieces: list[tuple[int, int, str]]) -> Path:
        """Gather an upload's pieces (``(start, stop, tag)``, in order from byte 0) into its part file, streamed
        a few MB at a time, through the write guard's atomic path (never half a file under the part's name);
        :class:`PieceMissing` names where the bytes stop when a piece is gone or not of its size."""
        part = self.part(upload_id, name)
        with atomic_path(part) as temp, temp.open("wb") as out:
            for start, stop, tag in pieces:
                if out.tell() != start:
                    raise PieceMissing(out.tell())
                key = self.piece_key(upload_id, start, tag)
                found = self.head(key)  # asked first: obstore's reader opened on a missing key fails again when collected
                if found != stop - start:
                    raise PieceMissing(start)
                with self.fs.open(key, "rb") as source:
                    shutil.copyfileobj(source, out, 4 << 20)
                if out.tell() != stop:
                    raise PieceMissing(start)
        return part

    def remove(self, folder: Path) -> None:
        """Delete a folder of this studio (a job's, a shot's): the local copy and, with a store, the stored one."""
        shutil.rmtree(self.inside(folder), ignore_errors=True)
        if self.remote:
            key = self.key(folder)
            if self.fs.exists(key):
                self.fs.rm(key, recursive=True)

    def files(self, folder: Path) -> dict[str, StoredFile]:
        """Every file under ``folder`` (a job's), by its path relative to it: from the store, or the local folder."""
        if not self.remote:
            if not folder.is_dir():
                return {}
            return {p.relative_to(folder).as_posix(): StoredFile(self.fs, str(p), p.stat().st_size, local=p)
                    for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}
        prefix = self.key(folder)
        found = self.fs.find(prefix, detail=True)
        out = {}
        for path, info in sorted(found.items()):
            relative = str(path)[len(prefix) + 1:]
            if info.get("type", "file") == "file" and relative and not Path(relative).name.startswith("."):
                out[relative] = StoredFile(self.fs, str(path), int(info.get("size") or 0))
        return out

    def stored(self, path: Path) -> StoredFile | None:
        """One file of this studio by its path, or None when it is not there: asked of the file alone (a HEAD
        request on a store), never by listing its folder."""
        local = self.inside(path)
        if not self.remote:
            try:
                return StoredFile(self.fs, str(local), local.stat().st_size, local=local) if local.is_file() else None
            except FileNotFoundError:  # removed in between (retention)
                return None
        key = self.key(path)
        size = self.head(key)
        return StoredFile(self.fs, key, size) if size is not None else None

    def head(self, key: str) -> int | None:
        """The size of the file at ``key`` in the store, or None when there is none. fsspec's ``info`` (obstore's
        adapter, as s3fs) follows a HEAD that finds nothing with a LIST of the key as a folder's prefix: every
        missing file (a sheet or a shot's file retention removed, a name an upload is about to take) cost two
        requests, and a listing. Through obstore the HEAD alone is asked; another store answers ``info``."""
        if type(self.fs).__module__ == "obstore.fsspec":
            import obstore  # the optional S3 client, already loaded by the adapter this storage uses

            bucket, _, inside = key.partition("/")
            try:
                return int(obstore.head(bucket_store(bucket), inside)["size"])
            except FileNotFoundError:
                return None
        try:
            info = self.fs.info(key, refresh=True)  # refresh: s3fs would answer from a listing it cached
        except FileNotFoundError:
            return None
        return int(info.get("size") or 0) if info.get("type", "file") == "file" else None

    def mirror(self, folder: Path) -> Mirror:
        return Mirror(self, folder)


class Mirror:
    """A folder of a studio and its copy in the store: ``pull`` fetches what the local copy lacks, ``push`` puts
    what changed locally since (files whose size or time changed; hidden files, such as locks and the write
    guard's temporaries, stay local). Both do nothing when the storage is the local folder itself.

    Each file is fetched to a hidden temporary and renamed into place, so a reader never sees half of one,
    and put in one request, so the store never holds half of one either."""

    def __init__(self, storage: StudioStorage, folder: Path) -> None:
        self.storage, self.folder = storage, folder
        self._sent: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()  # one pull or push at a time
        self._sent_lock = threading.Lock()  # _sent's writes, and stores(): never waits for a push in flight

    def pull(self, fresh: bool = False) -> int:
        """Fetch the stored files missing here (or of another size); how many came. ``fresh``: drop the local
        copy first (hidden files, such as a held lock, stay), for a folder that changes: a file rewritten at the
        same size elsewhere (a checkpoint, by an attempt on another machine) must not be taken for the stored one."""
        if not self.storage.remote:
            return 0
        fetched = 0
        with self._lock:
            if fresh and self.folder.is_dir():
                for entry in self.folder.iterdir():
                    if entry.name.startswith("."):
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
            for relative, stored in self.storage.files(self.folder).items():
                local = self.storage.inside(self.folder / relative)  # a key naming a path outside: refused
                if not (local.is_file() and local.stat().st_size == stored.size):
                    local.parent.mkdir(parents=True, exist_ok=True)
                    temp = local.with_name(f".{local.name}.fetching-{os.getpid()}")
                    self.storage.fs.get_file(stored.path, str(temp))
                    os.replace(temp, local)
                    fetched += 1
                stat = local.stat()
                with self._sent_lock:
                    self._sent[relative] = (stat.st_size, stat.st_mtime_ns)
        return fetched

    def stores(self, path: Path) -> bool:
        """Whether the store holds a file at the place of ``path`` (this mirror put or fetched one there; its
        older version while a rewrite waits for the next push), asked of what the mirror knows, not of the
        store; a local storage folder holds whatever is in it."""
        if not self.storage.remote:
            return path.is_file()
        with self._sent_lock:
            return path.relative_to(self.folder).as_posix() in self._sent

    def push(self, only: Path | None = None) -> int:
        """Put the files (or the one file ``only``) changed since the last push or pull; how many went."""
        if not self.storage.remote or not self.folder.is_dir():
            return 0
        sent = 0
        with self._lock:
            paths = [only] if only is not None else sorted(self.folder.rglob("*"))
            for path in paths:
                if path.name.startswith(".") or not path.is_file():
                    continue
                relative, stat = path.relative_to(self.folder).as_posix(), path.stat()
                if self._sent.get(relative) == (stat.st_size, stat.st_mtime_ns):
                    continue
                self.storage.fs.put_file(str(path), self.storage.key(path))
                with self._sent_lock:
                    self._sent[relative] = (stat.st_size, stat.st_mtime_ns)
                sent += 1
        return sent

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
    width, height, channels = _probe_image(path, name)
    if width * height > max_pixels:
        raise UploadRefused(f"file {name!r} is {width}x{height}, over the limit of {max_pixels} pixels", 413)
    return Checked(wanted, width, height, channels)


def _probe_image(path: Path, name: str) -> tuple[int, int, int]:
    """(width, height, channels) from the file's header, after decoding its last line (or row of tiles): a header that lies
    about the size, a missing line-offset table or a file cut short fails here. The whole frame is not decoded
    (it cost ~3 ms of CPU per MB, most of the upload's work): a frame broken in its middle fails the job that
    reads it, in one line naming the file."""
    image = oiio.ImageInput.open(str(path))
    if image is None:
        raise UploadRefused(f"file {name!r} cannot be decoded: {_decoder_reason(oiio.geterror(), path)}", 422)
    try:
        spec = image.spec()
        end = spec.y + spec.height
        if spec.tile_width:  # the last row of tiles
            top = spec.y + (spec.height - 1) // spec.tile_height * spec.tile_height
            last = image.read_tiles(0, 0, spec.x, spec.x + spec.width, top, end, 0, 1, 0, spec.nchannels, "float")
        else:
            last = image.read_scanlines(0, 0, end - 1, end, 0, 0, spec.nchannels, "float")
        if last is None or spec.width <= 0 or spec.height <= 0:
            raise UploadRefused(f"file {name!r} cannot be decoded: {_decoder_reason(image.geterror(), path)}", 422)
        return spec.width, spec.height, spec.nchannels
    finally:
        image.close()


def _decoder_reason(text: str, path: Path) -> str:
    line = (text.strip().splitlines() or ["the decoder gave no reason"])[-1]
    return line.replace(str(path), "the file")[:300]


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
