"""Meetings in the gateway: create a room, read a link's public facts, the meeting WebSocket.

* ``POST /api/meetings`` (signed in, CSRF): ``{"title"?, "lobby"?, "password"?, "e2ee"?}`` -> 201
  ``{"token", "url": "/m/<token>", ...}``. The token is shown once; only its hash is stored.
  With ``"start"`` (ISO 8601 with a UTC offset), ``"minutes"`` (default 60) and ``"invitees"``
  (addresses) the meeting is planned: each invitee gets an iTIP REQUEST (RFC 5546) with the link,
  sent from the host's account through the mail submission port (suite/voip/invitations.py); the
  answer adds ``"start"`` and ``"invited"``.
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
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from suite.accounts.passwords import hash_password, verify_password
from suite.gateway import auth
from suite.gateway.calls_routes import close_for_revocation, origin_allowed, socket_connection
from suite.gateway.errors import ApiError
from suite.voip import invitations
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
            janus_rec_dir=ctx.settings.janus_rec_dir,
            recordings=getattr(app.state, "meeting_recordings", None),
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
    plan = _plan(body)
    mailer = getattr(request.app.state, "meeting_invitations", None)
    if plan is not None and plan[2] and mailer is None:
        raise ApiError(503, "invitations need the mail service in this process")
    pw_hash = await hash_password(password) if password else None
    hub = meeting_hub(request.app)
    token, room = await hub.store.create(
        c.account.address, title.strip(), lobby=lobby, password_hash=pw_hash, e2ee=e2ee
    )
    out: dict[str, Any] = {
        "token": token,
        "url": f"/m/{token}",
        "title": room.title,
        "lobby": room.lobby,
        "password": room.password_hash is not None,
        "e2ee": room.e2ee,
    }
    if plan is not None:
        start, duration, invitees = plan
        settings = request.app.state.ctx.settings
        inv = invitations.Invitation(
            uid=invitations.new_uid(settings.hostname),
            title=room.title,
            start=start,
            duration=duration,
            url=f"{settings.base_url.rstrip('/')}/m/{token}",
            organizer=c.account.address,
            organizer_name=c.account.display_name or "",
            attendees=invitees,
            stamp=datetime.now(UTC),
        )
        if invitees and mailer is not None:  # checked above: invitees without a mailer are a 503
            raw = invitations.invitation_message(inv, message_id_domain=settings.hostname)
            await mailer.send(c.account.id, c.account.address, list(invitees), raw)
        out |= {"start": start.isoformat(), "minutes": int(duration.total_seconds() // 60), "invited": list(invitees)}
    return JSONResponse(
        out,
        status_code=201,
        headers={"Cache-Control": "no-store"},
    )


def _plan(body: dict[str, Any]) -> tuple[datetime, timedelta, tuple[str, ...]] | None:
    """``start``/``minutes``/``invitees`` of a planned meeting, validated (None: a meeting now)."""
    if body.get("start") is None:
        if body.get("invitees"):
            raise ApiError(400, "invitees need a start time")
        return None
    raw = body["start"]
    try:
        start = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        raise ApiError(400, "start must be an ISO 8601 time with a UTC offset")
    minutes = body.get("minutes", 60)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 5 <= minutes <= 24 * 60:
        raise ApiError(400, "minutes must be 5..1440")
    invitees = body.get("invitees", [])
    if not isinstance(invitees, list):
        raise ApiError(400, "invitees must be a list of addresses")
    try:
        people = invitations.attendees(invitees)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None
    return start, timedelta(minutes=minutes), people


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


async def _relay(websocket: WebSocket, path: str) -> None:
    """This meeting socket, relayed frame by frame to the primary worker's gateway (its Unix
    socket): every participant of a room reaches the one process that holds the room's SFU,
    whichever worker accepted the connection. Close codes pass through both ways."""
    from websockets.asyncio.client import unix_connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    headers = [(k, v) for k, v in websocket.headers.items() if k in ("cookie", "user-agent")]
    host = websocket.headers.get("host", "localhost")
    try:
        upstream = await unix_connect(
            path,
            f"ws://{host}{websocket.url.path}",
            additional_headers=headers,
            origin=websocket.headers.get("origin"),
            max_size=None,
            open_timeout=10,
        )
    except (OSError, InvalidStatus, TimeoutError):
        await websocket.close(code=1011)
        return
    await websocket.accept()

    async def down() -> None:  # primary → browser
        try:
            async for frame in upstream:
                if isinstance(frame, str):
                    await websocket.send_text(frame)
                else:
                    await websocket.send_bytes(frame)
        except ConnectionClosed:
            pass
        with contextlib.suppress(Exception):
            await websocket.close(code=upstream.close_code or 1000, reason=upstream.close_reason or "")

    async def up() -> None:  # browser → primary
        while True:
            msg = await websocket.receive()
            if msg["type"] == "websocket.disconnect":
                await upstream.close(code=msg.get("code") or 1000)
                return
            await upstream.send(msg["text"] if msg.get("text") is not None else msg.get("bytes") or b"")

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except (WebSocketDisconnect, ConnectionClosed):
        pass
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        await upstream.close()


async def ws_meeting(websocket: WebSocket) -> None:
    ctx = websocket.app.state.ctx
    if not origin_allowed(websocket.headers, ctx.settings):
        await websocket.close(code=1008)  # before accept: the handshake gets HTTP 403
        return
    if ctx.settings.primary_socket and not ctx.settings.primary:
        # `suite serve --workers`: a room's media and state live in one process, the primary
        await _relay(websocket, ctx.settings.primary_socket)
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
        close_for_revocation(websocket, reason, ending)

    # a member signed in with a web session is one of the account's live connections; a guest is not
    registered = (
        registry.add(
            socket_connection(websocket, member.credential, "meeting", end),
            mark,
        )
        if member is not None
        else None
    )
    display = member.account.display_name if member is not None else ""
    live, peer = hub.open(room, account, queue.put_nowait, close, display)
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
