"""The HTTP edge of JMAP (RFC 8620 §2, §3.1, §6, §7.3), mounted by the gateway:

- ``GET /.well-known/jmap`` — the session resource;
- ``POST /jmap/api`` — requests (size checked from Content-Length before the body is read, then
  while reading; at most ``maxConcurrentRequests`` per account at once);
- ``POST /jmap/upload/{accountId}/`` and ``GET /jmap/download/{accountId}/{blobId}/{name}?accept=``
  — blobs (Range supported, Content-Disposition: attachment);
- ``GET /jmap/eventsource?types=&closeafter=&ping=`` — push of StateChange events.

Auth: HTTP Basic with the account password or an app password of scope "jmap", that app password
alone as a Bearer token, or the web session cookie (then every POST needs the session's X-CSRF-Token).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import time
import urllib.parse
from collections import defaultdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from suite.accounts.revocation import WEB_SESSION, Credential, LiveConnection
from suite.accounts.store import AccountInfo, AccountStore
from suite.gateway import auth as web_auth
from suite.mail.jmap import api, emailops, limits
from suite.mail.jmap.protocol import request as reqparse
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import RequestError
from suite.mail.jmap.push import Pusher
from suite.mail.store import MailStore
from suite.mail.store import emails as model
from suite.storage.blobs import BlobStore
from suite.storage.events import IdentitiesChanged, MailboxChanged, MailboxListChanged

LIMITS = limits.Limits()
PROBLEM = "application/problem+json"


def problem(err: RequestError, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(err.problem(), status_code=err.status, media_type=PROBLEM, headers=headers)


class Jmap:
    """Per-app state: the store, the submitter and the per-account request counters."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.store = MailStore(ctx)
        self.pusher = Pusher(ctx, self.store)
        self.closing = asyncio.Event()  # set when the gateway stops: EventSource streams end
        self.cache: dict = {}  # see api.CallContext.cache
        self._submitter = None
        self.inflight: dict[int, int] = defaultdict(int)
        self.uploads: dict[int, int] = defaultdict(int)

    @property
    def submitter(self):
        if self._submitter is None:
            from suite.mail.jmap.submit import QueueSubmitter

            self._submitter = QueueSubmitter(self.ctx)
        return self._submitter


def _jmap(request: Request) -> Jmap:
    return request.app.state.jmap


async def authenticate(request: Request) -> AccountInfo:
    """The caller's account; raises RequestError (401/403/429) as a problem document."""
    ctx = request.app.state.ctx
    header = request.headers.get("authorization", "")
    if header[:6].lower() == "basic ":
        try:
            user, _, pw = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise RequestError("unauthorized", 401, "malformed Authorization header") from None
        res = await ctx.accounts.authenticate(user, pw, scope="jmap", ip=web_auth.client_ip(request))
        if res.outcome == "locked":
            raise RequestError("rateLimited", 429, "too many failed logins; try again later")
        if not res.ok:
            raise RequestError("unauthorized", 401, "wrong address or password")
        request.scope["suite.account"] = res.account.address
        request.scope["suite.credential"] = _credential(res)
        return res.account
    if header[:7].lower() == "bearer ":
        # an app password of scope "jmap" as the token (clients such as jmap-jam only send Bearer)
        res = await ctx.accounts.authenticate_token(header[7:].strip(), scope="jmap", ip=web_auth.client_ip(request))
        if res.outcome == "locked":
            raise RequestError("rateLimited", 429, "too many failed logins; try again later")
        if not res.ok:
            raise RequestError("unauthorized", 401, "unknown or revoked token")
        request.scope["suite.account"] = res.account.address
        request.scope["suite.credential"] = _credential(res)
        return res.account
    token = request.cookies.get(web_auth.COOKIE)
    if token:
        ws = await ctx.accounts.web_session(token)
        if ws is not None:
            if request.method not in web_auth.SAFE_METHODS:
                sent = request.headers.get(web_auth.CSRF_HEADER, "")
                if not ws.csrf_token or not hmac.compare_digest(sent, ws.csrf_token):
                    raise RequestError("forbidden", 403, "missing or wrong X-CSRF-Token")
            request.scope["suite.account"] = ws.account.address
            request.scope["suite.credential"] = Credential(ws.account.id, WEB_SESSION, session_id=ws.session_id)
            return ws.account
    raise RequestError("unauthorized", 401, "log in first (HTTP Basic or the web session)")


