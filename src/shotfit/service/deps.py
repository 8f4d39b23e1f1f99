"""What every route needs: the store and settings of its app, the caller behind the bearer key, the
per-key request rate, and the one-line error bodies the OpenAPI document promises."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shotfit.service.keys import Caller, authenticate
from shotfit.service.schemas import ErrorBody
from shotfit.service.settings import ServiceSettings
from shotfit.service.store import Store


@dataclass
class RateWindow:
    """Requests per key in the current minute (this process's count; each server limits its own share)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    windows: dict[str, tuple[float, int]] = field(default_factory=dict)

    def admit(self, key_id: str, limit: int, clock: Callable[[], float] = time.monotonic) -> float | None:
        """None when the request may go on; else the seconds until the key's minute starts again."""
        if limit <= 0:
            return None
        now = clock()
        with self.lock:
            start, count = self.windows.get(key_id, (now, 0))
            if now - start >= 60.0:
                start, count = now, 0
            if count >= limit:
                return 60.0 - (now - start)
            self.windows[key_id] = (start, count + 1)
        return None


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def settings_of(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


_bearer = HTTPBearer(auto_error=False, description="an API key from `shotfit keys create`")


def caller_of(request: Request,
              credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Caller:
    """The studio and key behind ``Authorization: Bearer KEY``; 401 without a valid key, 429 over its rate."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing API key: send Authorization: Bearer KEY",
                            headers={"WWW-Authenticate": "Bearer"})
    caller = authenticate(store_of(request), credentials.credentials)
    if caller is None:
        raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
    limit = caller.requests_per_minute
    if limit is None:
        limit = settings_of(request).limits.requests_per_minute
    wait = request.app.state.rates.admit(caller.key_id, limit)
    if wait is not None:
        raise HTTPException(429, f"over this key's limit of {limit} requests a minute",
                            headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return caller


CallerDep = Annotated[Caller, Depends(caller_of)]
StoreDep = Annotated[Store, Depends(store_of)]
SettingsDep = Annotated[ServiceSettings, Depends(settings_of)]


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for these error statuses, each a one-line ``{"detail": ...}``."""
    return {status: {"model": ErrorBody} for status in statuses}


def not_found(what: str) -> HTTPException:
    """Unknown, and another studio's, look the same: 404."""
    return HTTPException(404, f"{what} not found")
