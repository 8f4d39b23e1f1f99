"""A shot in S3, once: its files hashed, keyed by the digest, the upload skipped when already there.

Layout under the launch's ``s3://bucket/prefix``::

    shots/<digest>/source/<file>       the plates: the frames of a folder or pattern, or one video file
    shots/<digest>/keyframes/<file>    the artist's fixed frames
    shots/<digest>/masks/<file>        optional: one matte per keyframe
    shots/<digest>/manifest.json       written last: every file's name, size and sha256

The digest covers every channel's file names and bytes (sha256, read in chunks), so the same shot
launched again, from any machine, finds its manifest and uploads nothing; a changed frame is a new
digest. An interrupted upload leaves no manifest, and the next launch uploads only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from shotfit.cloud.aws import CloudError, S3Location, aws_errors, cloud_error, not_found
from shotfit.cloud.contract import REQUIRED_CHANNELS
from shotfit.errors import FrameError, quoted
from shotfit.io import FrameSequence, open_shot
from shotfit.io.masks import ALPHA, open_masks

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DIGEST_CHARS = 24  # 96 bits of sha256: collisions are not a concern for shots
_CHUNK = 1 << 20
_PARALLEL = 8  # files in flight at once (boto3 clients are thread-safe)


@dataclass(frozen=True)
class ShotPaths:
    """The shot the jobs train on, as the user (or the sweep) gave it."""

    source: str
    keyframes: str
    masks: str | None = None  # a mask sequence, "alpha", or None


@dataclass(frozen=True)
class ShotFile:
    channel: str
    name: str  # the name inside the channel folder (the file's own name)
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class ShotContent:
    """The files a job needs, per channel, hashed."""

    files: tuple[ShotFile, ...]
    described: Mapping[str, str] = field(default_factory=dict)  # channel -> what the user gave

    @property
    def digest(self) -> str:
        lines = sorted(f"{f.channel}/{f.name}\t{f.size}\t{f.sha256}\n" for f in self.files)
        return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()[:DIGEST_CHARS]

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.channel for f in self.files))

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.files)

    def manifest(self) -> dict:
        return {"digest": self.digest,
                "channels": {c: [{"name": f.name, "size": f.size, "sha256": f.sha256}
                                 for f in self.files if f.channel == c] for c in self.channels}}


@dataclass(frozen=True)
class ShotInS3:
    """Where a shot's channels are, and what this launch had to upload."""

    digest: str
    channels: Mapping[str, str]  # channel -> s3://.../shots/<digest>/<channel>/
    uploaded_files: int
    uploaded_bytes: int
    already_there: bool


def read_shot(shot: ShotPaths, on_file: Callable[[int, int], None] | None = None) -> ShotContent:
    """Check that the keyframes pair with the source (and masks) as training will, then hash the files:
    a mistake found here costs nothing, found in a job it costs the job's start-up.

    Raises:
        ShotfitError: one line naming the file at fault.
    """
    from shotfit.data.keyframes import pair_keyframes  # imports PyTorch: only when a launch checks its shot

    source, keyframes = open_shot(shot.source), open_shot(shot.keyframes)
    try:
        pair_keyframes(source, keyframes, open_masks(shot.masks))
    finally:
        source.close()
        keyframes.close()
    masks = None if shot.masks in (None, ALPHA) else shot.masks
    return hash_shot({"source": shot.source, "keyframes": shot.keyframes, "masks": masks}, on_file)


def channel_files(spec: str | Path) -> list[Path]:
    """The files of one channel: a folder's or a pattern's frames (nothing else in the folder), or a video."""
    shot = open_shot(spec)
    try:
        if isinstance(shot, FrameSequence):
            return [shot.file(frame) for frame in shot.frames]
        return [Path(shot.path)]  # a video: the one file
    finally:
        shot.close()