def _credential(res) -> Credential:
    """What a Basic/Bearer sign-in used (revocation ends the EventSource streams it opened)."""
    return Credential.of_login(res.account.id, res.app_password_id if res.via_app_password else None)


def _unauthorized(err: RequestError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="Suite JMAP"'} if err.status == 401 else None
    if err.status == 429:
        headers = {"Retry-After": "60"}
    return problem(err, headers)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def session_state(account: AccountInfo) -> str:
    return hashlib.sha256(f"{account.id}:{account.address}:{account.display_name}".encode()).hexdigest()[:16]


async def session(request: Request) -> Response:
    try:
        account = await authenticate(request)
    except RequestError as err:
        return _unauthorized(err)
    base = _base(request)
    aid = limits.account_id(account.id)
    body = {
        "capabilities": {limits.CORE: LIMITS.core(), limits.MAIL: {}, limits.SUBMISSION: {}, limits.VACATION: {}},
        "accounts": {
            aid: {
                "name": account.address,
                "isPersonal": True,
                "isReadOnly": False,
                "accountCapabilities": {
                    limits.MAIL: limits.mail_account_capability(),
                    limits.SUBMISSION: limits.submission_account_capability(),
                    limits.VACATION: {},
                },
            }
        },
        "primaryAccounts": {limits.MAIL: aid, limits.SUBMISSION: aid, limits.VACATION: aid},
        "username": account.address,
        "apiUrl": f"{base}/jmap/api",
        "downloadUrl": f"{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}",
        "uploadUrl": f"{base}/jmap/upload/{{accountId}}/",
        "eventSourceUrl": f"{base}/jmap/eventsource?types={{types}}&closeafter={{closeafter}}&ping={{ping}}",
        "state": session_state(account),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-cache, no-store"})


async def _read_limited(request: Request, limit: int, name: str) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise RequestError("limit", 413, f"the body is larger than {name}", limit=name)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError("limit", 413, f"the body is larger than {name}", limit=name)
    return bytes(body)


async def api_endpoint(request: Request) -> Response:
    try:
        account = await authenticate(request)
    except RequestError as err:
        return _unauthorized(err)
    j = _jmap(request)
    try:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError("notJSON", 400, "send the request as application/json")
        # RFC 8620 §3.6.1 limit: maxSizeRequest, checked before the body is read
        body = await _read_limited(request, LIMITS.max_size_request, "maxSizeRequest")
        if j.inflight[account.id] >= LIMITS.max_concurrent_requests:
            raise RequestError("limit", 400, "too many concurrent requests", limit="maxConcurrentRequests")
        req = reqparse.parse(body, max_calls=LIMITS.max_calls_in_request, capabilities=limits.KNOWN)
    except RequestError as err:
        return problem(err)
    j.inflight[account.id] += 1
    try:

        def make(r: reqparse.Request) -> api.CallContext:
            return api.CallContext(
                account.id,
                account.address,
                j.ctx,
                j.store,
                r,
                LIMITS,
                submitter=_LazySubmitter(j),
                pusher=j.pusher,
                cache=j.cache,
            )

        out = await api.run(req, make, session_state(account))
    finally:
        j.inflight[account.id] -= 1
        if not j.inflight[account.id]:
            del j.inflight[account.id]
    return JSONResponse(out)


class _LazySubmitter:
    """Builds the SMTP deliverer on first use (most requests never send)."""

    def __init__(self, j: Jmap) -> None:
        self.j = j

    def __getattr__(self, name: str) -> Any:
        return getattr(self.j.submitter, name)


def _own_account(account: AccountInfo, value: str) -> bool:
    return value == limits.account_id(account.id)


async def upload(request: Request) -> Response:
    try:
        account = await authenticate(request)
    except RequestError as err:
        return _unauthorized(err)
    if not _own_account(account, request.path_params["account"]):
        return problem(RequestError("accountNotFound", 404, "no such account"))
    j = _jmap(request)
    ctx = j.ctx
    ctype = request.headers.get("content-type", "application/octet-stream")[:255]
    if j.uploads[account.id] >= LIMITS.max_concurrent_upload:
        return problem(RequestError("limit", 400, "too many concurrent uploads", limit="maxConcurrentUpload"))
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > LIMITS.max_size_upload):
        return problem(RequestError("limit", 413, "the blob is larger than maxSizeUpload", limit="maxSizeUpload"))
    usage = await j.store.usage(account.id)
    if usage is not None and length is not None and usage[0] + int(length) > usage[1]:
        return problem(RequestError("overQuota", 413, "the account's quota is full"))
    j.uploads[account.id] += 1
    try:
        w = await ctx.blobs.writer()
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > LIMITS.max_size_upload:
                    await w.abort()
                    return problem(
                        RequestError("limit", 413, "the blob is larger than maxSizeUpload", limit="maxSizeUpload")
                    )
                await w.write(chunk)
            ref = await w.commit()
        except BaseException:
            await w.abort()
            raise
        if not await _store_upload(j, account.id, ref, ctype):
            return problem(RequestError("overQuota", 413, "the account's quota is full"))
    finally:
        j.uploads[account.id] -= 1
    # RFC 8620 §6.1
    return JSONResponse(
        {
            "accountId": limits.account_id(account.id),
            "blobId": types.blob_id(ref.digest),
            "type": ctype,
            "size": ref.size,
        },
        status_code=201,
    )


UPLOAD_LIFETIME = 24 * 3600  # RFC 8620 §6.1: unreferenced uploads may be deleted after a while


async def _store_upload(j: Jmap, account_id: int, ref, ctype: str) -> bool:
    """Record the upload: a blob reference and its size on the account's quota (issue #13 §5);
    the account's uploads older than a day are dropped (reference and quota) in the same step."""
    now = time.time()
    async with j.store.raw_db.write() as c:
        # lock order: account row, then blob rows (as the mail store)
        old = await c.all(
            "SELECT id, blob, size FROM jmap_uploads WHERE account_id = ? AND created_at < ?",
            account_id,
            now - UPLOAD_LIFETIME,
        )
        freed = sum(r[2] for r in old)
        if not await AccountStore.charge(c, account_id, ref.size - freed):
            return False
        await BlobStore.unref_many(c, [r[1] for r in old])
        for upload_id, _digest, _size in old:
            await c.run("DELETE FROM jmap_uploads WHERE id = ?", upload_id)
        await BlobStore.ref(c, ref)
        await c.run(
            "INSERT INTO jmap_uploads (account_id, blob, size, type, created_at) VALUES (?, ?, ?, ?, ?)",
            account_id,
            ref.digest,
            ref.size,
            ctype,
            now,
        )
    return True


def _disposition(name: str) -> str:
    # RFC 6266 §4.3: an ASCII fallback and the UTF-8 name
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name) or "blob"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


