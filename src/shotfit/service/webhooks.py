"""Webhooks as Standard Webhooks sends them: each message carries ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed by the endpoint's ``whsec_``
secret. Deliveries live in the store and are retried with back-off (1 s, 2 s, 4 s... up to an hour,
:data:`MAX_TRIES` tries), so a restart loses none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import timedelta

import httpx
from fastapi import APIRouter, Response
from sqlalchemy import select, update

from shotfit.service import schemas
from shotfit.service.deps import CallerDep, StoreDep, errors, not_found
from shotfit.service.store import Delivery, Job, Store, Webhook
from shotfit.service.store.models import new_id, now
from shotfit.service.views import job_body

log = logging.getLogger(__name__)

MAX_TRIES = 12
TIMEOUT_S = 10.0
router = APIRouter(prefix="/v1", responses=errors(400, 401, 404, 429))


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _hook_body(hook: Webhook) -> schemas.Webhook:
    return schemas.Webhook(id=hook.id, url=hook.url, events=hook.events, created=hook.created)


@router.post("/webhooks", status_code=201, response_model=schemas.WebhookWithSecret, responses=errors(422))
def create_webhook(body: schemas.WebhookCreate, caller: CallerDep, store: StoreDep) -> schemas.WebhookWithSecret:
    """Register an endpoint for these events; the secret is shown once."""
    with store.session() as session:
        hook = Webhook(id=new_id("hook"), studio_id=caller.studio_id, url=body.url, events=list(body.events),
                       secret=new_secret())
        session.add(hook)
        session.flush()
        return schemas.WebhookWithSecret(**_hook_body(hook).model_dump(), secret=hook.secret)


@router.get("/webhooks", response_model=list[schemas.Webhook])
def list_webhooks(caller: CallerDep, store: StoreDep) -> list[schemas.Webhook]:
    with store.session() as session:
        hooks = session.scalars(select(Webhook).where(Webhook.studio_id == caller.studio_id).order_by(Webhook.created))
        return [_hook_body(hook) for hook in hooks]


@router.delete("/webhooks/{hook_id}", status_code=204, response_class=Response)
def delete_webhook(hook_id: str, caller: CallerDep, store: StoreDep) -> Response:
    with store.session() as session:
        hook = session.get(Webhook, hook_id)
        if hook is None or hook.studio_id != caller.studio_id:
            raise not_found("webhook")
        session.query(Delivery).filter(Delivery.webhook_id == hook_id).delete()
        session.delete(hook)
    return Response(status_code=204)


def enqueue(store: Store, job_id: str, event: str) -> None:
    """Queue one delivery of ``event`` (``job.succeeded``...) to each of the job's studio's endpoints that want it."""
    with store.session() as session:
        job = session.get(Job, job_id)
        if job is None:
            return
        payload = {"type": event, "timestamp": now().isoformat(), "data": job_body(job).model_dump(mode="json")}
        for hook in session.scalars(select(Webhook).where(Webhook.studio_id == job.studio_id)):
            if event in hook.events:
                session.add(Delivery(id=new_id("msg"), webhook_id=hook.id, event=event, payload=payload))


def backoff(tries: int) -> float:
    return float(min(3600, 2 ** max(tries - 1, 0)))


def deliver_due(store: Store, client: httpx.Client, limit: int = 20) -> int:
    """Send the deliveries that are due; the number sent successfully. Each is claimed first (its next try
    moved on), so two servers never send one message at once."""
    sent = 0
    with store.session() as session:
        due = session.execute(select(Delivery.id, Delivery.next_try).where(
            Delivery.delivered.is_(None), Delivery.tries < MAX_TRIES, Delivery.next_try <= now())
            .order_by(Delivery.next_try).limit(limit)).all()
    for delivery_id, next_try in due:
        with store.session() as session:
            claimed = session.execute(update(Delivery).where(Delivery.id == delivery_id, Delivery.next_try == next_try)
                                      .values(next_try=now() + timedelta(seconds=TIMEOUT_S * 2))).rowcount
        if claimed == 1:
            sent += _send(store, client, delivery_id)
    return sent


def _send(store: Store, client: httpx.Client, delivery_id: str) -> int:
    with store.session() as session:
        delivery = session.get(Delivery, delivery_id)
        hook = session.get(Webhook, delivery.webhook_id) if delivery is not None else None
    if delivery is None or hook is None:
        return 0
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    stamp = int(time.time())
    headers = {"content-type": "application/json", "webhook-id": delivery.id, "webhook-timestamp": str(stamp),
               "webhook-signature": sign(hook.secret, delivery.id, stamp, body)}
    error: str | None = None
    try:
        answer = client.post(hook.url, content=body, headers=headers, timeout=TIMEOUT_S)
        if not 200 <= answer.status_code < 300:
            error = f"HTTP {answer.status_code}"
    except httpx.HTTPError as err:
        error = f"{type(err).__name__}: {err}"
    with store.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        row.tries += 1
        if error is None:
            row.delivered, row.last_error = now(), None
        else:
            row.last_error, row.next_try = error[:500], now() + timedelta(seconds=backoff(row.tries))
    return int(error is None)


class Sender:
    """A daemon thread that sends due deliveries every ``interval_s`` until stopped."""

    def __init__(self, store: Store, interval_s: float = 1.0) -> None:
        self.store, self.interval_s = store, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="shotfit-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT_S + 5)

    def _loop(self) -> None:
        with httpx.Client(follow_redirects=False) as client:
            while not self._stop.is_set():
                try:
                    deliver_due(self.store, client)
                except Exception:  # the store away for a moment: try again next round
                    log.exception("webhook deliveries failed this round")
                self._stop.wait(self.interval_s)



