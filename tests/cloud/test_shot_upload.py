"""A shot in S3: only its own files, keyed by their content, uploaded once and resumed after an interruption."""

from __future__ import annotations

import hashlib
import json

import pytest
from aws_emulator import BUCKET, REGION, client, make_bucket, s3_keys
from shots import write_graded_shot, write_video

from shotfit.cloud.aws import Clients, CloudError, S3Location
from shotfit.cloud.shot_upload import ShotPaths, check_bucket, hash_shot, read_shot, upload_shot
from shotfit.errors import FrameError

WHERE = S3Location(BUCKET, "studio/shotfit")


def test_a_pattern_uploads_its_frames_and_nothing_else_in_the_folder(aws, tmp_path):
    make_bucket()
    source, keys = write_graded_shot(tmp_path, frames=range(1, 5), keyframes=(1, 3))
    write_graded_shot(tmp_path / "other", frames=range(1, 3), keyframes=(), name="bg.{:04d}")
    for path in (tmp_path / "other" / "plate").iterdir():  # another shot's frames beside ours
        path.rename(source / path.name)
    (source / "notes.txt").write_text("comp notes")
    (keys / ".DS_Store").write_bytes(b"\0")
    content = read_shot(ShotPaths(str(source / "plate.####.png"), str(keys)))
    shot = upload_shot(Clients(REGION).s3, content, WHERE)
    prefix = f"studio/shotfit/shots/{shot.digest}/"
    assert s3_keys() == sorted([prefix + "manifest.json", prefix + "keyframes/plate.0001.png",
                                prefix + "keyframes/plate.0003.png",
                                *(f"{prefix}source/plate.{f:04d}.png" for f in range(1, 5))])
    assert shot.channels == {"source": f"s3://{BUCKET}/{prefix}source/",
                             "keyframes": f"s3://{BUCKET}/{prefix}keyframes/"}
    manifest = json.loads(client("s3").get_object(Bucket=BUCKET, Key=prefix + "manifest.json")["Body"].read())
    first = manifest["channels"]["source"][0]
    assert first["name"] == "plate.0001.png"
    assert first["sha256"] == hashlib.sha256((source / "plate.0001.png").read_bytes()).hexdigest()
    uploaded = client("s3").get_object(Bucket=BUCKET, Key=prefix + "source/plate.0002.png")["Body"].read()
    assert uploaded == (source / "plate.0002.png").read_bytes()


def test_a_video_is_one_file(tmp_path):
    source = write_video(tmp_path / "clip.mp4")
    _, keys = write_graded_shot(tmp_path, frames=(0, 2), keyframes=(0, 2))
    content = hash_shot({"source": source, "keyframes": keys, "masks": None})
    assert [(f.channel, f.name) for f in content.files] == [("source", "clip.mp4"), ("keyframes", "plate.0000.png"),
                                                            ("keyframes", "plate.0002.png")]
    assert content.bytes == source.stat().st_size + sum(p.stat().st_size for p in keys.iterdir())


def test_the_digest_follows_the_content_not_the_place(tmp_path):
    source, keys = write_graded_shot(tmp_path / "a", frames=range(1, 4), keyframes=(1,))
    copy_source, copy_keys = write_graded_shot(tmp_path / "b", frames=range(1, 4), keyframes=(1,))
    digest = hash_shot({"source": source, "keyframes": keys}).digest
    assert hash_shot({"source": copy_source, "keyframes": copy_keys}).digest == digest  # same frames elsewhere
    (copy_source / "plate.0002.png").write_bytes((copy_source / "plate.0003.png").read_bytes())
    assert hash_shot({"source": copy_source, "keyframes": copy_keys}).digest != digest  # one frame changed
    with pytest.raises(FrameError, match="matches no frames"):
        read_shot(ShotPaths(str(source), str(copy_keys / "nothing.####.png")))


def test_an_interrupted_upload_resumes_and_a_finished_one_is_skipped(aws, tmp_path):
    make_bucket()
    source, keys = write_graded_shot(tmp_path, frames=range(1, 7), keyframes=(1, 4))
    content = hash_shot({"source": source, "keyframes": keys})
    s3 = Clients(REGION).s3
    # an earlier upload that died after two frames (no manifest); marked, so a second send would show
    sent_before = {}
    for name in ("plate.0001.png", "plate.0002.png"):
        key = WHERE.key("shots", content.digest, "source", name)
        sent_before[key] = b"m" * (source / name).stat().st_size
        s3.put_object(Bucket=BUCKET, Key=key, Body=sent_before[key])
    progress = []
    shot = upload_shot(s3, content, WHERE, on_upload=lambda done, total: progress.append((done, total)))
    assert not shot.already_there and shot.uploaded_files == 6  # the 4 other frames and 2 keyframes
    assert progress == [(n, 6) for n in range(1, 7)]
    for key, body in sent_before.items():
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == body
    again = upload_shot(s3, content, WHERE, on_upload=lambda done, total: progress.append((done, total)))
    assert again.already_there and again.uploaded_files == 0 and len(progress) == 6


def test_a_bucket_in_another_region_is_refused(aws):
    client("s3").create_bucket(Bucket="shotfit-eu", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(CloudError, match="'shotfit-eu' is in eu-west-1 but the jobs would run in us-east-1"):
        check_bucket(Clients(REGION).s3, S3Location("shotfit-eu"), REGION)
    check_bucket(Clients("eu-west-1").s3, S3Location("shotfit-eu"), "eu-west-1")


def test_s3_locations_parse_and_refuse(tmp_path):
    assert S3Location.parse("s3://shotfit-test/studio/shotfit/").uri("shots", "x", folder=True) == \
        "s3://shotfit-test/studio/shotfit/shots/x/"
    assert S3Location.parse("s3://shotfit-test").key("jobs") == "jobs"
    for text in ("shotfit-test/x", "s3://ab", "s3://UPPER/x"):
        with pytest.raises(Exception, match="^s3 "):
            S3Location.parse(text)
