"""The FastAPI app: ``create_app(settings)`` opens (and migrates) the store, mounts the routes and the web
page, and, given a job runner, starts the dispatcher that hands queued jobs to workers.

Errors are one line, ``{"detail": "..."}``, request validation included; the OpenAPI document at
``/openapi.json`` says so for every route.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shotfit import __version__
from shotfit.service import routes_jobs, routes_shots, routes_studio, schemas, webhooks
from shotfit.service.deps import CallerDep, errors
from shotfit.service.dispatch import Dispatcher, JobRunner
from shotfit.service.headers import SecurityHeaders
from shotfit.service.retention import Housekeeper
from shotfit.service.settings import ServiceSettings
from shotfit.service.settings_schema import settings_json_schema
from shotfit.service.storage import UploadRefused, check_name
from shotfit.service.store import open_store

WEB = Path(__file__).with_name("web")


def create_app(settings: ServiceSettings, runner: JobRunner | None = None, *, send_webhooks: bool = True,
               started: Callable[[], None] | None = None) -> FastAPI:
    """The service's app.

    Args:
        settings: Where the store and files live, and the limits.
        runner: Runs claimed jobs (Ray workers: :class:`shotfit.service.dispatch.RayRunner`, which needs Ray
            started by the entry point). None: this app only serves the API; jobs wait for a server that runs them.
        send_webhooks: Send due webhook deliveries from this process.
        started: Called once the app has started up (its threads running, the workers warmed, MLflow
            imported), before the first request: where the entry point settles the process (``shotfit serve``
            freezes the garbage collector's start-up objects there).
    """
    store = open_store(settings.db_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sender = webhooks.Sender(store) if send_webhooks else None
        dispatcher = Dispatcher(store, settings, runner) if runner is not None else None
        # always: an operator may give a studio a retention (`shotfit studios set`) while the server runs
        housekeeper = Housekeeper(store, settings)
        for part in (sender, dispatcher, housekeeper):
            if part is not None:
                part.start()
        app.state.dispatcher = dispatcher
        if started is not None:
            started()
        try:
            yield
        finally:
            for part in (housekeeper, dispatcher, sender):
                if part is not None:
                    part.stop()
            store.close()

    app = FastAPI(title="shotfit", version=__version__, lifespan=lifespan,
                  description="Learn an artist's edit from a few fixed keyframes and apply it to every frame of "
                              "a shot, as a service for studios.")
    app.state.store, app.state.settings = store, settings
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(RequestValidationError, _one_line_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.get("/v1/health", response_model=schemas.Health, tags=["service"])
    def health() -> schemas.Health:
        return schemas.Health(version=__version__)

    @app.get("/v1/me", response_model=schemas.Me, tags=["service"], responses=errors(400, 401, 429))
    def me(caller: CallerDep) -> schemas.Me:
        return schemas.Me(studio=caller.studio_name, key_id=caller.key_id)

    app.include_router(routes_studio.router, tags=["service"])
    app.include_router(routes_shots.router, tags=["shots"])
    app.include_router(routes_jobs.router, tags=["jobs"])
    app.include_router(webhooks.router, tags=["webhooks"])
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if WEB.is_dir():
        app.mount("/", StaticFiles(directory=WEB, html=True), name="web")
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's errors as they are, except 405, whose ``Allow`` names every method of the path (Starlette
    names only those of the first route that matched it)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allowed: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
            allowed |= route.methods
    return JSONResponse(status_code=405, content={"detail": f"method {request.method} not allowed here"},
                        headers={"Allow": ", ".join(sorted(allowed))})


async def _one_line_validation(request: Request, exc: Exception) -> JSONResponse:
    """A request that does not match its schema: 422 and one line naming the first field at fault."""
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
    if first.get("type") == "string_pattern_mismatch":  # the schema's regex says little to a person
        return JSONResponse(status_code=422, content={"detail": f"{where}: {_pattern_reason(first.get('input'))}"})
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return JSONResponse(status_code=422, content={"detail": f"{where}: {first.get('msg', 'invalid')}{more}"})


def _pattern_reason(value: Any) -> str:
    try:
        check_name(str(value))
    except UploadRefused as err:
        return str(err)
    return f"{value!r} does not have the allowed form"


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with its 422 body corrected to the one-line form this app sends."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        found = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in found:
            found["HTTPValidationError"] = {"title": "HTTPValidationError", "type": "object", "required": ["detail"],
                                            "properties": {"detail": {"type": "string", "title": "Detail"}}}
            found.pop("ValidationError", None)
        if "JobCreate" in found:  # every settable key, its type and range, from the config's dataclasses
            found["JobCreate"]["properties"]["settings"] = settings_json_schema()
        app.openapi_schema = document
    return app.openapi_schema
