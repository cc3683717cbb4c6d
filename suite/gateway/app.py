"""The Starlette application: health, login/logout, /api/me, the web app (webapp.py) and the services' APIs."""

from __future__ import annotations

import json
import time

import structlog
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from suite.accounts.revocation import LiveConnections
from suite.context import Context
from suite.gateway import (
    admin_routes,
    auth,
    autoconfig,
    calls_routes,
    files_web,
    mail_html,
    public_share,
    settings_routes,
    webapp,
)
from suite.gateway.errors import HANDLERS, ApiError
from suite.gateway.files import routes as files_routes
from suite.mail.jmap import http as jmap_http
from suite.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from suite.metrics import Metrics, readiness

log = structlog.get_logger("suite.http")
MAX_JSON_BODY = 64 * 1024


class AccessLog:
    """Pure ASGI middleware: one log line per request with account, status and duration, and the
    request's latency in the ``suite_http_request_duration_seconds`` histogram by route template."""

    def __init__(self, app, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def _send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            client = scope.get("client")
            elapsed = time.perf_counter() - start
            if self.metrics is not None:
                # the template ("/api/files/content/{path:path}"), never the path: bounded label values
                route = getattr(scope.get("route"), "path", None) or "<unmatched>"
                self.metrics.http_latency.labels(scope["method"], route, str(status)).observe(elapsed)
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                account=scope.get("suite.account"),
                ip=client[0] if client else None,
                ms=round(elapsed * 1000, 1),
            )


async def read_json(request: Request) -> dict:
    """Parse a JSON object body, with the size checked before reading it all."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, "send the body as application/json")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_JSON_BODY):
        raise ApiError(413, f"JSON bodies are limited to {MAX_JSON_BODY} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise ApiError(413, f"JSON bodies are limited to {MAX_JSON_BODY} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def _me(account, csrf: str | None) -> dict:
    return {
        "address": account.address,
        "display_name": account.display_name,
        "is_admin": account.is_admin,
        "quota_bytes": account.quota_bytes,
        "used_bytes": account.used_bytes,
        "csrf_token": csrf,
    }


async def healthz(request: Request) -> JSONResponse:
    ctx: Context = request.app.state.ctx
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        db = "ok"
    except Exception:
        db = "down"
    ok = db == "ok"
    return JSONResponse({"status": "ok" if ok else "degraded", "database": db}, status_code=200 if ok else 503)


async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: database, blob store and event bus reachable (503 naming what is down)."""
    checks = await readiness(request.app.state.ctx)
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "down", **checks}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    await ctx.metrics.refresh(ctx)
    return Response(ctx.metrics.render(), media_type=METRICS_CONTENT_TYPE)


def _same_origin(request: Request) -> bool:
    """Login is a cookie-setting write: refuse cross-site posts (login CSRF)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host


async def login(request: Request) -> JSONResponse:
    if not _same_origin(request):
        raise ApiError(403, "cross-site login refused", code="csrf")
    data = await read_json(request)
    address, password = data.get("address"), data.get("password")
    if not isinstance(address, str) or not isinstance(password, str) or not address or not password:
        raise ApiError(400, 'send {"address": ..., "password": ...}')
    if len(password) > 1024 or len(address) > 320:
        raise ApiError(400, "address or password too long")
    ctx: Context = request.app.state.ctx
    res = await ctx.accounts.authenticate(address, password, scope="web", ip=auth.client_ip(request))
    if res.outcome == "locked":
        raise ApiError(
            429, "too many failed logins; try again later", headers={"Retry-After": str(int(res.retry_after))}
        )
    ctx.metrics.login("web", res.ok)
    if not res.ok:
        log.info("login.failed", address=address, ip=auth.client_ip(request), outcome=res.outcome)
        raise ApiError(401, "wrong address or password")
    assert res.account is not None  # res.ok
    sec = ctx.accounts.security
    methods = await sec.methods(res.account.id)
    if methods:
        # second step (settings_routes.login_second_factor): no session until the code is right
        challenge = await sec.new_challenge(res.account.id)
        return JSONResponse({"second_factor": methods, "challenge": challenge})
    await sec.audit(
        "login", actor=res.account.address, account_id=res.account.id, detail="password", ip=auth.client_ip(request)
    )
    return await start_web_session(request, res.account, _me)


async def start_web_session(request: Request, account, me) -> JSONResponse:
    """Set the session cookie of a completed sign-in and answer with /api/me's document."""
    ctx: Context = request.app.state.ctx
    token, csrf = await ctx.accounts.create_web_session(
        account.id, ip=auth.client_ip(request), user_agent=request.headers.get("user-agent", "")
    )
    request.scope["suite.account"] = account.address
    resp = JSONResponse(me(account, csrf))
    resp.set_cookie(
        auth.COOKIE,
        token,
        max_age=ctx.settings.session_lifetime_seconds,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return resp


async def logout(request: Request) -> JSONResponse:
    await auth.require(request)
    token = request.cookies.get(auth.COOKIE)
    if token:
        await request.app.state.ctx.accounts.end_web_session(token)
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="lax")
    return resp


async def me(request: Request) -> JSONResponse:
    c = await auth.require(request)
    # Fresh numbers (quota use changes while the session lives).
    acct = await request.app.state.ctx.accounts.get_by_id(c.account.id) or c.account
    return JSONResponse(_me(acct, c.csrf_token))


def create_app(ctx: Context) -> Starlette:
    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]),
        Route("/api/me", me),
        *calls_routes.ROUTES,
        *settings_routes.ROUTES,
        *admin_routes.ROUTES,
        *autoconfig.ROUTES,
    ]
    routes += files_routes.routes(ctx)
    # Mail filters (Sieve scripts, the rule builder): suite/gateway/sieve_routes.py
    from suite.gateway import sieve_routes

    routes += sieve_routes.ROUTES
    # Meetings (rooms behind /m/<token> links, the SFU): suite/gateway/meeting_routes.py
    from suite.gateway import meeting_routes

    routes += meeting_routes.ROUTES
    routes += jmap_http.routes()
    # --- web app: the SPA's pages and bundle (webapp.py), sanitised mail bodies for its reader ---
    routes += webapp.routes()
    routes += mail_html.ROUTES
    # --- end web app ---
    # --- files in the web app: the public share page (/p/<token>) and its API, folder ZIPs, search ---
    routes += public_share.routes()
    routes += files_web.routes()
    # --- end files in the web app ---
    # The web app's security headers (CSP, nosniff, no-referrer) on every answer; see webapp.py.
    middleware = [Middleware(webapp.SecurityHeaders)]
    handlers = {**HANDLERS, ClientDisconnect: webapp.client_gone}  # a closed tab is not a server error
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=middleware)
    app.state.ctx = ctx
    # live streams (calls WebSocket, EventSource) by credential: closed when it is revoked
    app.state.live = LiveConnections(ctx.bus, ctx.accounts.security)
    files_routes.install(app, ctx)
    jmap_http.install(app, ctx)
    mail_html.install_source(app, mail_html.JmapRawEmails(app.state.jmap.store))  # web app: reader's HTML
    return app


def wrap(app) -> AccessLog:
    return AccessLog(app, app.state.ctx.metrics)
