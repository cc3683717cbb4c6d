"""Who is calling: the session cookie (web app) or HTTP Basic with an app password (DAV, API tools).

Cookie-authenticated writes need the session's CSRF token in ``X-CSRF-Token`` (double submit of a
value the page reads from /api/me; a cross-site form cannot set a header).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from starlette.requests import Request

from suite.accounts.revocation import APP_PASSWORD, WEB_SESSION, Credential
from suite.accounts.store import AccountInfo
from suite.gateway.errors import ApiError

COOKIE = "suite_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "PROPFIND"}


@dataclass(frozen=True)
class Caller:
    account: AccountInfo
    via: str  # "session" | "basic"
    csrf_token: str | None = None
    session_id: str | None = None  # the web session's public id (cookie callers)
    app_password_id: int | None = None  # the app password (Basic callers)

    @property
    def credential(self) -> Credential:
        if self.via == "session":
            return Credential(self.account.id, WEB_SESSION, session_id=self.session_id)
        return Credential(self.account.id, APP_PASSWORD, app_password_id=self.app_password_id)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def caller(request: Request, *, basic_scope: str | None = None) -> Caller | None:
    cached = request.scope.get("suite.caller")
    if cached is not None:
        return cached
    ctx = request.app.state.ctx
    result: Caller | None = None
    token = request.cookies.get(COOKIE)
    if token:
        ws = await ctx.accounts.web_session(token)
        if ws is not None:
            result = Caller(ws.account, "session", ws.csrf_token, session_id=ws.session_id)
    if result is None and basic_scope:
        header = request.headers.get("authorization", "")
        if header[:6].lower() == "basic ":
            try:
                user, _, pw = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise ApiError(400, "malformed Authorization header") from None
            res = await ctx.accounts.authenticate(user, pw, scope=basic_scope, ip=client_ip(request))
            ctx.metrics.login(basic_scope, res.ok and res.via_app_password)
            if res.outcome == "locked":
                raise ApiError(
                    429, "too many failed logins; try again later", headers={"Retry-After": str(int(res.retry_after))}
                )
            if res.ok and res.via_app_password:
                result = Caller(res.account, "basic", app_password_id=res.app_password_id)
    if result is not None:
        request.scope["suite.caller"] = result
        request.scope["suite.account"] = result.account.address
    return result


async def require(request: Request, *, basic_scope: str | None = None) -> Caller:
    c = await caller(request, basic_scope=basic_scope)
    if c is None:
        headers = {"WWW-Authenticate": 'Basic realm="Suite"'} if basic_scope else None
        raise ApiError(401, "log in first", headers=headers)
    if c.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not c.csrf_token or not hmac.compare_digest(sent, c.csrf_token):
            raise ApiError(403, "missing or wrong CSRF token (send X-CSRF-Token from /api/me)", code="csrf")
    return c
