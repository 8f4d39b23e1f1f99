"""What the service's tests share: studios and their keys, the tiny shot as uploads, waiting for jobs."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shotfit.service.keys import create_key
from shotfit.service.settings import Limits
from shotfit.service.store import Store

# A tiny network (see tests/shots.py: TINY) as job settings; checkpoints often, so a resume has one.
TINY_SETTINGS: dict[str, Any] = {
    "model.width": 4, "model.depth": 2, "augment.patch_size": 32, "data.batch_size": 2, "loss.lpips": 0,
    "train.warmup_steps": 0, "train.lr": 0.01, "train.threads": 1, "train.device": "cpu"}


# Limits small enough for tests to reach: 200 kB files, 8 a role, 2 MB a studio, 3 jobs a key, 256x256 frames
SMALL_LIMITS = Limits(max_file_bytes=200_000, max_files=8, max_storage_bytes=2_000_000, max_concurrent_jobs=3,
                      requests_per_minute=0, max_pixels=256 * 256)


# the bucket in moto's S3 server (conftest's ``s3`` fixture)
BUCKET = "shotfit-test"


@dataclass(frozen=True)
class Studio:
    name: str
    key_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def new_studio(store: Store, name: str) -> Studio:
    key_id, key = create_key(store, name)
    return Studio(name, key_id, key)


def upload(client: Any, studio: Studio, shot_id: str, role: str, name: str, data: bytes,
           chunk: int | None = None) -> Any:
    """Announce ``name`` and send its bytes (in chunks of ``chunk``); the last PATCH's response."""
    created = client.post(f"/v1/shots/{shot_id}/uploads", json={"role": role, "name": name, "size": len(data)},
                          headers=studio.headers)
    assert created.status_code == 201, created.text
    upload_id, offset, answer = created.json()["id"], 0, None
    step = chunk or len(data)
    while offset < len(data):
        answer = client.patch(f"/v1/uploads/{upload_id}", content=data[offset:offset + step],
                              headers={**studio.headers, "Upload-Offset": str(offset),
                                       "Content-Type": "application/offset+octet-stream"})
        if answer.status_code != 200:
            return answer
        offset = answer.json()["offset"]
    return answer


def upload_folder(client: Any, studio: Studio, shot_id: str, role: str, folder: Path,
                  names: Iterable[str] | None = None) -> None:
    for path in sorted(folder.iterdir()):
        if names is None or path.name in names:
            answer = upload(client, studio, shot_id, role, path.name, path.read_bytes())
            assert answer.status_code == 200 and answer.json()["complete"], answer.text


def wait_for(client: Any, studio: Studio, job_id: str, states: Iterable[str] = ("succeeded", "failed", "cancelled"),
             timeout: float = 300.0, poll: float = 0.2) -> dict[str, Any]:
    """Poll the job until its state is one of ``states``; its last body."""
    wanted, deadline = set(states), time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/jobs/{job_id}", headers=studio.headers).json()
        if job["state"] in wanted:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")
        time.sleep(poll)
