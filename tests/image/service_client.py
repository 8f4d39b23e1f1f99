"""A studio's first session with the service, run inside the service container (the standard library
only, against http://127.0.0.1:8000, the container having no network): create a shot, upload its
frames and keyframes (resumable uploads), train, render, fetch a rendered frame. Prints one JSON
object of what it saw; tests/image/test_service_image.py starts it as ``python - KEY SHOT_DIR``.

Follows the HTTP contract of issue 16 (docs: /v1 routes, Bearer keys, tus-like uploads, jobs).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

URL = "http://127.0.0.1:8000"
FINAL = {"succeeded", "failed", "cancelled"}
# the tiny network of the tests (tests/shots.py TINY): trains in seconds
SETTINGS = {"model.width": 4, "model.depth": 2, "augment.patch_size": 32, "data.batch_size": 2, "loss.lpips": 0,
            "train.warmup_steps": 0, "train.lr": 0.01, "train.threads": 1, "train.steps": 30}


def call(method: str, path: str, key: str, body: Any = None, data: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(URL + path, method=method, headers={"Authorization": f"Bearer {key}",
                                                                         **(headers or {})})
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path} -> {error.code}: {error.read().decode(errors='replace')}") from None


def json_call(method: str, path: str, key: str, body: Any = None, **kwargs: Any) -> Any:
    return json.loads(call(method, path, key, body, **kwargs)[1])


def upload(key: str, shot: str, role: str, path: Path) -> dict[str, Any]:
    content = path.read_bytes()
    started = json_call("POST", f"/v1/shots/{shot}/uploads", key,
                        {"role": role, "name": path.name, "size": len(content)})
    half = len(content) // 2  # two pieces, as a resumed upload sends them
    json_call("PATCH", f"/v1/uploads/{started['id']}", key, data=content[:half],
              headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})
    return json_call("PATCH", f"/v1/uploads/{started['id']}", key, data=content[half:],
                     headers={"Upload-Offset": str(half), "Content-Type": "application/offset+octet-stream"})


def run_job(key: str, body: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    job = json_call("POST", "/v1/jobs", key, body, headers={"Idempotency-Key": uuid.uuid4().hex})
    deadline = time.monotonic() + timeout
    while job["state"] not in FINAL and time.monotonic() < deadline:
        time.sleep(1)
        job = json_call("GET", f"/v1/jobs/{job['id']}", key)
    return job


def main(key: str, shot_dir: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {"me": json_call("GET", "/v1/me", key)}
    shot = json_call("POST", "/v1/shots", key, {"name": "image-smoke"})
    uploads = [upload(key, shot["id"], role, path) for role, folder in (("source", "plate"), ("keyframes", "kf"))
               for path in sorted((shot_dir / folder).iterdir())]
    seen["uploads_complete"] = all(u["complete"] for u in uploads)
    seen["shot"] = json_call("GET", f"/v1/shots/{shot['id']}", key)
    train = run_job(key, {"kind": "train", "shot_id": shot["id"], "settings": SETTINGS})
    seen["train"] = train
    if train["state"] != "succeeded":
        return seen
    render = run_job(key, {"kind": "render", "shot_id": shot["id"], "run_id": train["run_id"] or train["id"]})
    seen["render"] = render
    if render["state"] != "succeeded":
        return seen
    results = json_call("GET", f"/v1/jobs/{render['id']}/results", key)
    seen["results"] = results
    frames = [r for r in results if r["name"].endswith(".png")]
    if frames:
        status, content = call("GET", f"/v1/jobs/{render['id']}/results/{frames[0]['name']}", key)
        # a PNG's size lies in its IHDR chunk: width, then height, big-endian, from byte 16
        seen["fetched"] = {"name": frames[0]["name"], "status": status, "png": content[:8] == b"\x89PNG\r\n\x1a\n",
                           "width": int.from_bytes(content[16:20], "big"),
                           "height": int.from_bytes(content[20:24], "big")}
    return seen


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
