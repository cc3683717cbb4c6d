"""Calls in the gateway: the signalling WebSocket, call history, ICE servers, contacts with presence.

``/ws/calls`` speaks the JSON messages of :mod:`suite.voip.messages`. The handshake is refused
(HTTP 403) when ``Origin`` names another site (cross-site WebSocket hijacking: the browser would
send the session cookie along); without a session cookie the socket is accepted and closed at once
with code 4401 so that the page can tell "log in" from a network error. Frames are size-checked
before parsing; a bad frame gets an ``error`` message, never a closed socket.

Before an ``invite`` reaches the switch the gateway checks that the callee exists (an enabled
account, or the media agent's echo address) and limits invites per session.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from suite.accounts.revocation import LiveConnection
from suite.gateway import auth
from suite.gateway.errors import ApiError
from suite.voip.history import CallRecord
from suite.voip.hub import CallHub, hub_for
from suite.voip.ice import ice_config
from suite.voip.messages import (
    ClientMessageError,
    ErrorCode,
    ErrorMessage,
    Invite,
    decode_client_frame,
    server_message_to_json,
)
from suite.voip.turn import ice_servers

log = structlog.get_logger("suite.voip.ws")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_SLOW = 4408  # the client does not read its messages
INVITES_PER_WINDOW = 10
INVITE_WINDOW = 60.0
SEND_QUEUE = 256


def _hub(app) -> CallHub:
    hub = getattr(app.state, "call_hub", None)
    if hub is None:
        hub = app.state.call_hub = hub_for(app.state.ctx)
    return hub


def origin_allowed(headers, settings) -> bool:
    """No Origin (not a browser) or the page's own origin: the Host it called, or public_url."""
    origin = headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    if parts.netloc.lower() == headers.get("host", "").lower():
        return True
    if settings.public_url:
        pub = urlsplit(settings.public_url)
        return (pub.scheme, pub.netloc.lower()) == (parts.scheme, parts.netloc.lower())
    return False


def close_for_revocation(websocket: WebSocket, reason: str, tasks: set[asyncio.Task]) -> None:
    """Close a live socket whose web session was ended, from a sync revocation callback. The client may
    already be gone (WebSocketDisconnect): nothing to tell it then, and no unretrieved task error."""

    async def close() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.close(code=CLOSE_UNAUTHENTICATED, reason=reason)

    task = asyncio.get_running_loop().create_task(close())
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def socket_connection(websocket: WebSocket, credential: Any, kind: str, end: Callable[[str], None]) -> LiveConnection:
    """The account's live-connection entry for a signed-in socket (shown in Settings → Sessions, ended
    with the web session through ``end``)."""
    return LiveConnection(
        credential,
        kind,
        end,
        ip=websocket.client.host if websocket.client else None,
        client=websocket.headers.get("user-agent", "")[:200],
    )


class InviteLimiter:
    """Sliding window of invites per session."""

    def __init__(self, limit: int = INVITES_PER_WINDOW, window: float = INVITE_WINDOW) -> None:
        self.limit, self.window = limit, window
        self.times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) >= self.limit:
            return False
        self.times.append(now)
        return True


async def callee_known(app, hub: CallHub, address: str) -> bool:
    if hub.agent is not None and hub.agent.is_echo(address):
        return True
    acct = await app.state.ctx.accounts.get(address)
    return acct is not None and not acct.disabled


