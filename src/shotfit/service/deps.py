"""What every route needs: the store and settings of its app, the caller behind the bearer key, the
per-key request rate (counted in the store, shared by every server on it), and the one-line error bodies
the OpenAPI document promises."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from shotfit.service.keys import Caller, identify
from shotfit.service.ratelimit import count_request
from shotfit.service.schemas import ErrorBody
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import Store


# async (and trivial): FastAPI runs a plain ``def`` dependency in its thread pool, a hop each per request
async def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def settings_of(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


def admit(store: Store, token: str, default_rate: int, at: float) -> tuple[Caller | None, int, int | None]:
    """The caller behind ``token``, its requests-a-minute limit, and None when this request is within it, else
    the seconds until its minute ends. One connection and one transaction: the key's row, then the count."""
    with store.engine.connect() as connection:
        caller = identify(connection, token)
        if caller is None:
            return None, 0, None
        limit = caller.requests_per_minute if caller.requests_per_minute is not None else default_rate
        if limit <= 0:
            return caller, limit, None
        with store.write_turn():  # every request writes here: see Store.write_turn
            counted = count_request(connection, store.dialect, caller.key_id, at)
            connection.commit()
    return caller, limit, counted.retry_after(at) if counted.count > limit else None


_bearer = HTTPBearer(auto_error=False, description="an API key from `shotfit keys create`")
# the bearer credentials alone (no store): a route that authorizes inside its own worker-thread call takes this
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def authorize(store: Store, settings: ServiceSettings, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The studio and key behind ``Authorization: Bearer KEY``; 401 without a valid key, 429 over its rate.
    Blocking (the store): in a worker thread."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing API key: send Authorization: Bearer KEY",
                            headers={"WWW-Authenticate": "Bearer"})
    caller, limit, wait = admit(store, credentials.credentials, settings.limits.requests_per_minute, time.time())
    if caller is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    if wait is not None:
        raise HTTPException(429, f"over this key's limit of {limit} requests a minute",
                            headers={"Retry-After": str(wait)})
    return caller


async def caller_of(request: Request, credentials: BearerDep) -> Caller:
    """:func:`authorize` in one trip to the thread pool."""
    return await run_in_threadpool(authorize, request.app.state.store, request.app.state.settings, credentials)


CallerDep = Annotated[Caller, Depends(caller_of)]
StoreDep = Annotated[Store, Depends(store_of)]
SettingsDep = Annotated[ServiceSettings, Depends(settings_of)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these error statuses, each a one-line ``{"detail": ...}``."""
    return {status: {"model": ErrorBody} for status in statuses}


def not_found(what: str) -> HTTPException:
    """Unknown, and another studio's, look the same: 404."""
    return HTTPException(404, f"{what} not found")
