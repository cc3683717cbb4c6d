"""Meetings in the gateway: create a room, read a link's public facts, the meeting WebSocket.

* ``POST /api/meetings`` (signed in, CSRF): ``{"title"?, "lobby"?, "password"?, "e2ee"?}`` -> 201
  ``{"token", "url": "/m/<token>", ...}``. The token is shown once; only its hash is stored.
* ``GET /api/meetings/<token>``: what the join page needs (title, lobby, password required,
  ended, whether the caller is the host); 404 for an unknown link.
* ``/ws/meetings/<token>``: the JSON messages of :mod:`suite.voip.meeting_messages`. Same Origin
  rule as ``/ws/calls`` (HTTP 403 otherwise). A session cookie makes a member; without one the
  socket is a guest's. An unknown link closes with 4404, an ended meeting with 4410 (after an
  ``error`` ``ended``). Frames are size-checked before parsing;
  a bad frame gets an ``error`` message. Guests get ``PASSWORD_ATTEMPTS`` password tries per
  socket, then the socket is closed (4429).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from suite.accounts.passwords import hash_password, verify_password
from suite.accounts.revocation import LiveConnection
from suite.gateway import auth
from suite.gateway.calls_routes import CLOSE_UNAUTHENTICATED, origin_allowed
from suite.gateway.errors import ApiError
from suite.voip.meeting_messages import (
    Hello,
    MeetingError,
    MeetingErrorCode,
    MeetingMessageError,
    decode_meeting_frame,
    meeting_message_to_json,
)
from suite.voip.meeting_store import MAX_TITLE, SqlMeetingRooms
from suite.voip.meetings import MeetingHub

CLOSE_UNKNOWN = 4404
CLOSE_TOO_MANY = 4429
CLOSE_ENDED = 4410
PASSWORD_ATTEMPTS = 5
SEND_QUEUE = 256
MAX_ROOM_PASSWORD = 256


def meeting_hub(app) -> MeetingHub:
    hub = getattr(app.state, "meeting_hub", None)
    if hub is None:
        ctx = app.state.ctx
        from suite.voip.ice import aiortc_ice_servers, ice_config
        from suite.voip.turn import ice_servers

        hub = app.state.meeting_hub = MeetingHub(
            SqlMeetingRooms(ctx.sessions),
            ice_servers=lambda: aiortc_ice_servers(ctx.settings, "meeting-sfu"),
            browser_ice=lambda name: ice_servers(ice_config(ctx.settings), name, time.time()),
            max_participants=ctx.settings.meeting_max_participants,
            janus_urls=ctx.settings.janus_urls if ctx.settings.sfu_engine == "janus" else [],
        )
    return hub


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > 4096:
        raise ApiError(413, "request body too large")
    if not raw:
        return {}
    try:
        import json

        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


async def create_meeting(request: Request) -> JSONResponse:
    c = await auth.require(request)
    body = await _json_body(request)
    title = body.get("title", "Meeting")
    lobby = body.get("lobby", False)
    password = body.get("password")
    e2ee = body.get("e2ee", False)
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= MAX_TITLE:
        raise ApiError(400, f"title must be 1..{MAX_TITLE} characters")
    if not isinstance(lobby, bool):
        raise ApiError(400, "lobby must be true or false")
    if not isinstance(e2ee, bool):
        raise ApiError(400, "e2ee must be true or false")
    if password is not None and (not isinstance(password, str) or not 1 <= len(password) <= MAX_ROOM_PASSWORD):
        raise ApiError(400, f"password must be 1..{MAX_ROOM_PASSWORD} characters")
    pw_hash = await hash_password(password) if password else None
    hub = meeting_hub(request.app)
    token, room = await hub.store.create(
        c.account.address, title.strip(), lobby=lobby, password_hash=pw_hash, e2ee=e2ee
    )
    return JSONResponse(
        {
            "token": token,
            "url": f"/m/{token}",
            "title": room.title,
            "lobby": room.lobby,
            "password": room.password_hash is not None,
            "e2ee": room.e2ee,
        },
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


async def meeting_info(request: Request) -> JSONResponse:
    token = request.path_params["token"]
    room = await meeting_hub(request.app).store.by_token(token)
    if room is None:
        raise ApiError(404, "no such meeting")
    c = await auth.caller(request)
    account = c.account.address if c is not None else None
    return JSONResponse(
        {
            "title": room.title,
            "lobby": room.lobby,
            "password": room.password_hash is not None,
            "ended": room.ended_at is not None,
            "e2ee": room.e2ee,
            "signed_in": account is not None,
            "host": account == room.owner,
        },
        headers={"Cache-Control": "no-store"},
    )


async def ws_meeting(websocket: WebSocket) -> None:
    ctx = websocket.app.state.ctx
    if not origin_allowed(websocket.headers, ctx.settings):
        await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
        return
    hub = meeting_hub(websocket.app)
    room = await hub.store.by_token(websocket.path_params["token"])
    registry = websocket.app.state.live
    mark = registry.mark()  # a revocation during the session check ends the socket (issue 16)
    c = await auth.caller(websocket)  # type: ignore[arg-type]  # cookie only
    member = c if c is not None and c.via == "session" else None
    account = member.account.address if member is not None else None
    await websocket.accept()
    if room is None:
        await websocket.close(code=CLOSE_UNKNOWN, reason="no such meeting")
        return
    if room.ended_at is not None:
        await websocket.send_json(
            meeting_message_to_json(MeetingError(code=MeetingErrorCode.ENDED, detail="the meeting has ended"))
        )
        await websocket.close(code=CLOSE_ENDED, reason="the meeting has ended")
        return
    queue: asyncio.Queue[dict | None] = asyncio.Queue(SEND_QUEUE)
    closing = asyncio.Event()

    def close() -> None:
        closing.set()
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)

    async def writer() -> None:
        while True:
            data = await queue.get()
            if data is None:
                with contextlib.suppress(Exception):
                    await websocket.close(code=1000)
                return
            await websocket.send_json(data)

    ending: set[asyncio.Task] = set()

    def end(reason: str) -> None:  # the member's web session was ended (sign-out, password, disabled)
        closing.set()
        ending.add(asyncio.get_running_loop().create_task(websocket.close(code=CLOSE_UNAUTHENTICATED, reason=reason)))

    # a member signed in with a web session is one of the account's live connections; a guest is not
    registered = (
        registry.add(
            LiveConnection(
                member.credential,
                "meeting",
                end,
                ip=websocket.client.host if websocket.client else None,
                client=websocket.headers.get("user-agent", "")[:200],
            ),
            mark,
        )
        if member is not None
        else None
    )
    live, peer = hub.open(room, account, queue.put_nowait, close)
    wtask = asyncio.get_running_loop().create_task(writer())
    attempts = 0
    try:
        while not closing.is_set():
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect" or closing.is_set():
                break
            raw = msg.get("text")
            try:
                if raw is None:
                    raise MeetingMessageError(MeetingErrorCode.BAD_JSON, "send text frames")
                message = decode_meeting_frame(raw)
            except MeetingMessageError as exc:
                queue.put_nowait(meeting_message_to_json(exc.to_server()))
                continue
            password_ok = False
            if isinstance(message, Hello) and account is None and room.password_hash is not None:
                if message.password:
                    attempts += 1
                    if attempts > PASSWORD_ATTEMPTS:
                        err = MeetingError(code=MeetingErrorCode.PASSWORD_REQUIRED, detail="too many attempts")
                        queue.put_nowait(meeting_message_to_json(err))
                        await asyncio.sleep(0)
                        await websocket.close(code=CLOSE_TOO_MANY)
                        break
                    password_ok, _ = await verify_password(room.password_hash, message.password)
            await hub.message(live, peer, message, password_ok=password_ok)
    except (WebSocketDisconnect, asyncio.QueueFull, RuntimeError):
        pass
    finally:
        registry.discard(registered)
        await hub.close(live, peer)
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(None)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(wtask, 2)
        wtask.cancel()


ROUTES = [
    Route("/api/meetings", create_meeting, methods=["POST"]),
    Route("/api/meetings/{token}", meeting_info),
    WebSocketRoute("/ws/meetings/{token}", ws_meeting),
]