async def ws_calls(websocket: WebSocket) -> None:
    ctx = websocket.app.state.ctx
    if not origin_allowed(websocket.headers, ctx.settings):
        await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
        return
    mark = websocket.app.state.live.mark()  # a revocation during the session check ends the socket
    c = await auth.caller(websocket)  # type: ignore[arg-type]  # cookie only, never Basic
    await websocket.accept()
    if c is None or c.via != "session":
        await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="log in first")
        return
    hub = _hub(websocket.app)
    queue: asyncio.Queue[dict | None] = asyncio.Queue(SEND_QUEUE)

    def sink(data: dict) -> None:
        queue.put_nowait(data)  # QueueFull: the hub closes this session

    async def writer() -> None:
        while True:
            data = await queue.get()
            if data is None:
                return
            await websocket.send_json(data)

    limiter = InviteLimiter(INVITES_PER_WINDOW, INVITE_WINDOW)
    session = hub.open(c.account.address, c.account.id, sink)
    wtask = asyncio.get_running_loop().create_task(writer())

    def end(reason: str) -> None:  # the web session was ended (sign-out, password, disabled)
        close_for_revocation(websocket, reason, ending)

    ending: set[asyncio.Task] = set()
    live = websocket.app.state.live.add(
        socket_connection(websocket, c.credential, "calls", end),
        mark,
    )
    log.info("calls.session_open", account=c.account.address, session=session)
    try:
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                break
            if not hub.is_open(session):  # dropped by the hub (slow reader)
                await websocket.close(code=CLOSE_SLOW)
                break
            raw = msg.get("text")
            if raw is None:
                sink(server_message_to_json(ErrorMessage(code=ErrorCode.BAD_JSON, detail="send text frames")))
                continue
            try:
                message = decode_client_frame(raw)
            except ClientMessageError as exc:
                sink(server_message_to_json(exc.to_server()))
                continue
            if isinstance(message, Invite):
                if not limiter.allow(time.monotonic()):
                    sink(
                        server_message_to_json(
                            ErrorMessage(
                                code=ErrorCode.NOT_ALLOWED,
                                detail="too many calls; wait a minute",
                                call_id=message.call_id,
                            )
                        )
                    )
                    continue
                if not await callee_known(websocket.app, hub, message.to):
                    sink(
                        server_message_to_json(
                            ErrorMessage(
                                code=ErrorCode.INVALID_MESSAGE, detail="to: no such account", call_id=message.call_id
                            )
                        )
                    )
                    continue
            hub.client(session, message)
    except WebSocketDisconnect:
        pass
    except asyncio.QueueFull:
        pass
    finally:
        websocket.app.state.live.discard(live)
        hub.close(session)
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(wtask, 2)
        wtask.cancel()
        log.info("calls.session_closed", account=c.account.address, session=session)


def record_json(r: CallRecord, me: str) -> dict:
    return {
        "call_id": r.call_id,
        "direction": "outgoing" if r.caller == me else "incoming",
        "peer": r.callee if r.caller == me else r.caller,
        "caller": r.caller,
        "callee": r.callee,
        "media": r.media,
        "outcome": r.outcome.value,
        "end_reason": r.end_reason.value,
        "started_at": r.started_at,
        "answered_at": r.answered_at,
        "ended_at": r.ended_at,
        "duration": round(r.duration, 1),
        "missed": r.missed_for(me),
        "voicemail": r.voicemail,
    }


async def calls_history(request: Request) -> JSONResponse:
    c = await auth.require(request)
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ApiError(400, "limit must be within 1..500")
    hub = _hub(request.app)
    rows = await hub.history.list(c.account.address, limit=int(raw))
    return JSONResponse({"calls": [record_json(r, c.account.address) for r in rows]})


async def calls_ice(request: Request) -> JSONResponse:
    c = await auth.require(request)
    cfg = ice_config(request.app.state.ctx.settings)
    servers = ice_servers(cfg, c.account.address, time.time())
    return JSONResponse(
        {"iceServers": servers, "ttl": cfg.turn_ttl if cfg.turn_urls else None}, headers={"Cache-Control": "no-store"}
    )


async def contacts(request: Request) -> JSONResponse:
    c = await auth.require(request)
    ctx = request.app.state.ctx
    hub = _hub(request.app)
    me = c.account.address
    domain = me.rsplit("@", 1)[-1]
    out = []
    for a in await ctx.accounts.list_accounts(domain):
        if a.address == me or a.disabled:
            continue
        out.append(
            {
                "address": a.address,
                "display_name": a.display_name,
                "presence": hub.presence(a.address).value,
                "kind": "person",
            }
        )
    if hub.agent is not None:
        echo = f"echo@{domain}"
        if hub.agent.is_echo(echo):
            out.insert(0, {"address": echo, "display_name": "Echo test", "presence": "online", "kind": "echo"})
    return JSONResponse({"contacts": out})


ROUTES = [
    WebSocketRoute("/ws/calls", ws_calls),
    Route("/api/calls/history", calls_history),
    Route("/api/calls/ice", calls_ice),
    Route("/api/contacts", contacts),
]
