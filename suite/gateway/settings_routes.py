"""``/api/settings/...``: the signed-in user's own security settings (issue 16 item 1), and the
second step of a web login (``/api/login/second-factor``).

Every route needs the cookie session (never HTTP Basic: an app password must not manage the
account); writes need the CSRF token as every cookie-authenticated write. Steps that check a
secret (current password, TOTP code, recovery code) count their failures with the login failures,
per address and per IP, and are refused past the same limits.
"""

from __future__ import annotations

import json

import segno
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from suite.accounts.security import SecurityError
from suite.accounts.store import AccountError, NotFound
from suite.gateway import auth, export_routes
from suite.gateway.errors import ApiError

MAX_FIELD = 1024


def _ctx(request: Request):
    return request.app.state.ctx


async def _json(request: Request) -> dict:
    from suite.gateway.app import read_json

    return await read_json(request)


def _str(data: dict, key: str, *, max_len: int = MAX_FIELD) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ApiError(400, f'send "{key}" as a non-empty string of at most {max_len} characters')
    return value


async def _session(request: Request) -> auth.Caller:
    c = await auth.require(request)
    if c.via != "session":
        raise ApiError(403, "settings need a web session, not an app password", code="forbidden")
    return c


async def _limited(request: Request, address: str) -> None:
    ok, retry = await _ctx(request).accounts.login_allowed(address, auth.client_ip(request))
    if not ok:
        raise ApiError(429, "too many failed attempts; try again later", headers={"Retry-After": str(int(retry))})


async def _check_password(request: Request, c: auth.Caller, password: str) -> None:
    accounts = _ctx(request).accounts
    await _limited(request, c.account.address)
    if not await accounts.check_password(c.account.id, password):
        await accounts.record_login_failure(c.account.address, auth.client_ip(request))
        raise ApiError(403, "the current password is wrong", code="wrong-password")


async def _audit(request: Request, c: auth.Caller, action: str, detail: str = "") -> None:
    await _ctx(request).accounts.security.audit(
        action, actor=c.account.address, account_id=c.account.id, detail=detail, ip=auth.client_ip(request)
    )


def qr_svg(uri: str) -> str:
    """An inline SVG QR code, drawn here (segno, pure Python): a secret never leaves for a QR service."""
    return segno.make(uri, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff")


# ---------------------------------------------------------------------------------------- export
EXPORT_PATH = "/api/settings/export"


async def export_start(request: Request) -> JSONResponse:
    """ "Export my data": the URL (with a session-bound ticket) the browser downloads the zip from."""
    c = await _session(request)
    answer = export_routes.ticket_url(request, c, c.account.address, EXPORT_PATH + "/download")
    await _audit(request, c, "export.started", c.account.address)
    return JSONResponse(answer)


async def export_download(request: Request) -> Response:
    c = await _session(request)
    return await export_routes.download(request, c, c.account.address)


# ---------------------------------------------------------------------------------------- overview
async def overview(request: Request) -> JSONResponse:
    c = await _session(request)
    sec = _ctx(request).accounts.security
    return JSONResponse(
        {
            "address": c.account.address,
            "totp": await sec.totp_enabled(c.account.id),
            "passkeys": len(await sec.passkeys(c.account.id)),
            "recovery_codes_left": await sec.recovery_codes_left(c.account.id),
            "mail_clients_need_app_passwords": await sec.has_second_factor(c.account.id),
        }
    )


# ---------------------------------------------------------------------------------------- mail
async def mail_settings(request: Request) -> JSONResponse:
    """GET: the mail options; POST ``{"big_attachment_links": bool}``: attachments over the threshold
    of mail sent through SMTP submission become share links (issue 14 §3; the web app always does)."""
    c = await _session(request)
    ctx = _ctx(request)
    if request.method == "POST":
        data = await _json(request)
        on = data.get("big_attachment_links")
        if not isinstance(on, bool):
            raise ApiError(400, 'send "big_attachment_links" as true or false')
        await ctx.accounts.set_big_attachment_links(c.account.address, on)
        await _audit(request, c, "settings.big_attachment_links", "on" if on else "off")
    st = ctx.settings
    return JSONResponse(
        {
            "big_attachment_links": await ctx.accounts.big_attachment_links(c.account.id),
            "big_attachment_bytes": st.big_attachment_bytes,
            "big_attachment_link_days": st.big_attachment_link_days,
        }
    )


# ---------------------------------------------------------------------------------------- password
async def change_password(request: Request) -> JSONResponse:
    c = await _session(request)
    data = await _json(request)
    current, new = _str(data, "current"), _str(data, "new")
    await _check_password(request, c, current)
    try:
        await _ctx(request).accounts.set_password(c.account.address, new)
    except AccountError as exc:
        raise ApiError(400, str(exc), code="weak-password") from None
    await _audit(request, c, "password.changed")
    # every web session ended with the old password, this one too: sign in again
    resp = JSONResponse({"ok": True, "signed_out": True})
    resp.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="lax")
    return resp


