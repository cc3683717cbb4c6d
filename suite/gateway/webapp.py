"""The web app: one single-page app (web/, bundled by esbuild into web/dist) and the page's security headers.

Every app route (``/``, ``/mail/...``, ``/files``, ``/calls``, ``/settings``, ``/admin``) answers the same
``index.html``; the page's router picks the view from the URL, so a reload keeps the place. The bundle's
files carry a content hash in their name and are cached for a year; index.html is revalidated each time.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from suite.gateway.errors import ApiError

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
DIST = WEB_DIR / "dist"

#: The app's own policy: no inline script, nothing from another host, never framed.
APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; frame-src 'self'; worker-src 'self'; "
    "frame-ancestors 'none'; object-src 'none'; base-uri 'none'; form-action 'self'"
)
#: Headers every answer gets (a route that sets its own CSP — a share page, a mail body — keeps it).
COMMON = {
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
}

#: The views of the app; each has a URL (and deeper ones: /mail/<mailboxId>/<emailId>).
VIEWS = ("mail", "files", "calls", "settings", "admin", "m")

HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9]+$")  # esbuild's [name]-[hash].ext

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Suite</title></head>
<body><h1>Suite</h1><p>The web app is not built. Run <code>make web</code> (or <code>make serve</code>).</p>
</body></html>"""


class SecurityHeaders:
    """Pure ASGI middleware: nosniff and no-referrer on every answer, the app's CSP where none is set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for k, v in COMMON.items():
                    if k not in present:
                        headers.append((k, v))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", APP_CSP.encode()))
                if b"x-frame-options" not in present:
                    headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, _send)


async def client_gone(request: Request, exc: Exception) -> Response:
    """The browser went away while sending a body (a tab closed mid-request): nobody reads an answer,
    so log it as 499 (nginx's "client closed request") instead of a server error with a traceback."""
    return Response(status_code=499)


async def index(request: Request) -> Response:
    page = DIST / "index.html"
    if not page.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})


class Assets(StaticFiles):
    """The bundle's files: hashed names cached for a year, the rest revalidated."""

    def file_response(self, full_path, stat_result, scope, status_code=200) -> Response:
        resp = super().file_response(full_path, stat_result, scope, status_code)
        hashed = HASHED.search(Path(full_path).name) is not None
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable" if hashed else "no-cache"
        return resp


class _Assets:
    """ASGI app for /assets that answers 404 as JSON while the bundle is not built."""

    def __init__(self) -> None:
        self._static: Assets | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._static is None:
            if not (DIST / "assets").is_dir():
                raise ApiError(404, "the web app is not built (make web)")
            self._static = Assets(directory=DIST / "assets")
        await self._static(scope, receive, send)


def routes() -> list:
    out: list = [Route("/", index)]
    for view in VIEWS:
        out += [Route(f"/{view}", index), Route(f"/{view}/{{rest:path}}", index)]
    out.append(Mount("/assets", app=_Assets(), name="assets"))
    return out
