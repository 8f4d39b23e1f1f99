"""Webhooks as Standard Webhooks signs them, checked by a receiver on the loopback that verifies each
signature itself; retried with back-off after a failure; only the events an endpoint asked for."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from service_helpers import TINY_SETTINGS, new_studio, upload_folder
from shots import KEYFRAMES, edit, plate, write_shot

from shotfit.service.app import create_app
from shotfit.service.settings import ServiceSettings
from shotfit.service.webhooks import backoff, sign


def test_the_signature_is_the_standard_webhooks_one() -> None:
    """The example in the Standard Webhooks specification's reference libraries."""
    assert sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                b'{"test": 2432232314}') == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


class Receiver:
    """An HTTP endpoint on the loopback that fails its first ``fail_first`` requests with 500, then keeps each
    message with its headers and the time it came."""

    def __init__(self, fail_first: int = 0) -> None:
        self.messages: list[tuple[float, dict[str, str], bytes]] = []
        self.failures = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.failures > 0:
                    outer.failures -= 1
                    outer.messages.append((time.monotonic(), {"failed": "yes"}, body))
                    self.send_response(500)
                else:
                    outer.messages.append((time.monotonic(), {k.lower(): v for k, v in self.headers.items()}, body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/shotfit"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def delivered(self) -> list[tuple[float, dict[str, str], bytes]]:
        return [m for m in self.messages if "failed" not in m[1]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(fail_first=1)
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The receiver's own check, written from the specification (not with shotfit's sign)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(part.split(",", 1)[1], expected) for part in headers["webhook-signature"].split())


@pytest.mark.slow
def test_job_events_reach_the_endpoint_signed_after_a_retry_and_only_those_asked_for(receiver, tmp_path: Path):
    from fastapi.testclient import TestClient  # httpx: a test dependency only

    app = create_app(ServiceSettings(storage=tmp_path / "storage"))
    studio = new_studio(app.state.store, "Acme VFX")
    write_shot(tmp_path / "plates")
    write_shot(tmp_path / "fixed", KEYFRAMES, make=lambda f: edit(plate(f)))
    with TestClient(app) as client:
        hook = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["job.queued", "job.cancelled"]},
                           headers=studio.headers).json()
        assert hook["secret"].startswith("whsec_")
        assert "secret" not in client.get("/v1/webhooks", headers=studio.headers).json()[0]
        shot = client.post("/v1/shots", json={"name": "sh010"}, headers=studio.headers).json()["id"]
        upload_folder(client, studio, shot, "source", tmp_path / "plates")
        upload_folder(client, studio, shot, "keyframes", tmp_path / "fixed")
        job = client.post("/v1/jobs", json={"kind": "train", "shot_id": shot, "settings": TINY_SETTINGS},
                          headers=studio.headers).json()
        client.post(f"/v1/jobs/{job['id']}/cancel", headers=studio.headers)
        deadline = time.monotonic() + 30
        while len(receiver.delivered()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        client.delete(f"/v1/webhooks/{hook['id']}", headers=studio.headers)
    delivered = receiver.delivered()
    events = [json.loads(body)["type"] for _, _, body in delivered]
    assert sorted(events) == ["job.cancelled", "job.queued"]
    for _, headers, body in delivered:
        assert _verify(hook["secret"], headers, body)
        assert json.loads(body)["data"]["id"] == job["id"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert not _verify(hook["secret"], {**delivered[0][1], "webhook-timestamp": "1"}, delivered[0][2])
    failed = [m for m in receiver.messages if "failed" in m[1]]
    assert len(failed) == 1  # the first try failed; the same message came again after the back-off
    retried = next(m for m in delivered if m[2] == failed[0][2])
    assert retried[0] - failed[0][0] >= backoff(1) * 0.9
    assert len({headers["webhook-id"] for _, headers, _ in delivered}) == 2