# ---------------------------------------------------------------------------------------- TOTP
async def totp_begin(request: Request) -> JSONResponse:
    c = await _session(request)
    try:
        e = await _ctx(request).accounts.security.totp_begin(c.account.id, c.account.address)
    except SecurityError as exc:
        raise ApiError(409, str(exc), code="totp-on") from None
    return JSONResponse({"secret": e.secret, "uri": e.uri, "qr_svg": qr_svg(e.uri)})


async def totp_confirm(request: Request) -> JSONResponse:
    c = await _session(request)
    code = _str(await _json(request), "code", max_len=32)
    await _limited(request, c.account.address)
    try:
        codes = await _ctx(request).accounts.security.totp_confirm(c.account.id, code)
    except SecurityError as exc:
        await _ctx(request).accounts.record_login_failure(c.account.address, auth.client_ip(request))
        raise ApiError(400, str(exc), code="bad-code") from None
    await _audit(request, c, "2fa.totp.enabled")
    return JSONResponse({"recovery_codes": codes})


async def totp_disable(request: Request) -> JSONResponse:
    c = await _session(request)
    await _check_password(request, c, _str(await _json(request), "password"))
    await _ctx(request).accounts.security.totp_disable(c.account.id)
    await _audit(request, c, "2fa.totp.disabled")
    return JSONResponse({"ok": True})


async def recovery_codes(request: Request) -> JSONResponse:
    c = await _session(request)
    await _check_password(request, c, _str(await _json(request), "password"))
    try:
        codes = await _ctx(request).accounts.security.regenerate_recovery_codes(c.account.id)
    except SecurityError as exc:
        raise ApiError(409, str(exc), code="totp-off") from None
    await _audit(request, c, "2fa.recovery_codes.renewed")
    return JSONResponse({"recovery_codes": codes})


# ---------------------------------------------------------------------------------------- passkeys
def relying_party(request: Request) -> tuple[str, str]:
    """(RP ID, origin) of WebAuthn: the configured public URL, else the host the page was loaded
    from (the browser only signs for the origin it is on, so a forged Host header gains nothing)."""
    from urllib.parse import urlsplit

    public = _ctx(request).settings.public_url
    if public:
        u = urlsplit(public)
        return u.hostname or "localhost", f"{u.scheme}://{u.netloc}"
    host = request.headers.get("host", "localhost")
    return request.url.hostname or "localhost", f"{request.url.scheme}://{host}"


def _credential(data: dict) -> dict:
    cred = data.get("credential")
    if not isinstance(cred, dict):
        raise ApiError(400, 'send "credential": the PublicKeyCredential as JSON')
    return cred


async def passkeys(request: Request) -> JSONResponse:
    c = await _session(request)
    sec = _ctx(request).accounts.security
    if request.method == "GET":
        rows = await sec.passkeys(c.account.id)
        return JSONResponse(
            {
                "passkeys": [
                    {"id": p.id, "label": p.label, "created_at": p.created_at, "last_used_at": p.last_used_at}
                    for p in rows
                ]
            }
        )
    data = await _json(request)
    rp_id, origin = relying_party(request)
    try:
        p = await sec.passkey_register(
            c.account.id,
            _str(data, "ticket", max_len=128),
            _credential(data),
            _str(data, "label", max_len=100),
            rp_id=rp_id,
            origin=origin,
        )
    except SecurityError as exc:
        raise ApiError(400, str(exc), code="passkey") from None
    await _audit(request, c, "2fa.passkey.added", f"{p.id} {p.label}")
    return JSONResponse({"id": p.id, "label": p.label, "created_at": p.created_at}, status_code=201)


