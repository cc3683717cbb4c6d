"""``/api/admin/...``: administration for admin accounts (issue 16 item 4).

Every route answers 403 to a signed-in account that is not an admin (and 401 to nobody signed in);
only the cookie session counts, never an app password. Admin actions are written to the audit log.
An admin cannot lock themselves out: no disabling, removing or demoting one's own account here.
"""

from __future__ import annotations

import time
from urllib.parse import quote

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from suite.accounts.store import AccountError, Exists, NotFound, normalize_domain
from suite.gateway import auth, export_routes
from suite.gateway.errors import ApiError
from suite.mail.queue import dnsrecords
from suite.mail.queue import queue as mailqueue
from suite.mail.queue.mx import make_resolver
from suite.mail.smtp import translog


def _ctx(request: Request):
    return request.app.state.ctx


async def _admin(request: Request) -> auth.Caller:
    c = await auth.require(request)
    if c.via != "session" or not c.account.is_admin:
        raise ApiError(403, "administrators only", code="forbidden")
    return c


async def _json(request: Request) -> dict:
    from suite.gateway.app import read_json

    return await read_json(request)


async def _audit(request: Request, c: auth.Caller, action: str, detail: str, account_id: int | None = None) -> None:
    await _ctx(request).accounts.security.audit(
        action, actor=c.account.address, account_id=account_id, detail=detail, ip=auth.client_ip(request)
    )


def _refuse(exc: AccountError) -> ApiError:
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, Exists):
        return ApiError(409, str(exc), code="exists")
    return ApiError(400, str(exc))


def _user_json(a) -> dict:
    return {
        "address": a.address,
        "display_name": a.display_name,
        "quota_bytes": a.quota_bytes,
        "used_bytes": a.used_bytes,
        "is_admin": a.is_admin,
        "disabled": a.disabled,
        "big_attachment_links": a.big_attachment_links,
    }


# ---------------------------------------------------------------------------------------- domains
def _record_json(r: dnsrecords.DnsRecord) -> dict:
    return {"name": r.name, "type": r.rdtype, "value": r.value, "comment": r.comment, "zone_line": r.zone_line()}


async def domains(request: Request) -> JSONResponse:
    c = await _admin(request)
    accounts = _ctx(request).accounts
    if request.method == "GET":
        return JSONResponse(
            {"domains": [{"name": d.name, "accounts": d.accounts} for d in await accounts.list_domains()]}
        )
    data = await _json(request)
    name = data.get("name")
    if not isinstance(name, str):
        raise ApiError(400, 'send {"name": "example.org"}')
    try:
        d = await accounts.add_domain(name)
    except AccountError as exc:
        raise _refuse(exc) from None
    await _audit(request, c, "admin.domain.added", d.name)
    records = await dnsrecords.records(_ctx(request), d.name)
    return JSONResponse({"name": d.name, "records": [_record_json(r) for r in records]}, status_code=201)


async def domain(request: Request) -> JSONResponse:
    c = await _admin(request)
    name = request.path_params["name"]
    try:
        name = normalize_domain(name)
        if not await _ctx(request).accounts.is_local_domain(name):
            raise NotFound(f"no domain {name}")
        if request.method == "DELETE":
            await _ctx(request).accounts.remove_domain(name)
            await _audit(request, c, "admin.domain.removed", name)
            return JSONResponse({"ok": True})
    except AccountError as exc:
        raise _refuse(exc) from None
    records = await dnsrecords.records(_ctx(request), name)
    return JSONResponse({"name": name, "records": [_record_json(r) for r in records]})


def _normal(rdtype: str, value: str) -> str:
    v = " ".join(value.split()).lower()
    return v if rdtype == "TXT" else v.rstrip(".")


