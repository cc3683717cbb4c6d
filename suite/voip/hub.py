"""The call hub: the asyncio shell around the sans-I/O :class:`~suite.voip.calls.CallSwitch`.

The hub owns one switch, feeds it events with a monotonic clock, schedules ``Tick`` at
``next_deadline()`` and carries out the commands: ``Send`` goes to the session's *sink* (the queue
of a WebSocket writer, or a media-agent callback), ``RecordCall`` goes to the SQL history (times
converted to POSIX seconds), ``PresenceChanged`` updates the presence map, ``DivertToVoicemail``
starts the media agent.

Calls with the media agent (the echo test, voicemail) are *side calls*: they never enter the
switch (the agent is not an account with sessions, and an echo service must take any number of
calls at once). The hub routes offer / ICE / hangup of such a call id between the caller's
session and the agent's handler.

Several processes (several ``suite serve`` sharing one database and a PostgreSQL or Redis bus):
exactly one hub is the *owner* (``owner=True``, the default) and runs the switch; the others
forward their sessions' open / close / client messages to it as ``CallSignal`` events and deliver
the ``send`` events it publishes for their sessions. Limits, documented in docs/ARCHITECTURE.md:
the owner is configured, not elected (if it is down, calls are down; two owners would answer
twice), the bus gives no delivery guarantee across a reconnect (a lost message is a lost ring or
ICE candidate), and presence seen by the other processes is what the owner last published.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from suite.storage.events import CallSignal
from suite.voip.calls import (
    CallPolicy,
    CallSwitch,
    Command,
    CreateMeeting,
    DivertToVoicemail,
    FromClient,
    MeetingCreated,
    Presence,
    PresenceChanged,
    RecordCall,
    Send,
    SessionClosed,
    SessionOpened,
    Tick,
)
from suite.voip.history import CallHistory, CallRecord
from suite.voip.meeting_store import MeetingRooms
from suite.voip.messages import (
    Accepted,
    Answer,
    CallEnded,
    Cancel,
    ClientMessage,
    EndReason,
    ErrorCode,
    ErrorMessage,
    Hangup,
    Ice,
    Invite,
    Offer,
    ServerMessage,
    parse_client_message,
    server_message_to_json,
)

if TYPE_CHECKING:
    from suite.context import Context

log = structlog.get_logger("suite.voip.hub")

Sink = Callable[[dict[str, Any]], None]
"""Receives one server message (its JSON object); must not block. Raising closes the session."""


class SideHandler(Protocol):
    """The media agent's end of one side call (echo test or voicemail)."""

    async def offer(self, sdp: str) -> str:
        """Take the caller's offer, return the answer SDP (ICE candidates included)."""
        ...

    async def ice(self, candidate: dict[str, Any]) -> None: ...

    async def close(self, reason: str) -> None:
        """The caller hung up or went away (or the hub stops): finish (voicemail delivers)."""
        ...


class MediaAgent(Protocol):
    """What the hub needs from the media agent (suite.voip.agent.MediaAgent)."""

    def is_echo(self, account: str) -> bool: ...

    def echo(self, hub: CallHub, call_id: str, caller: str, session: str) -> SideHandler: ...

    def voicemail(self, hub: CallHub, divert: DivertToVoicemail) -> SideHandler: ...


@dataclass(slots=True)
class _Side:
    call_id: str
    session: str
    peer: str  # the agent's name shown to the caller
    handler: SideHandler
    tasks: set[asyncio.Task]