async def passkey_options(request: Request) -> JSONResponse:
    c = await _session(request)
    rp_id, _ = relying_party(request)
    try:
        ticket, options = await _ctx(request).accounts.security.passkey_register_options(
            c.account.id, c.account.address, rp_id
        )
    except SecurityError as exc:
        raise ApiError(409, str(exc), code="passkey") from None
    return JSONResponse({"ticket": ticket, "options": json.loads(options)})


async def remove_passkey(request: Request) -> JSONResponse:
    c = await _session(request)
    try:
        pid = int(request.path_params["id"])
    except ValueError:
        raise ApiError(404, "no such passkey") from None
    if not await _ctx(request).accounts.security.remove_passkey(c.account.id, pid):
        raise ApiError(404, "no such passkey")
    await _audit(request, c, "2fa.passkey.removed", str(pid))
    return JSONResponse({"ok": True})


# ---------------------------------------------------------------------------------------- app passwords
def _app_json(a) -> dict:
    return {
        "id": a.id,
        "label": a.label,
        "scopes": list(a.scopes),
        "created_at": a.created_at,
        "last_used_at": a.last_used_at,
    }


async def app_passwords(request: Request) -> JSONResponse:
    c = await _session(request)
    accounts = _ctx(request).accounts
    if request.method == "GET":
        return JSONResponse(
            {"app_passwords": [_app_json(a) for a in await accounts.list_app_passwords(c.account.address)]}
        )
    data = await _json(request)
    label = _str(data, "label", max_len=100)
    scopes = data.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
        raise ApiError(400, 'send "scopes" as a list, e.g. ["imap", "smtp"]')
    try:
        info, secret = await accounts.add_app_password(c.account.address, label, scopes)
    except AccountError as exc:
        raise ApiError(400, str(exc)) from None
    await _audit(request, c, "app_password.created", f"{info.id} {info.label}")
    # the secret is in this answer only; the store keeps its hash
    return JSONResponse({**_app_json(info), "secret": secret}, status_code=201)


async def revoke_app_password(request: Request) -> JSONResponse:
    c = await _session(request)
    try:
        app_id = int(request.path_params["id"])
        await _ctx(request).accounts.revoke_app_password(c.account.address, app_id)
    except (ValueError, NotFound):
        raise ApiError(404, "no such app password") from None
    await _audit(request, c, "app_password.revoked", str(app_id))
    return JSONResponse({"ok": True})


# ---------------------------------------------------------------------------------------- sessions
async def sessions(request: Request) -> JSONResponse:
    c = await _session(request)
    accounts = _ctx(request).accounts
    web = [
        {
            "id": w.session_id,
            "kind": "web",
            "client": w.user_agent,
            "ip": w.ip,
            "since": w.created_at,
            "current": w.session_id == c.session_id,
        }
        for w in await accounts.list_web_sessions(c.account.id)
    ]
    conns = [
        {
            "id": x.id,
            "kind": x.service,
            "client": x.client,
            "ip": x.ip,
            "since": x.since,
            "credential": x.credential,
            "app_password_id": x.app_password_id,
        }
        for x in await accounts.security.connections(c.account.id)
    ]
    return JSONResponse({"web": web, "connections": conns})


async def end_session(request: Request) -> JSONResponse:
    c = await _session(request)
    try:
        await _ctx(request).accounts.end_web_session_by_id(c.account.id, request.path_params["id"])
    except NotFound:
        raise ApiError(404, "no such session") from None
    await _audit(request, c, "session.ended", request.path_params["id"])
    return JSONResponse({"ok": True})


async def end_connection(request: Request) -> JSONResponse:
    c = await _session(request)
    try:
        await _ctx(request).accounts.end_connection(c.account.id, request.path_params["id"])
    except NotFound:
        raise ApiError(404, "no such connection") from None
    await _audit(request, c, "connection.ended", request.path_params["id"])
    return JSONResponse({"ok": True})


async def sign_out_everywhere(request: Request) -> JSONResponse:
    c = await _session(request)
    await _ctx(request).accounts.sign_out_everywhere(c.account.id)
    await _audit(request, c, "session.signed_out_everywhere")
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(auth.COOKIE, path="/", httponly=True, samesite="lax")
    return resp