def _range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """(start, end exclusive) of a single ``bytes=`` range; None without one; False unsatisfiable."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return False
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return False
    return start, min(end, size)


async def download(request: Request) -> Response:
    try:
        account = await authenticate(request)
    except RequestError as err:
        return _unauthorized(err)
    if not _own_account(account, request.path_params["account"]):
        return problem(RequestError("accountNotFound", 404, "no such account"))
    j = _jmap(request)
    blob_id = request.path_params["blob"]
    name = request.path_params["name"]
    accept = request.query_params.get("accept") or "application/octet-stream"
    if "\r" in accept or "\n" in accept or len(accept) > 255:
        accept = "application/octet-stream"
    got = await emailops.read_blob(j.store, account.id, blob_id)
    if got is None:
        return problem(RequestError("notFound", 404, "no such blob"))
    data, _ = got
    headers = {
        "Content-Disposition": _disposition(name),
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, immutable, max-age=31536000",
        "X-Content-Type-Options": "nosniff",
        # a mail attachment is hostile content: never a page of this origin, even if opened inline
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    rng = _range(request.headers.get("range"), len(data))
    if rng is False:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
    if isinstance(rng, tuple):
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        return Response(data[start:end], status_code=206, media_type=accept, headers=headers)
    return Response(data, media_type=accept, headers=headers)


TYPES = {model.EMAIL, model.MAILBOX, model.THREAD, model.SUBMISSION, model.IDENTITY}


async def _states(store, account_id: int, kinds: set[str]) -> dict[str, str]:
    async with store.raw_db.read() as c:
        return {k: types.state(await model.state(c, account_id, k)) for k in sorted(kinds)}


async def eventsource(request: Request) -> Response:
    """RFC 8620 §7.3: ``state`` events with a StateChange, ``ping`` events every ``ping`` seconds."""
    live_set = request.app.state.live
    mark = live_set.mark()  # a revocation during the credential check ends the stream
    try:
        account = await authenticate(request)
    except RequestError as err:
        return _unauthorized(err)
    j = _jmap(request)
    q = request.query_params
    want = q.get("types", "*")
    kinds = set(TYPES) if want in ("*", "") else {t for t in want.split(",") if t in TYPES}
    closeafter = q.get("closeafter", "no")
    if closeafter not in ("no", "state"):
        return problem(RequestError("invalidArguments", 400, "closeafter is 'state' or 'no'"))
    try:
        ping = int(q.get("ping", "0") or 0)
    except ValueError:
        return problem(RequestError("invalidArguments", 400, "ping must be an integer"))
    if ping:
        ping = min(max(ping, 10), 3600)  # §7.3: at least 10 s when set (the server may clamp)
    aid = limits.account_id(account.id)
    sub = j.ctx.bus.subscribe(MailboxChanged, MailboxListChanged, IdentitiesChanged)
    revoked = asyncio.Event()  # the credential was revoked: the stream ends (issue 16)
    conn = LiveConnection(
        request.scope["suite.credential"],
        "jmap-push",
        lambda _reason: revoked.set(),
        ip=request.client.host if request.client else None,
        client=request.headers.get("user-agent", "")[:200],
    )

    async def stream():
        closing = asyncio.ensure_future(j.closing.wait())
        ended = asyncio.ensure_future(revoked.wait())
        live_set.add(conn, mark)
        try:
            last = await _states(j.store, account.id, kinds)
            if closeafter == "no":
                yield _event("state", {"@type": "StateChange", "changed": {aid: last}})
            while not j.closing.is_set() and not revoked.is_set():
                getter = asyncio.ensure_future(sub.get())
                waits = {getter, closing, ended}
                done, _ = await asyncio.wait(waits, timeout=ping or 30, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    if j.closing.is_set() or revoked.is_set():
                        return
                    if ping:
                        yield _event("ping", {"@type": "Ping", "interval": ping})
                    else:
                        yield b": keep-alive\n\n"
                    continue
                ev = getter.result()
                # an event of another account is skipped, unless events were missed (a full queue, a
                # bus reconnect: the Resync marker): then the states are compared to what was sent
                if getattr(ev, "account_id", None) != account.id and not sub.missed:
                    continue
                await asyncio.sleep(0.05)  # one event for a burst of changes
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.missed = False
                now = await _states(j.store, account.id, kinds)
                changed = {k: v for k, v in now.items() if last.get(k) != v}
                last = now
                if changed:
                    yield _event("state", {"@type": "StateChange", "changed": {aid: changed}})
                    if closeafter == "state":
                        return
        finally:
            closing.cancel()
            ended.cancel()
            sub.close()
            live_set.discard(conn)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def routes() -> list[Route]:
    return [
        Route("/.well-known/jmap", session, methods=["GET"]),
        Route("/jmap/session", session, methods=["GET"]),
        Route("/jmap/api", api_endpoint, methods=["POST"]),
        Route("/jmap/api/", api_endpoint, methods=["POST"]),
        Route("/jmap/upload/{account}/", upload, methods=["POST"]),
        Route("/jmap/download/{account}/{blob}/{name}", download, methods=["GET"]),
        Route("/jmap/eventsource", eventsource, methods=["GET"]),
        Route("/jmap/eventsource/", eventsource, methods=["GET"]),
    ]


def install(app, ctx) -> None:
    app.state.jmap = Jmap(ctx)


async def start(app) -> None:
    """Background work of the JMAP edge: the push sender (RFC 8620 §7.2), in the primary process
    only (it hears every process's changes on the bus; two senders would push each change twice)."""
    if app.state.jmap.ctx.settings.primary:
        app.state.jmap.pusher.start()


async def stop(app) -> None:
    app.state.jmap.closing.set()
    await app.state.jmap.pusher.stop()