async def check_domain(request: Request) -> JSONResponse:
    """Resolve every record the domain should publish through the configured resolver and say
    which are there ("ok"), missing, or different (with what was found)."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    await _admin(request)
    name = request.path_params["name"]
    try:
        name = normalize_domain(name)
    except AccountError as exc:
        raise _refuse(exc) from None
    if not await _ctx(request).accounts.is_local_domain(name):
        raise ApiError(404, f"no domain {name}")
    resolver: dns.asyncresolver.Resolver = make_resolver(_ctx(request).settings)
    out = []
    for r in await dnsrecords.records(_ctx(request), name):
        found: list[str] = []
        status = "missing"
        try:
            answer = await resolver.resolve(r.name, r.rdtype, raise_on_no_answer=False)
            for rd in answer.rrset or ():
                if r.rdtype == "TXT":
                    found.append(b"".join(rd.strings).decode("utf-8", "replace"))
                else:
                    found.append(rd.to_text())
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            pass
        except dns.exception.DNSException as exc:
            status = f"error: {type(exc).__name__}"
        if found:
            want = _normal(r.rdtype, r.value)
            status = "ok" if any(_normal(r.rdtype, f) == want for f in found) else "different"
        out.append({**_record_json(r), "status": status, "found": found})
    return JSONResponse({"name": name, "records": out, "ok": all(x["status"] == "ok" for x in out)})


# ---------------------------------------------------------------------------------------- users
async def users(request: Request) -> JSONResponse:
    c = await _admin(request)
    accounts = _ctx(request).accounts
    if request.method == "GET":
        return JSONResponse({"users": [_user_json(a) for a in await accounts.list_accounts()]})
    data = await _json(request)
    address, password = data.get("address"), data.get("password")
    quota = data.get("quota_bytes")
    if not isinstance(address, str) or not isinstance(password, str) or len(password) > 1024:
        raise ApiError(400, 'send {"address": ..., "password": ...}')
    if quota is not None and (not isinstance(quota, int) or isinstance(quota, bool)):
        raise ApiError(400, "quota_bytes must be an integer")
    try:
        a = await accounts.add_account(
            address,
            password,
            display_name=str(data.get("display_name") or "")[:200],
            quota_bytes=quota,
            is_admin=data.get("is_admin") is True,
        )
    except AccountError as exc:
        raise _refuse(exc) from None
    await _audit(request, c, "admin.user.created", a.address, a.id)
    return JSONResponse(_user_json(a), status_code=201)


async def user(request: Request) -> JSONResponse:
    c = await _admin(request)
    accounts = _ctx(request).accounts
    address = request.path_params["address"]
    try:
        a = await accounts.require(address)
        self_ = a.id == c.account.id
        if request.method == "GET":
            return JSONResponse(_user_json(a))
        if request.method == "DELETE":
            if self_:
                raise ApiError(409, "you cannot remove your own account", code="self")
            await accounts.remove_account(a.address)
            await _audit(request, c, "admin.user.removed", a.address, a.id)
            return JSONResponse({"ok": True})
        data = await _json(request)
        if "disabled" in data:
            if not isinstance(data["disabled"], bool) or (self_ and data["disabled"]):
                raise ApiError(400, "disabled must be true or false (and not for yourself)")
            await accounts.set_disabled(a.address, data["disabled"])
            await _audit(
                request, c, "admin.user.disabled" if data["disabled"] else "admin.user.enabled", a.address, a.id
            )
        if "is_admin" in data:
            if not isinstance(data["is_admin"], bool) or (self_ and not data["is_admin"]):
                raise ApiError(400, "is_admin must be true or false (and you cannot demote yourself)")
            await accounts.set_admin(a.address, data["is_admin"])
            await _audit(request, c, f"admin.user.admin={str(data['is_admin']).lower()}", a.address, a.id)
        if "quota_bytes" in data:
            q = data["quota_bytes"]
            if not isinstance(q, int) or isinstance(q, bool):
                raise ApiError(400, "quota_bytes must be an integer")
            await accounts.set_quota(a.address, q)
            await _audit(request, c, "admin.user.quota", f"{a.address} {q}", a.id)
        if "big_attachment_links" in data:
            on = data["big_attachment_links"]
            if not isinstance(on, bool):
                raise ApiError(400, "big_attachment_links must be true or false")
            await accounts.set_big_attachment_links(a.address, on)
            await _audit(request, c, "admin.user.big_attachment_links", f"{a.address} {'on' if on else 'off'}", a.id)
        if "password" in data:
            pw = data["password"]
            if not isinstance(pw, str) or len(pw) > 1024:
                raise ApiError(400, "password must be a string")
            await accounts.set_password(a.address, pw)
            await _audit(request, c, "admin.user.password_reset", a.address, a.id)
        return JSONResponse(_user_json(await accounts.require(a.address)))
    except AccountError as exc:
        raise _refuse(exc) from None


# ---------------------------------------------------------------------------------------- aliases
async def aliases(request: Request) -> JSONResponse:
    c = await _admin(request)
    accounts = _ctx(request).accounts
    if request.method == "GET":
        rows = await accounts.list_aliases()
        return JSONResponse(
            {
                "aliases": [
                    {"alias": x.address, "target": x.target, "catch_all": x.address.startswith("*@")} for x in rows
                ]
            }
        )
    data = await _json(request)
    alias, target = data.get("alias"), data.get("target")
    if not isinstance(alias, str) or not isinstance(target, str):
        raise ApiError(400, 'send {"alias": "sales@example.org" or "*@example.org", "target": "user@example.org"}')
    try:
        x = await accounts.add_alias(alias, target)
    except AccountError as exc:
        raise _refuse(exc) from None
    await _audit(request, c, "admin.alias.added", f"{x.address} -> {x.target}")
    return JSONResponse({"alias": x.address, "target": x.target}, status_code=201)


async def alias(request: Request) -> JSONResponse:
    c = await _admin(request)
    try:
        await _ctx(request).accounts.remove_alias(request.path_params["alias"])
    except AccountError as exc:
        raise _refuse(exc) from None
    await _audit(request, c, "admin.alias.removed", request.path_params["alias"])
    return JSONResponse({"ok": True})


# ---------------------------------------------------------------------------------------- queue
async def outbound_queue(request: Request) -> JSONResponse:
    await _admin(request)
    entries = await mailqueue.list_queue(_ctx(request))
    return JSONResponse(
        {
            "messages": [
                {
                    "id": e.id,
                    "from": e.mail_from,
                    "size": e.size,
                    "created_at": e.created_at,
                    "recipients": [
                        {
                            "address": r.address,
                            "status": r.status,
                            "attempts": r.attempts,
                            "next_attempt_at": r.next_attempt_at,
                            "last_reply": r.last_reply,
                        }
                        for r in e.recipients
                    ],
                }
                for e in entries
            ]
        }
    )


def _message_id(request: Request) -> int:
    try:
        return int(request.path_params["id"])
    except ValueError:
        raise ApiError(404, "no such message") from None


async def queue_retry(request: Request) -> JSONResponse:
    c = await _admin(request)
    mid = _message_id(request) if "id" in request.path_params else None
    n = await mailqueue.retry_now(_ctx(request), mid)
    await _audit(request, c, "admin.queue.retry", str(mid or "all"))
    return JSONResponse({"recipients": n})


async def queue_delete(request: Request) -> JSONResponse:
    c = await _admin(request)
    mid = _message_id(request)
    if not await mailqueue.delete_message(_ctx(request), mid):
        raise ApiError(404, "no such message")
    await _audit(request, c, "admin.queue.deleted", str(mid))
    return JSONResponse({"ok": True})


async def delivery_log(request: Request) -> JSONResponse:
    await _admin(request)
    direction = request.query_params.get("direction") or None
    if direction not in (None, "in", "out"):
        raise ApiError(400, "direction is in or out")
    rows = await translog.recent(_ctx(request).sessions, direction=direction)
    return JSONResponse(
        {
            "entries": [
                {
                    "at": r.at,
                    "direction": r.direction,
                    "status": r.status,
                    "from": r.mail_from,
                    "to": r.recipient,
                    "reply": r.reply,
                    "remote": r.remote,
                    "ref": r.ref,
                }
                for r in rows
            ]
        }
    )


# ---------------------------------------------------------------------------------------- health, audit
async def health(request: Request) -> JSONResponse:
    await _admin(request)
    ctx = _ctx(request)
    started = time.perf_counter()
    try:
        async with ctx.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        database = {"status": "ok", "ms": round((time.perf_counter() - started) * 1000, 1)}
    except Exception as exc:
        database = {"status": "down", "error": type(exc).__name__}
    entries = await mailqueue.list_queue(ctx)
    queued = sum(1 for e in entries for r in e.recipients if r.status == mailqueue.QUEUED)
    failed = sum(1 for e in entries for r in e.recipients if r.status == mailqueue.FAILED)
    connections = await ctx.accounts.security.connection_counts()
    return JSONResponse(
        {
            "database": database,
            "bus": ctx.settings.bus_backend,
            "queue": {"messages": len(entries), "recipients_queued": queued, "recipients_failed": failed},
            "connections": connections,
            "accounts": await ctx.accounts.count_accounts(),
        }
    )


async def audit_log(request: Request) -> JSONResponse:
    await _admin(request)
    rows = await _ctx(request).accounts.security.audit_log(None, limit=500)
    return JSONResponse(
        {
            "entries": [
                {
                    "at": r.at,
                    "actor": r.actor,
                    "account_id": r.account_id,
                    "action": r.action,
                    "detail": r.detail,
                    "ip": r.ip,
                }
                for r in rows
            ]
        }
    )


# ---------------------------------------------------------------------------------------- export
async def _export_target(request: Request) -> tuple[auth.Caller, str]:
    c = await _admin(request)
    account = await _ctx(request).accounts.get(request.path_params["address"])
    if account is None:
        raise ApiError(404, f"no user {request.path_params['address']}")
    return c, account.address


async def user_export_start(request: Request) -> JSONResponse:
    """Admin → Users → Export: as the user's own "Export my data", for any account."""
    c, address = await _export_target(request)
    path = f"/api/admin/users/{quote(address)}/export/download"
    answer = export_routes.ticket_url(request, c, address, path)
    await _audit(request, c, "admin.user.exported", address)
    return JSONResponse(answer)