async def audit_log(request: Request) -> JSONResponse:
    c = await _session(request)
    rows = await _ctx(request).accounts.security.audit_log(c.account.id)
    return JSONResponse(
        {"entries": [{"at": r.at, "actor": r.actor, "action": r.action, "detail": r.detail, "ip": r.ip} for r in rows]}
    )


# ---------------------------------------------------------------------------------------- login, step 2
async def login_second_factor(request: Request) -> JSONResponse:
    from suite.gateway.app import _me, _same_origin, start_web_session

    if not _same_origin(request):
        raise ApiError(403, "cross-site login refused", code="csrf")
    data = await _json(request)
    challenge = _str(data, "challenge", max_len=128)
    passkey = data.get("passkey")
    code = "" if isinstance(passkey, dict) else _str(data, "code", max_len=64)
    accounts = _ctx(request).accounts
    account_id = await accounts.security.challenge_account(challenge)
    acct = await accounts.get_by_id(account_id) if account_id is not None else None
    if acct is None or acct.disabled:
        raise ApiError(401, "the sign-in expired or had too many attempts; start again", code="challenge")
    ip = auth.client_ip(request)
    await _limited(request, acct.address)
    if isinstance(passkey, dict):
        rp_id, origin = relying_party(request)
        ok = await accounts.security.verify_passkey(challenge, acct.id, passkey, rp_id=rp_id, origin=origin)
        used = "passkey" if ok else None
    else:
        used = await accounts.security.verify_second_factor(acct.id, code)
    if used is None:
        await accounts.record_login_failure(acct.address, ip)
        await accounts.security.audit("login.second_factor_failed", actor=acct.address, account_id=acct.id, ip=ip)
        raise ApiError(401, "wrong or already used code", code="bad-code")
    await accounts.security.end_challenge(challenge)
    await accounts.security.audit("login", actor=acct.address, account_id=acct.id, detail=f"password+{used}", ip=ip)
    return await start_web_session(request, acct, _me)


async def login_passkey_options(request: Request) -> JSONResponse:
    """The WebAuthn request options for the second step of a login (after the password)."""
    from suite.gateway.app import _same_origin

    if not _same_origin(request):
        raise ApiError(403, "cross-site login refused", code="csrf")
    challenge = _str(await _json(request), "challenge", max_len=128)
    rp_id, _ = relying_party(request)
    options = await _ctx(request).accounts.security.passkey_login_options(challenge, rp_id)
    if options is None:
        raise ApiError(401, "the sign-in expired or has no passkey; start again", code="challenge")
    return JSONResponse({"options": json.loads(options)})


ROUTES = [
    Route("/api/login/second-factor", login_second_factor, methods=["POST"]),
    Route("/api/login/passkey-options", login_passkey_options, methods=["POST"]),
    Route("/api/settings/passkeys", passkeys, methods=["GET", "POST"]),
    Route("/api/settings/passkeys/options", passkey_options, methods=["POST"]),
    Route("/api/settings/passkeys/{id}", remove_passkey, methods=["DELETE"]),
    Route("/api/settings", overview),
    Route("/api/settings/password", change_password, methods=["POST"]),
    Route("/api/settings/mail", mail_settings, methods=["GET", "POST"]),
    Route("/api/settings/totp", totp_begin, methods=["POST"]),
    Route("/api/settings/totp/confirm", totp_confirm, methods=["POST"]),
    Route("/api/settings/totp/disable", totp_disable, methods=["POST"]),
    Route("/api/settings/recovery-codes", recovery_codes, methods=["POST"]),
    Route("/api/settings/app-passwords", app_passwords, methods=["GET", "POST"]),
    Route("/api/settings/app-passwords/{id}", revoke_app_password, methods=["DELETE"]),
    Route("/api/settings/sessions", sessions),
    Route("/api/settings/sessions/{id}", end_session, methods=["DELETE"]),
    Route("/api/settings/connections/{id}", end_connection, methods=["DELETE"]),
    Route("/api/settings/sign-out-everywhere", sign_out_everywhere, methods=["POST"]),
    Route("/api/settings/audit", audit_log),
    Route(EXPORT_PATH, export_start, methods=["POST"]),
    Route(EXPORT_PATH + "/download", export_download),
]
