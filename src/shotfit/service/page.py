"""The web page at ``/``: static files shipped in the package (``web/``), no build step, nothing fetched
from elsewhere at run time.

The page keeps the studio's key in the tab's session storage, so a script injected into it could read
the key: every page response carries a Content-Security-Policy that lets only this server's own files
run and be fetched (images also from ``blob:`` URLs, which is how the page shows frames it fetched
with the key).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

WEB = Path(__file__).with_name("web")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # a new release's page and scripts are fetched again, never mixed with a cached older one
    "Cache-Control": "no-cache",
}


class _PageFiles(StaticFiles):
    """StaticFiles with the page's security headers on every response."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]
            await send(message)

        await super().__call__(scope, receive, with_headers)


def mount_page(app: FastAPI) -> None:
    """Serve ``web/index.html`` at ``/`` and its scripts and styles under ``/web/`` (not in the OpenAPI
    document: they are not part of the API)."""
    app.mount("/web", _PageFiles(directory=WEB), name="web")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html", media_type="text/html", headers=SECURITY_HEADERS)