class CallHub:
    def __init__(
        self,
        *,
        history: CallHistory,
        bus: Any = None,
        policy: CallPolicy | None = None,
        owner: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        meetings: MeetingRooms | None = None,
    ) -> None:
        self.switch = CallSwitch(policy)
        self.history = history
        self.meetings = meetings
        """Where a 1:1 call turned meeting gets its room (None: adding a person fails)."""
        self.bus = bus
        self.owner = owner
        self.node = secrets.token_hex(4)
        self._clock = clock
        self._wall_offset = wall() - clock()
        self._sinks: dict[str, Sink] = {}  # local sessions
        self._remote: dict[str, str] = {}  # owner: remote session -> node
        self._account_ids: dict[str, int] = {}  # session -> account id (bus addressing)
        self._accounts: dict[str, str] = {}  # non-owner: local session -> account (re-announced on a resync)
        self._presence: dict[str, Presence] = {}  # non-owner: as published by the owner
        self._side: dict[str, _Side] = {}
        self._tasks: set[asyncio.Task] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._sub = None
        self._listener: asyncio.Task | None = None
        self.agent: MediaAgent | None = None

    # --- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.ensure_started()

    def ensure_started(self) -> None:
        """Subscribe to the bus (idempotent; the gateway runs without an ASGI lifespan)."""
        if self.bus is not None and self._listener is None:
            self._sub = self.bus.subscribe(CallSignal)
            self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def end_side_calls(self) -> None:
        """End every call with the media agent (the agent is stopping)."""
        for side in list(self._side.values()):
            await self._end_side(side, EndReason.DISCONNECTED, notify=True)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.end_side_calls()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None
        if self._sub is not None:
            self._sub.close()
        await self.flush()

    async def flush(self) -> None:
        """Wait for the history writes and agent work started so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def attach_agent(self, agent: MediaAgent | None) -> None:
        self.agent = agent

    def now(self) -> float:
        return self._clock()

    def wall(self, t: float) -> float:
        return t + self._wall_offset

    # --- sessions (called by the WebSocket route) ----------------------------------------

    def open(self, account: str, account_id: int, sink: Sink) -> str:
        self.ensure_started()
        session = f"{self.node}.{secrets.token_urlsafe(12)}"
        self._sinks[session] = sink
        self._account_ids[session] = account_id
        if self.owner:
            self._handle(SessionOpened(session, account))
        else:
            self._accounts[session] = account
            self._forward(session, {"op": "open", "account": account})
        return session

    def close(self, session: str) -> None:
        if self._sinks.pop(session, None) is None:
            return
        if self.owner:
            self._closed(session)
        else:
            self._accounts.pop(session, None)
            self._forward(session, {"op": "close"})
        self._account_ids.pop(session, None)

    def client(self, session: str, message: ClientMessage) -> None:
        if session not in self._sinks:
            return
        if self.owner:
            self._client(session, message)
        else:
            self._forward(session, {"op": "client", "message": _client_json(message)})

    def presence(self, account: str) -> Presence:
        if self.owner:
            return self.switch.presence(account)
        return self._presence.get(account, Presence.OFFLINE)

    def is_open(self, session: str) -> bool:
        return session in self._sinks

    def sessions(self) -> int:
        return len(self._sinks)

    # --- the owner's core ------------------------------------------------------------

    def _closed(self, session: str) -> None:
        for side in [s for s in self._side.values() if s.session == session]:
            self._spawn(self._end_side(side, EndReason.DISCONNECTED, notify=False))
        self._handle(SessionClosed(session))
        self._remote.pop(session, None)

    def _client(self, session: str, m: ClientMessage) -> None:
        cid = getattr(m, "call_id", None)
        side = self._side.get(cid) if cid is not None else None
        if side is not None and side.session == session:
            self._side_client(side, m)
            return
        if (
            isinstance(m, Invite)
            and self.agent is not None
            and self.agent.is_echo(m.to)
            and self.switch.account_of(session) is not None
        ):
            self._start_echo(session, m)
            return
        self._handle(FromClient(session, m))

    def _handle(self, event: SessionOpened | SessionClosed | FromClient | MeetingCreated | Tick) -> None:
        commands = self.switch.handle(event, self._clock())
        for c in commands:
            self._execute(c)
        self._arm()

    def _execute(self, c: Command) -> None:
        match c:
            case Send(session=s, message=m):
                self.send(s, m)
            case RecordCall(record=r):
                self._spawn(self._record(r))
            case PresenceChanged(account=a, presence=p):
                # Other processes answer /api/contacts from what the owner publishes.
                self._publish(0, None, {"op": "presence", "account": a, "presence": p.value})
            case DivertToVoicemail() as d:
                self._start_voicemail(d)
            case CreateMeeting() as cm:
                self._spawn(self._create_meeting(cm))

    async def _create_meeting(self, cm: CreateMeeting) -> None:
        token: str | None = None
        if self.meetings is not None:
            try:
                token, _room = await self.meetings.create(cm.host, cm.title, lobby=False, password_hash=None)
            except Exception:
                log.exception("calls.meeting_create_failed", call_id=cm.call_id)
        self._handle(MeetingCreated(cm.call_id, token, invite_id=secrets.token_urlsafe(12)))

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = self.switch.next_deadline()
        if due is None:
            return
        delay = max(0.0, due - self._clock())
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._handle(Tick())

    async def _record(self, r: CallRecord) -> None:
        # The switch runs on the monotonic clock; the history keeps POSIX seconds.
        row = CallRecord(
            call_id=r.call_id,
            caller=r.caller,
            callee=r.callee,
            media=r.media,
            outcome=r.outcome,
            end_reason=r.end_reason,
            started_at=self.wall(r.started_at),
            ended_at=self.wall(r.ended_at),
            answered_at=None if r.answered_at is None else self.wall(r.answered_at),
            voicemail=r.voicemail,
        )
        try:
            await self.history.add(row)
        except Exception:
            log.exception("calls.history_write_failed", call_id=r.call_id)

    # --- delivery ---------------------------------------------------------------------

    def send(self, session: str, message: ServerMessage) -> None:
        self._deliver(session, server_message_to_json(message))

    def _deliver(self, session: str, data: dict[str, Any]) -> None:
        sink = self._sinks.get(session)
        if sink is not None:
            try:
                sink(data)
            except Exception:
                log.warning("calls.sink_failed", session=session)
                self.close(session)
            return
        if session in self._remote:
            self._forward_send(session, data)

    def _forward_send(self, session: str, data: dict[str, Any]) -> None:
        self._publish(self._account_ids.get(session, 0), session, {"op": "send", "message": data})

    # --- side calls (media agent) -------------------------------------------------------

    def _start_echo(self, session: str, m: Invite) -> None:
        assert self.agent is not None
        if m.call_id in self._side or any(c.call_id == m.call_id for c in self.switch.calls()):
            self.send(
                session, ErrorMessage(code=ErrorCode.CALL_ID_IN_USE, detail="call id already used", call_id=m.call_id)
            )
            return
        caller = self.switch.account_of(session) or ""
        handler = self.agent.echo(self, m.call_id, caller, session)
        self._side[m.call_id] = _Side(m.call_id, session, m.to, handler, set())
        self.send(session, Accepted(call_id=m.call_id, peer=m.to))

    def _start_voicemail(self, d: DivertToVoicemail) -> None:
        if self.agent is None:
            self.send(d.caller_session, CallEnded(call_id=d.call_id, reason=EndReason.UNAVAILABLE))
            return
        handler = self.agent.voicemail(self, d)
        self._side[d.call_id] = _Side(d.call_id, d.caller_session, "voicemail", handler, set())

    def _side_client(self, side: _Side, m: ClientMessage) -> None:
        match m:
            case Offer(sdp=sdp):
                self._spawn(self._side_offer(side, sdp))
            case Ice(candidate=c):
                self._spawn(side.handler.ice(_candidate_json(c)))
            case Hangup() | Cancel():
                self._spawn(self._end_side(side, EndReason.HANGUP, notify=True))
            case Answer():
                self.send(
                    side.session,
                    ErrorMessage(
                        code=ErrorCode.INVALID_STATE,
                        detail="the agent sends offers only as answers",
                        call_id=side.call_id,
                    ),
                )
            case _:
                self.send(
                    side.session,
                    ErrorMessage(code=ErrorCode.INVALID_STATE, detail="not in this call state", call_id=side.call_id),
                )

    async def _side_offer(self, side: _Side, sdp: str) -> None:
        from suite.voip.messages import RelayedAnswer

        try:
            answer = await side.handler.offer(sdp)
        except Exception:
            log.exception("calls.agent_offer_failed", call_id=side.call_id)
            await self._end_side(side, EndReason.DISCONNECTED, notify=True)
            return
        if self._side.get(side.call_id) is side:
            self.send(side.session, RelayedAnswer(call_id=side.call_id, sender=side.peer, sdp=answer))

    def end_side(self, call_id: str, reason: EndReason = EndReason.HANGUP) -> None:
        """The agent ends its call (voicemail limit reached, media failed)."""
        side = self._side.get(call_id)
        if side is not None:
            self._spawn(self._end_side(side, reason, notify=True))

    async def _end_side(self, side: _Side, reason: EndReason, *, notify: bool) -> None:
        if self._side.get(side.call_id) is not side:
            return
        del self._side[side.call_id]
        if notify:
            self.send(side.session, CallEnded(call_id=side.call_id, reason=reason))
        try:
            await side.handler.close(reason.value)
        except Exception:
            log.exception("calls.agent_close_failed", call_id=side.call_id)

    def side_calls(self) -> list[str]:
        return list(self._side)

    # --- bus (several processes) -------------------------------------------------------

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forward(self, session: str, payload: dict[str, Any]) -> None:
        self._publish(self._account_ids.get(session, 0), session, payload)

    def _publish(self, account_id: int, session: str | None, payload: dict[str, Any]) -> None:
        if self.bus is None:
            return
        event = CallSignal(account_id=account_id, session_id=session, payload={**payload, "node": self.node})
        self._spawn(self.bus.publish(event))

    async def _listen(self) -> None:
        assert self._sub is not None
        async for event in self._sub:
            if not isinstance(event, CallSignal):  # the bus's Resync marker: see _resync
                self._sub.missed = False
                self._resync()
                continue
            try:
                self._on_signal(event)
            except Exception:
                log.exception("calls.bad_signal")

    def _resync(self) -> None:
        """The bus reconnected: signals published meanwhile are lost — a ring or an ICE candidate is
        not redelivered (the page calls again) — but sessions and presence are state, and are
        re-announced: a non-owner sends its sessions (the owner may have missed opens and closes),
        the owner asks every process for theirs; the owner's answer is the whole presence map."""
        if self.owner:
            self._publish(0, None, {"op": "sync"})
            self._publish_presence()
        else:
            self._announce()

    def _announce(self) -> None:
        sessions = [[s, a, self._account_ids.get(s, 0)] for s, a in self._accounts.items()]
        self._publish(0, None, {"op": "sessions", "sessions": sessions})

    def _publish_presence(self) -> None:
        snapshot = {a: p.value for a, p in self.switch.presences().items()}
        self._publish(0, None, {"op": "presence_all", "presence": snapshot})

    def _sessions_of(self, node: str, listed: object) -> None:
        """Owner: the sessions a process holds now (after a resync) replace what was known of it."""
        if not isinstance(listed, list):
            return
        now: dict[str, tuple[str, int]] = {}
        for item in listed:
            if isinstance(item, list) and len(item) == 3:
                s, account, account_id = item
                if isinstance(s, str) and s.startswith(node + ".") and isinstance(account, str):
                    now[s] = (account, account_id if isinstance(account_id, int) else 0)
        for s in [s for s, n in self._remote.items() if n == node and s not in now]:
            self._closed(s)  # its close was lost
            self._account_ids.pop(s, None)
        for s, (account, account_id) in now.items():
            if s not in self._remote:  # its open was lost
                self._remote_open(s, node, account, account_id)
        self._publish_presence()

    def _remote_open(self, session: str, node: str, account: str, account_id: int) -> None:
        self._remote[session] = node
        self._account_ids[session] = account_id
        self._handle(SessionOpened(session, account))

    def _on_signal(self, ev: CallSignal) -> None:
        p = ev.payload
        op, node, session = p.get("op"), p.get("node"), ev.session_id
        if node == self.node:
            return  # our own event, heard back from a networked bus
        if op == "presence_all":
            if not self.owner and isinstance(p.get("presence"), dict):
                self._presence = {
                    a: Presence(v)
                    for a, v in p["presence"].items()
                    if isinstance(a, str) and isinstance(v, str) and v in Presence._value2member_map_
                }
            return
        if op == "sync":
            if not self.owner:
                self._announce()
            return
        if op == "presence":
            if not self.owner:
                acct, pres = p.get("account"), p.get("presence")
                if isinstance(acct, str) and isinstance(pres, str) and pres in Presence._value2member_map_:
                    if pres == Presence.OFFLINE:
                        self._presence.pop(acct, None)
                    else:
                        self._presence[acct] = Presence(pres)
            return
        if op == "send":
            if session is not None and session in self._sinks and isinstance(p.get("message"), dict):
                self._deliver(session, p["message"])
            return
        if op == "sessions" and self.owner and isinstance(node, str):
            self._sessions_of(node, p.get("sessions"))
            return
        if not self.owner or not isinstance(session, str) or not isinstance(node, str):
            return
        if not session.startswith(node + "."):
            return  # a process speaks only for its own sessions
        if op == "open" and isinstance(p.get("account"), str):
            self._remote_open(session, node, p["account"], ev.account_id)
        elif op == "close" and session in self._remote:
            self._closed(session)
            self._account_ids.pop(session, None)
        elif op == "client" and session in self._remote:
            try:
                message = parse_client_message(p.get("message"))
            except ValueError:
                return
            self._client(session, message)


def _client_json(m: ClientMessage) -> dict[str, Any]:
    from suite.voip.messages import client_message_to_json

    return client_message_to_json(m)


def _candidate_json(c) -> dict[str, Any]:
    return {
        "candidate": c.candidate,
        "sdpMid": c.sdp_mid,
        "sdpMLineIndex": c.sdp_mline_index,
    }


# --- one hub per context (the gateway and the voip service meet here) -------------------


def hub_for(ctx: Context) -> CallHub:
    """The hub of this process for ``ctx`` (created on first use, started by the gateway)."""
    hub = ctx.call_hub
    if hub is None:
        from suite.voip.meeting_store import SqlMeetingRooms
        from suite.voip.store import SqlCallHistory

        st = ctx.settings
        policy = CallPolicy(ring_timeout=st.call_ring_timeout, voicemail=st.voicemail_enabled)
        hub = CallHub(
            history=SqlCallHistory(ctx.sessions),
            bus=ctx.bus,
            policy=policy,
            owner=st.call_switch_owner,
            meetings=SqlMeetingRooms(ctx.sessions),
        )
        ctx.call_hub = hub
    return hub