async def user_export_download(request: Request) -> Response:
    c, address = await _export_target(request)
    return await export_routes.download(request, c, address)


ROUTES = [
    Route("/api/admin/domains", domains, methods=["GET", "POST"]),
    Route("/api/admin/domains/{name}", domain, methods=["GET", "DELETE"]),
    Route("/api/admin/domains/{name}/check", check_domain, methods=["POST"]),
    Route("/api/admin/users", users, methods=["GET", "POST"]),
    Route("/api/admin/users/{address}", user, methods=["GET", "PATCH", "DELETE"]),
    Route("/api/admin/aliases", aliases, methods=["GET", "POST"]),
    Route("/api/admin/aliases/{alias}", alias, methods=["DELETE"]),
    Route("/api/admin/queue", outbound_queue),
    Route("/api/admin/queue/retry", queue_retry, methods=["POST"]),
    Route("/api/admin/queue/{id}/retry", queue_retry, methods=["POST"]),
    Route("/api/admin/queue/{id}", queue_delete, methods=["DELETE"]),
    Route("/api/admin/delivery-log", delivery_log),
    Route("/api/admin/health", health),
    Route("/api/admin/audit", audit_log),
    Route("/api/admin/users/{address}/export", user_export_start, methods=["POST"]),
    Route("/api/admin/users/{address}/export/download", user_export_download),
]