def hash_shot(channels: Mapping[str, str | Path | None],
              on_file: Callable[[int, int], None] | None = None) -> ShotContent:
    """Hash every file of every channel given (``{"source": ..., "keyframes": ..., "masks": None}``);
    ``on_file(done, total)`` after each file.

    Raises:
        FrameError: a channel cannot be opened, or two of its files share a name.
    """
    listed: list[tuple[str, Path]] = []
    for channel, spec in channels.items():
        if spec is None:
            continue
        names: dict[str, Path] = {}
        for path in channel_files(spec):
            if path.name in names:  # a pattern spans one folder, so only a bug could get here
                raise FrameError(f"{quoted(names[path.name])} and {quoted(path)} have the same name")
            names[path.name] = path
            listed.append((channel, path))
    missing = [c for c in REQUIRED_CHANNELS if not any(channel == c for channel, _ in listed)]
    if missing:
        raise FrameError(f"the shot has no {missing[0]} files")
    files = []
    for done, (channel, path) in enumerate(listed, 1):
        files.append(ShotFile(channel, path.name, path, path.stat().st_size, file_sha256(path)))
        if on_file is not None:
            on_file(done, len(listed))
    return ShotContent(tuple(files), {c: str(s) for c, s in channels.items() if s is not None})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def shot_location(content: ShotContent, where: S3Location) -> dict[str, str]:
    """channel -> the S3 prefix a job's channel reads (with the trailing slash)."""
    return {c: where.uri("shots", content.digest, c, folder=True) for c in content.channels}


def upload_shot(s3: object, content: ShotContent, where: S3Location,
                on_upload: Callable[[int, int], None] | None = None) -> ShotInS3:
    """Upload the shot under ``where/shots/<digest>/`` unless its manifest is already there;
    ``on_upload(done, total)`` after each file sent.

    Files already in S3 under this digest (an earlier, interrupted upload) are not sent again; the
    manifest is written last, so its presence means every file arrived.

    Raises:
        CloudError: one line naming the bucket or the file that failed.
    """
    digest = content.digest
    channels = shot_location(content, where)
    manifest_key = where.key("shots", digest, MANIFEST)
    if _exists(s3, where.bucket, manifest_key):
        return ShotInS3(digest, channels, 0, 0, True)
    present = _keys_under(s3, where.bucket, where.key("shots", digest) + "/")
    todo = [f for f in content.files if present.get(where.key("shots", digest, f.channel, f.name)) != f.size]

    def send(entry: ShotFile) -> ShotFile:
        key = where.key("shots", digest, entry.channel, entry.name)
        with aws_errors(f"uploading {quoted(entry.path)} to s3://{where.bucket}/{key}"):
            s3.upload_file(str(entry.path), where.bucket, key)
        return entry

    pool = ThreadPoolExecutor(max_workers=_PARALLEL, thread_name_prefix="shotfit-upload")
    try:
        for done, _ in enumerate(pool.map(send, todo), 1):
            if on_upload is not None:
                on_upload(done, len(todo))
    except BaseException:  # Ctrl-C or a refused file: stop sending the rest
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    with aws_errors(f"writing s3://{where.bucket}/{manifest_key}"):
        s3.put_object(Bucket=where.bucket, Key=manifest_key, ContentType="application/json",
                      Body=json.dumps(content.manifest(), indent=1).encode("utf-8"))
    log.info("shot %s: %d files uploaded", digest, len(todo))
    return ShotInS3(digest, channels, len(todo), sum(f.size for f in todo), False)


def check_bucket(s3: object, where: S3Location, region: str) -> None:
    """The bucket exists, can be read, and is in the jobs' region (SageMaker reads only its own region).

    Raises:
        CloudError: one line naming the bucket.
    """
    what = f"S3 bucket '{where.bucket}'"
    try:
        response = s3.head_bucket(Bucket=where.bucket)
    except Exception as err:
        if not_found(err):
            raise CloudError(f"{what} does not exist (create it in {region}, or give another s3 location)") from None
        raise cloud_error(err, f"checking {what}") from None
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    bucket_region = headers.get("x-amz-bucket-region")
    if bucket_region and bucket_region != region:
        raise CloudError(f"{what} is in {bucket_region} but the jobs would run in {region}: give "
                         f"region {bucket_region}, or a bucket in {region}")


def _exists(s3: object, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except Exception as err:
        if not_found(err):
            return False
        raise cloud_error(err, f"reading s3://{bucket}/{key}") from None
    return True


def _keys_under(s3: object, bucket: str, prefix: str) -> dict[str, int]:
    """key -> size of every object under ``prefix``."""
    found: dict[str, int] = {}
    with aws_errors(f"listing s3://{bucket}/{prefix}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update({item["Key"]: int(item["Size"]) for item in page.get("Contents", ())})
    return found


def describe_size(count: int, size: int) -> str:
    """``212 files, 1.3 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{count} file{'s' if count != 1 else ''}, {size / scale:.1f} {unit}"
    return f"{count} file{'s' if count != 1 else ''}, {size} bytes"

