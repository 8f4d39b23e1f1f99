"""Security headers on every response: the web page may run only its own files, nothing may frame it, and
no browser second-guesses a content type or leaks a URL to another site.

A plain ASGI middleware (not Starlette's ``BaseHTTPMiddleware``): it touches only the response's first
message, so streamed results and event streams pass through untouched, and it costs microseconds.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The page is static files from this server: plain JavaScript modules and one stylesheet, no inline script,
# style or handler. Frames, previews and downloads are fetched with the key and shown from blob: URLs.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from jsDelivr and start them with an inline script
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
               "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
               "https://cdn.redoc.ly; worker-src blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")

_COMMON = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"), (b"cross-origin-opener-policy", b"same-origin")]
_PAGE = [*_COMMON, (b"content-security-policy", PAGE_POLICY.encode())]
_DOCS = [*_COMMON, (b"content-security-policy", DOCS_POLICY.encode())]
_HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders:
    """Adds the headers above to every HTTP response (HSTS too when the request came over HTTPS, as uvicorn
    reads it from TLS or a proxy's ``X-Forwarded-Proto``); a header a route set itself is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _DOCS if scope["path"] in DOCS_PATHS else _PAGE
        if scope.get("scheme") == "https":
            extra = [*extra, _HSTS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in extra if item[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
