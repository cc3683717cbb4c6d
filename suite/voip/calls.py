"""Sans-I/O call switch: signalling events in, commands out.

:class:`CallSwitch` holds the signalling state of one server (open sessions,
one-to-one calls, mesh rooms) and is driven by :meth:`CallSwitch.handle` with
typed events and the current time.  It never reads a clock, never touches a
socket: it returns :data:`Command` objects (send this message to that session,
record this history row, divert to voicemail, presence changed) that the
WebSocket gateway carries out.  The gateway calls :meth:`CallSwitch.tick` (or
``handle(Tick(), now)``) at :meth:`CallSwitch.next_deadline`.

Identities: a *session* is one open signalling WebSocket (an opaque id chosen
by the gateway); an *account* is the authenticated user behind it.  The
account of a session is only ever taken from :class:`SessionOpened`, never from
a client message.

One-to-one call life cycle (``CallState``)::

    inviting --ack--> ringing --accept--> accepted --hangup/disconnect--> ended
        \\               \\--> declined | busy | cancelled | timed_out | unavailable
         \\--> (same terminal states, and accepted without an ack)

Rules:

* Every open session of the callee rings (also sessions opened while it
  rings).  The first session to accept wins and is *bound* to the call with the
  caller's session; the others receive ``stop_ringing`` (answered elsewhere).
* Offer / answer / ICE messages are relayed only between the two bound
  sessions.  A third account gets ``unknown_call`` (the call's existence is
  not revealed), another session of a party gets ``not_allowed``; neither can
  read nor inject anything.
* An account is in at most one accepted call or room at a time.  A callee
  already in a call answers **busy**: there is no call waiting (a second
  incoming call would need the page to juggle two peer connections and hold
  semantics; busy is simple and predictable).  When an account enters a call,
  its other pending calls end (incoming: busy; outgoing: cancelled).
* A party of an accepted call may *add a person*: the switch asks the gateway
  for a meeting room with the caller as host (``CreateMeeting``); when it is
  made (``MeetingCreated``) both bound sessions get ``move_to_meeting`` with the
  room's link, the call ends (``moved``) and the added account rings with an
  *invitation call* (``incoming`` with ``meeting``): accepting it sends that
  session ``move_to_meeting`` and ends the invitation, declining or not
  answering ends it like any unanswered call (never voicemail). An invitation
  binds no session: the one who added may already be in the meeting.
* Unanswered calls time out after ``CallPolicy.ring_timeout`` seconds; with
  voicemail enabled the caller is diverted (``DivertToVoicemail``), and the
  callee gets a missed call in the history either way.
* Group calls are mesh rooms of at most ``CallPolicy.max_room_size`` sessions:
  the creator invites accounts, invitees join, a joiner sends an offer to each
  peer listed in ``room_joined``; room signalling is relayed by peer id, only
  between participants of the same room.
* Presence of an account: ``offline`` without sessions, ``in_call`` while one
  of its sessions is bound to an accepted call or sits in a room, else
  ``online``; a ``PresenceChanged`` command is emitted on every change.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeAlias

from suite.voip.history import CallOutcome, CallRecord
from suite.voip.messages import (
    MAX_ROOM_PARTICIPANTS,
    Accept,
    Accepted,
    AddPerson,
    Answer,
    Busy,
    CallEnded,
    Cancel,
    ClientMessage,
    Decline,
    Diverted,
    EndReason,
    ErrorCode,
    ErrorMessage,
    Hangup,
    Ice,
    Incoming,
    Invite,
    Media,
    MoveToMeeting,
    Offer,
    RelayedAnswer,
    RelayedIce,
    RelayedOffer,
    Ringing,
    RingingAck,
    RoomAnswer,
    RoomCreate,
    RoomIce,
    RoomInvite,
    RoomJoin,
    RoomJoined,
    RoomLeave,
    RoomLeft,
    RoomOffer,
    RoomPeer,
    RoomPeerJoined,
    RoomPeerLeft,
    RoomRelayedAnswer,
    RoomRelayedIce,
    RoomRelayedOffer,
    ServerMessage,
    StopReason,
    StopRinging,
)

# --- configuration --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallPolicy:
    ring_timeout: float = 30.0
    """Seconds a call may ring before it times out."""
    voicemail: bool = False
    """Divert unanswered (timed out / unavailable) calls to the voicemail agent."""
    max_room_size: int = MAX_ROOM_PARTICIPANTS
    recent_call_ids: int = 4096
    """How many finished call ids are remembered to refuse their reuse."""

    def __post_init__(self) -> None:
        if self.ring_timeout <= 0:
            raise ValueError("ring_timeout must be positive")
        if not 2 <= self.max_room_size <= MAX_ROOM_PARTICIPANTS:
            raise ValueError(f"max_room_size must be within 2..{MAX_ROOM_PARTICIPANTS}")


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionOpened:
    session: str
    account: str


@dataclass(frozen=True, slots=True)
class SessionClosed:
    session: str


@dataclass(frozen=True, slots=True)
class FromClient:
    """A validated client message (see ``messages.parse_client_message``)."""

    session: str
    message: ClientMessage


@dataclass(frozen=True, slots=True)
class MeetingCreated:
    """The gateway made the room a ``CreateMeeting`` asked for (``token`` None: it failed).

    ``invite_id`` is a fresh call id (from :mod:`secrets`) for the added person's invitation.
    """

    call_id: str
    token: str | None
    invite_id: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; expire what is due."""


Event: TypeAlias = SessionOpened | SessionClosed | FromClient | MeetingCreated | Tick


# --- commands -----------------------------------------------------------------------


class Presence(StrEnum):
    OFFLINE = "offline"
    ONLINE = "online"
    IN_CALL = "in_call"


@dataclass(frozen=True, slots=True)
class Send:
    session: str
    message: ServerMessage


@dataclass(frozen=True, slots=True)
class RecordCall:
    record: CallRecord


@dataclass(frozen=True, slots=True)
class DivertToVoicemail:
    """Start the voicemail agent for this caller session (it does its own SDP)."""

    call_id: str
    caller: str
    caller_session: str
    callee: str
    media: Media


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    account: str
    presence: Presence


@dataclass(frozen=True, slots=True)
class CreateMeeting:
    """Make a meeting room hosted by ``host`` and answer with :class:`MeetingCreated`."""

    call_id: str
    host: str
    title: str


Command: TypeAlias = Send | RecordCall | DivertToVoicemail | PresenceChanged | CreateMeeting


# --- state --------------------------------------------------------------------------


class CallState(StrEnum):
    INVITING = "inviting"
    RINGING = "ringing"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    BUSY = "busy"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    UNAVAILABLE = "unavailable"
    ENDED = "ended"


_PRE_ANSWER: Final = frozenset({CallState.INVITING, CallState.RINGING})
_UNANSWERED_END: Final = frozenset(
    {
        CallState.DECLINED,
        CallState.BUSY,
        CallState.CANCELLED,
        CallState.TIMED_OUT,
        CallState.UNAVAILABLE,
    }
)
TRANSITIONS: Final[dict[CallState, frozenset[CallState]]] = {
    CallState.INVITING: frozenset({CallState.RINGING, CallState.ACCEPTED}) | _UNANSWERED_END,
    CallState.RINGING: frozenset({CallState.ACCEPTED}) | _UNANSWERED_END,
    CallState.ACCEPTED: frozenset({CallState.ENDED}),
    **{s: frozenset() for s in _UNANSWERED_END | {CallState.ENDED}},
}

_OUTCOME: Final = {
    CallState.ENDED: CallOutcome.ANSWERED,
    CallState.DECLINED: CallOutcome.DECLINED,
    CallState.BUSY: CallOutcome.BUSY,
    CallState.CANCELLED: CallOutcome.MISSED,
    CallState.TIMED_OUT: CallOutcome.MISSED,
    CallState.UNAVAILABLE: CallOutcome.MISSED,
}


class IllegalTransition(RuntimeError):
    """A bug in the switch: a state change outside ``TRANSITIONS``."""


def transition(old: CallState, new: CallState) -> CallState:
    """``new`` if the life cycle allows ``old -> new``, else IllegalTransition."""
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old} -> {new}")
    return new


@dataclass(slots=True)
class _Call:
    call_id: str
    caller: str
    caller_session: str
    callee: str
    media: Media
    started_at: float
    deadline: float
    state: CallState = CallState.INVITING
    ringing: dict[str, None] = field(default_factory=dict)  # callee sessions ringing
    callee_session: str | None = None
    answered_at: float | None = None
    meeting: str | None = None  # an invitation to this room (link token): binds no session
    adding: str | None = None  # the account being added (a room is being made)
    adding_session: str | None = None

    def move(self, new: CallState) -> None:
        self.state = transition(self.state, new)

    def bound(self) -> tuple[str, ...]:
        if self.meeting is not None:
            return ()
        if self.callee_session is None:
            return (self.caller_session,)
        return (self.caller_session, self.callee_session)


@dataclass(slots=True)
class _Participant:
    session: str
    account: str
    peer_id: str


@dataclass(slots=True)
class _Room:
    room_id: str
    owner: str
    allowed: frozenset[str]
    participants: dict[str, _Participant] = field(default_factory=dict)  # by session
    next_peer: int = 1

    def by_peer(self, peer_id: str) -> _Participant | None:
        for p in self.participants.values():
            if p.peer_id == peer_id:
                return p
        return None


@dataclass(frozen=True, slots=True)
class CallView:
    """Read-only snapshot of a live call (for the gateway, admin pages, tests)."""

    call_id: str
    state: CallState
    caller: str
    callee: str
    caller_session: str
    callee_session: str | None
    ringing_sessions: tuple[str, ...]


class CallSwitch:
    """The signalling state machine; see the module docstring for the rules."""

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.policy = policy or CallPolicy()
        self._sessions: dict[str, str] = {}  # session -> account
        self._by_account: dict[str, dict[str, None]] = {}  # account -> sessions
        self._calls: dict[str, _Call] = {}  # live calls only
        self._session_call: dict[str, str] = {}  # bound session -> call id
        self._rooms: dict[str, _Room] = {}
        self._session_room: dict[str, str] = {}
        self._presence: dict[str, Presence] = {}
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self._out: list[Command] = []
        self._touched: dict[str, None] = {}

    # --- public API --------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Command]:
        """Apply one event at time ``now`` and return the commands to carry out."""
        self._out = []
        self._touched = {}
        match event:
            case SessionOpened(session=s, account=a):
                self._open(s, a, now)
            case SessionClosed(session=s):
                self._close(s, now)
            case FromClient(session=s, message=m):
                if s in self._sessions:
                    self._client(s, self._sessions[s], m, now)
            case MeetingCreated():
                self._meeting_created(event, now)
            case Tick():
                self._expire(now)
        self._emit_presence()
        out, self._out = self._out, []
        return out

    def tick(self, now: float) -> list[Command]:
        return self.handle(Tick(), now)

    def next_deadline(self) -> float | None:
        """When the gateway should next call :meth:`tick` (None: nothing pending)."""
        due = [c.deadline for c in self._calls.values() if c.state in _PRE_ANSWER]
        return min(due) if due else None

    def presences(self) -> dict[str, Presence]:
        """Every account that is not offline, with its presence (a snapshot)."""
        return dict(self._presence)

    def presence(self, account: str) -> Presence:
        sessions = self._by_account.get(account)
        if not sessions:
            return Presence.OFFLINE
        for s in sessions:
            if s in self._session_room:
                return Presence.IN_CALL
            cid = self._session_call.get(s)
            if cid is not None and self._calls[cid].state is CallState.ACCEPTED:
                return Presence.IN_CALL
        return Presence.ONLINE

    def sessions_of(self, account: str) -> tuple[str, ...]:
        return tuple(self._by_account.get(account, ()))

    def account_of(self, session: str) -> str | None:
        return self._sessions.get(session)

    def calls(self) -> list[CallView]:
        return [
            CallView(
                c.call_id,
                c.state,
                c.caller,
                c.callee,
                c.caller_session,
                c.callee_session,
                tuple(c.ringing),
            )
            for c in self._calls.values()
        ]

    def room_members(self, room_id: str) -> dict[str, str]:
        """session -> account of the participants of a room (empty if none)."""
        room = self._rooms.get(room_id)
        if room is None:
            return {}
        return {p.session: p.account for p in room.participants.values()}

    def room_peers(self, room_id: str) -> dict[str, str]:
        """session -> peer id of the participants of a room (empty if none)."""
        room = self._rooms.get(room_id)
        if room is None:
            return {}
        return {p.session: p.peer_id for p in room.participants.values()}

    def invariant_violations(self) -> list[str]:
        """Consistency checks of the internal state (empty list when sound)."""
        bad: list[str] = []
        for s, a in self._sessions.items():
            if s not in self._by_account.get(a, {}):
                bad.append(f"session {s} missing from its account index")
        for a, ss in self._by_account.items():
            if not ss:
                bad.append(f"empty session index for {a}")
            for s in ss:
                if self._sessions.get(s) != a:
                    bad.append(f"index of {a} lists foreign session {s}")
        busy_accounts: dict[str, int] = {}
        for cid, c in self._calls.items():
            if c.state not in _PRE_ANSWER and c.state is not CallState.ACCEPTED:
                bad.append(f"finished call {cid} still live")
            if (c.state is CallState.ACCEPTED) != (c.callee_session is not None):
                bad.append(f"call {cid} accepted/bound mismatch")
            if c.state is CallState.ACCEPTED and c.ringing:
                bad.append(f"accepted call {cid} still ringing")
            for s in c.bound():
                if self._session_call.get(s) != cid:
                    bad.append(f"call {cid} session {s} not bound")
                if s not in self._sessions:
                    bad.append(f"call {cid} bound to closed session {s}")
            caller_open = c.meeting is None or c.caller_session in self._sessions
            if caller_open and self._sessions.get(c.caller_session) != c.caller:
                bad.append(f"call {cid} caller session of another account")
            if c.callee_session is not None and self._sessions.get(c.callee_session) != c.callee:
                bad.append(f"call {cid} callee session of another account")
            for s in c.ringing:
                if self._sessions.get(s) != c.callee:
                    bad.append(f"call {cid} rings a session not of the callee")
            if c.state is CallState.ACCEPTED:
                for a in (c.caller, c.callee):
                    busy_accounts[a] = busy_accounts.get(a, 0) + 1
        for s, cid in self._session_call.items():
            if cid not in self._calls or s not in self._calls[cid].bound():
                bad.append(f"stale binding {s} -> {cid}")
            if s in self._session_room:
                bad.append(f"session {s} both in a call and a room")
        for rid, r in self._rooms.items():
            if not r.participants:
                bad.append(f"empty room {rid}")
            if len(r.participants) > self.policy.max_room_size:
                bad.append(f"room {rid} over capacity")
            accounts = [p.account for p in r.participants.values()]
            if len(set(accounts)) != len(accounts):
                bad.append(f"room {rid} has an account twice")
            for p in r.participants.values():
                if self._session_room.get(p.session) != rid:
                    bad.append(f"room {rid} member {p.session} not indexed")
                busy_accounts[p.account] = busy_accounts.get(p.account, 0) + 1
        for a, n in busy_accounts.items():
            if n > 1:
                bad.append(f"account {a} in {n} calls/rooms")
        return bad

    # --- helpers ------------------------------------------------------------------

    def _send(self, session: str, message: ServerMessage) -> None:
        self._out.append(Send(session, message))

    def _error(
        self,
        session: str,
        code: ErrorCode,
        detail: str,
        *,
        call_id: str | None = None,
        room_id: str | None = None,
    ) -> None:
        self._send(
            session,
            ErrorMessage(code=code, detail=detail, call_id=call_id, room_id=room_id),
        )

    def _touch(self, *accounts: str) -> None:
        for a in accounts:
            self._touched[a] = None

    def _emit_presence(self) -> None:
        for a in self._touched:
            now = self.presence(a)
            if self._presence.get(a, Presence.OFFLINE) is not now:
                self._out.append(PresenceChanged(a, now))
            if now is Presence.OFFLINE:
                self._presence.pop(a, None)
            else:
                self._presence[a] = now

    def _session_busy(self, session: str) -> bool:
        return session in self._session_call or session in self._session_room

    def _account_engaged(self, account: str) -> bool:
        """In an accepted call or a room (from any of its sessions)."""
        return self.presence(account) is Presence.IN_CALL

    def _remember_id(self, call_id: str) -> None:
        self._recent_ids[call_id] = None
        while len(self._recent_ids) > self.policy.recent_call_ids:
            self._recent_ids.popitem(last=False)

    def _finish(self, call: _Call, state: CallState, reason: EndReason, now: float) -> None:
        """Move ``call`` to a terminal state, unbind it and record its history row."""
        call.move(state)
        for s in call.bound():
            if self._session_call.get(s) == call.call_id:
                self._session_call.pop(s)
        call.ringing.clear()
        del self._calls[call.call_id]
        self._touch(call.caller, call.callee)
        diverted = False
        if state in (CallState.TIMED_OUT, CallState.UNAVAILABLE) and self._voicemail(call):
            diverted = True
            self._out.append(
                DivertToVoicemail(
                    call.call_id,
                    call.caller,
                    call.caller_session,
                    call.callee,
                    call.media,
                )
            )
        self._out.append(
            RecordCall(
                CallRecord(
                    call_id=call.call_id,
                    caller=call.caller,
                    callee=call.callee,
                    media=call.media,
                    outcome=_OUTCOME[state],
                    end_reason=reason,
                    started_at=call.started_at,
                    ended_at=now,
                    answered_at=call.answered_at,
                    voicemail=diverted,
                )
            )
        )

    def _stop_ringing(self, call: _Call, reason: StopReason, *, keep: str | None = None) -> None:
        for s in call.ringing:
            if s != keep:
                self._send(s, StopRinging(call_id=call.call_id, reason=reason))

    def _voicemail(self, call: _Call) -> bool:
        return self.policy.voicemail and call.meeting is None

    def _tell_caller_unanswered(self, call: _Call, reason: EndReason) -> None:
        if call.caller_session not in self._sessions:
            return  # an invitation's inviter who already left
        if reason in (EndReason.TIMEOUT, EndReason.UNAVAILABLE) and self._voicemail(call):
            self._send(call.caller_session, Diverted(call_id=call.call_id))
        else:
            self._send(call.caller_session, CallEnded(call_id=call.call_id, reason=reason))

    def _end_unanswered(
        self,
        call: _Call,
        state: CallState,
        reason: EndReason,
        stop: StopReason,
        now: float,
        *,
        tell_caller: bool = True,
        keep: str | None = None,
    ) -> None:
        self._stop_ringing(call, stop, keep=keep)
        if tell_caller:
            self._tell_caller_unanswered(call, reason)
        self._finish(call, state, reason, now)

    def _enter_call(self, account: str, now: float, *, except_call: str | None = None) -> None:
        """``account`` is now engaged: end its other pending calls."""
        for call in [c for c in self._calls.values() if c.state in _PRE_ANSWER]:
            if call.call_id == except_call:
                continue
            if call.callee == account:
                self._end_unanswered(call, CallState.BUSY, EndReason.BUSY, StopReason.BUSY, now)
            elif call.caller == account:
                self._end_unanswered(
                    call,
                    CallState.CANCELLED,
                    EndReason.CANCELLED,
                    StopReason.CANCELLED,
                    now,
                )

    def _party_call(self, session: str, account: str, call_id: str) -> _Call | None:
        """The live call ``call_id`` if ``account`` is a party to it, else an error."""
        call = self._calls.get(call_id)
        if call is None or account not in (call.caller, call.callee):
            # Never confirm the existence of other people's calls.
            self._error(session, ErrorCode.UNKNOWN_CALL, "no such call", call_id=call_id)
            return None
        return call

    # --- sessions -----------------------------------------------------------------

    def _open(self, session: str, account: str, now: float) -> None:
        known = self._sessions.get(session)
        if known is not None:
            if known != account:
                raise ValueError(f"session {session!r} already open for another account")
            return
        self._sessions[session] = account
        self._by_account.setdefault(account, {})[session] = None
        self._touch(account)
        # A session opened while a call to this account rings rings too.
        for call in self._calls.values():
            if call.callee == account and call.state in _PRE_ANSWER:
                call.ringing[session] = None
                self._send(session, _incoming(call))

    def _close(self, session: str, now: float) -> None:
        account = self._sessions.get(session)
        if account is None:
            return
        self._touch(account)
        cid = self._session_call.get(session)
        if cid is not None:
            call = self._calls[cid]
            if call.state is CallState.ACCEPTED:
                other = call.callee_session if session == call.caller_session else call.caller_session
                assert other is not None
                self._send(other, CallEnded(call_id=cid, reason=EndReason.DISCONNECTED))
                self._finish(call, CallState.ENDED, EndReason.DISCONNECTED, now)
            else:  # the caller went away while it rang
                self._end_unanswered(
                    call,
                    CallState.CANCELLED,
                    EndReason.CANCELLED,
                    StopReason.CANCELLED,
                    now,
                    tell_caller=False,
                )
        rid = self._session_room.get(session)
        if rid is not None:
            self._leave_room(session, rid, notify_self=False)
        del self._sessions[session]
        sessions = self._by_account[account]
        del sessions[session]
        if not sessions:
            del self._by_account[account]
        for call in list(self._calls.values()):
            if session in call.ringing:
                del call.ringing[session]
                if call.callee not in self._by_account:  # nobody left to ring
                    self._end_unanswered(
                        call,
                        CallState.UNAVAILABLE,
                        EndReason.UNAVAILABLE,
                        StopReason.UNAVAILABLE,
                        now,
                    )

    # --- client messages --------------------------------------------------------

    def _client(self, s: str, a: str, m: ClientMessage, now: float) -> None:
        match m:
            case Invite():
                self._invite(s, a, m, now)
            case RingingAck():
                self._ringing(s, a, m.call_id)
            case Accept():
                self._accept(s, a, m.call_id, now)
            case Decline():
                self._refuse(s, a, m.call_id, CallState.DECLINED, now)
            case Busy():
                self._refuse(s, a, m.call_id, CallState.BUSY, now)
            case Cancel():
                self._cancel(s, a, m.call_id, now)
            case Hangup():
                self._hangup(s, a, m.call_id, now)
            case Offer() | Answer() | Ice():
                self._relay(s, a, m)
            case AddPerson():
                self._add_person(s, a, m)
            case RoomCreate():
                self._room_create(s, a, m, now)
            case RoomJoin():
                self._room_join(s, a, m.room_id, now)
            case RoomLeave():
                if self._session_room.get(s) != m.room_id:
                    self._error(s, ErrorCode.UNKNOWN_ROOM, "not in this room", room_id=m.room_id)
                else:
                    self._leave_room(s, m.room_id, notify_self=True)
            case RoomOffer() | RoomAnswer() | RoomIce():
                self._room_relay(s, m)

    def _invite(self, s: str, a: str, m: Invite, now: float) -> None:
        cid = m.call_id
        if m.to == a:
            self._error(s, ErrorCode.SELF_CALL, "cannot call yourself", call_id=cid)
            return
        if cid in self._calls or cid in self._recent_ids:
            self._error(s, ErrorCode.CALL_ID_IN_USE, "call id already used", call_id=cid)
            return
        if self._session_busy(s) or self._account_engaged(a):
            self._error(s, ErrorCode.SESSION_BUSY, "already in a call", call_id=cid)
            return
        call = _Call(
            cid,
            a,
            s,
            m.to,
            m.media,
            started_at=now,
            deadline=now + self.policy.ring_timeout,
        )
        self._calls[cid] = call
        self._session_call[s] = cid
        self._ring(call, now)

    def _ring(self, call: _Call, now: float) -> None:
        """Ring every session of the callee of the new ``call`` (or end it: busy, unavailable)."""
        self._remember_id(call.call_id)
        self._touch(call.caller, call.callee)
        if self._account_engaged(call.callee):
            # No call waiting: a callee already in a call answers busy.
            self._end_unanswered(call, CallState.BUSY, EndReason.BUSY, StopReason.BUSY, now)
            return
        sessions = self._by_account.get(call.callee)
        if not sessions:
            self._end_unanswered(
                call,
                CallState.UNAVAILABLE,
                EndReason.UNAVAILABLE,
                StopReason.UNAVAILABLE,
                now,
            )
            return
        for callee_session in sessions:
            call.ringing[callee_session] = None
            self._send(callee_session, _incoming(call))

    def _ringing(self, s: str, a: str, cid: str) -> None:
        call = self._party_call(s, a, cid)
        if call is None:
            return
        if s not in call.ringing:
            self._error(s, ErrorCode.NOT_ALLOWED, "this session is not ringing", call_id=cid)
            return
        if call.state is CallState.INVITING:
            call.move(CallState.RINGING)
            if call.caller_session in self._sessions:
                self._send(call.caller_session, Ringing(call_id=cid))

    def _accept(self, s: str, a: str, cid: str, now: float) -> None:
        call = self._party_call(s, a, cid)
        if call is None:
            return
        if call.state is CallState.ACCEPTED:
            code = ErrorCode.INVALID_STATE if s in call.bound() else ErrorCode.NOT_ALLOWED
            self._error(s, code, "call already answered", call_id=cid)
            return
        if s not in call.ringing:
            self._error(s, ErrorCode.NOT_ALLOWED, "this session is not ringing", call_id=cid)
            return
        if call.meeting is not None:  # an invitation: this session goes to the meeting
            call.move(CallState.ACCEPTED)
            call.answered_at = now
            self._stop_ringing(call, StopReason.ANSWERED_ELSEWHERE, keep=s)
            self._send(s, _move(cid, call.meeting))
            self._finish(call, CallState.ENDED, EndReason.MOVED, now)
            return
        # Both accounts are now engaged: their other pending calls end first
        # (this also frees ``s`` if it was placing an outgoing call of its own).
        self._enter_call(call.caller, now, except_call=cid)
        self._enter_call(call.callee, now, except_call=cid)
        call.move(CallState.ACCEPTED)
        call.callee_session = s
        call.answered_at = now
        self._session_call[s] = cid
        self._stop_ringing(call, StopReason.ANSWERED_ELSEWHERE, keep=s)
        call.ringing.clear()
        self._send(call.caller_session, Accepted(call_id=cid, peer=call.callee))
        self._send(s, Accepted(call_id=cid, peer=call.caller))
        self._touch(call.caller, call.callee)

    def _refuse(self, s: str, a: str, cid: str, state: CallState, now: float) -> None:
        call = self._party_call(s, a, cid)
        if call is None:
            return
        if call.state not in _PRE_ANSWER:
            code = ErrorCode.INVALID_STATE if s in call.bound() else ErrorCode.NOT_ALLOWED
            self._error(s, code, "call already answered", call_id=cid)
            return
        if s not in call.ringing:
            self._error(s, ErrorCode.NOT_ALLOWED, "this session is not ringing", call_id=cid)
            return
        if state is CallState.DECLINED:
            self._end_unanswered(call, state, EndReason.DECLINED, StopReason.DECLINED, now, keep=s)
        else:
            self._end_unanswered(call, state, EndReason.BUSY, StopReason.BUSY, now, keep=s)

    def _cancel(self, s: str, a: str, cid: str, now: float) -> None:
        call = self._party_call(s, a, cid)
        if call is None:
            return
        if s != call.caller_session:
            self._error(
                s,
                ErrorCode.NOT_ALLOWED,
                "only the calling session may cancel",
                call_id=cid,
            )
            return
        if call.state not in _PRE_ANSWER:
            self._error(s, ErrorCode.INVALID_STATE, "call already answered", call_id=cid)
            return
        self._end_unanswered(
            call,
            CallState.CANCELLED,
            EndReason.CANCELLED,
            StopReason.CANCELLED,
            now,
            tell_caller=False,
        )
        self._send(s, CallEnded(call_id=cid, reason=EndReason.CANCELLED))

    def _hangup(self, s: str, a: str, cid: str, now: float) -> None:
        call = self._party_call(s, a, cid)
        if call is None:
            return
        if s not in call.bound():
            self._error(s, ErrorCode.NOT_ALLOWED, "this session is not in the call", call_id=cid)
            return
        if call.state is not CallState.ACCEPTED:
            self._error(s, ErrorCode.INVALID_STATE, "not answered yet: cancel it", call_id=cid)
            return
        for bound in call.bound():
            self._send(bound, CallEnded(call_id=cid, reason=EndReason.HANGUP))
        self._finish(call, CallState.ENDED, EndReason.HANGUP, now)

    def _relay(self, s: str, a: str, m: Offer | Answer | Ice) -> None:
        call = self._party_call(s, a, m.call_id)
        if call is None:
            return
        if s not in call.bound() or call.state is not CallState.ACCEPTED:
            if s in call.bound():
                self._error(
                    s,
                    ErrorCode.INVALID_STATE,
                    "call not answered yet",
                    call_id=call.call_id,
                )
            else:
                self._error(
                    s,
                    ErrorCode.NOT_ALLOWED,
                    "this session is not in the call",
                    call_id=call.call_id,
                )
            return
        target = call.callee_session if s == call.caller_session else call.caller_session
        assert target is not None
        match m:
            case Offer():
                self._send(target, RelayedOffer(call_id=m.call_id, sender=a, sdp=m.sdp))
            case Answer():
                self._send(target, RelayedAnswer(call_id=m.call_id, sender=a, sdp=m.sdp))
            case Ice():
                self._send(
                    target,
                    RelayedIce(call_id=m.call_id, sender=a, candidate=m.candidate),
                )

    # --- a call becomes a meeting ----------------------------------------------------

    def _add_person(self, s: str, a: str, m: AddPerson) -> None:
        call = self._party_call(s, a, m.call_id)
        if call is None:
            return
        if s not in call.bound():
            self._error(s, ErrorCode.NOT_ALLOWED, "this session is not in the call", call_id=call.call_id)
            return
        if call.state is not CallState.ACCEPTED or call.adding is not None:
            self._error(s, ErrorCode.INVALID_STATE, "not answered yet or already adding", call_id=call.call_id)
            return
        if m.to in (call.caller, call.callee):
            self._error(s, ErrorCode.SELF_CALL, "already in this call", call_id=call.call_id)
            return
        call.adding, call.adding_session = m.to, s
        title = f"Call of {call.caller} and {call.callee}"
        self._out.append(CreateMeeting(call.call_id, host=call.caller, title=title))

    def _meeting_created(self, ev: MeetingCreated, now: float) -> None:
        call = self._calls.get(ev.call_id)
        if call is None or call.state is not CallState.ACCEPTED or call.adding is None:
            return  # hung up meanwhile: the room stays unused
        adder, adder_session = call.adding, call.adding_session
        assert adder_session is not None
        call.adding = call.adding_session = None
        if ev.token is None:
            self._error(adder_session, ErrorCode.INVALID_STATE, "could not make a meeting", call_id=call.call_id)
            return
        for bound in call.bound():
            self._send(bound, _move(call.call_id, ev.token))
        self._finish(call, CallState.ENDED, EndReason.MOVED, now)
        if ev.invite_id in self._calls or ev.invite_id in self._recent_ids:
            return  # the gateway's fresh id is never in use; never ring twice under one id
        inviter = self._sessions.get(adder_session, call.caller)
        invitation = _Call(
            ev.invite_id,
            inviter,
            adder_session,
            adder,
            call.media,
            started_at=now,
            deadline=now + self.policy.ring_timeout,
            meeting=ev.token,
        )
        self._calls[invitation.call_id] = invitation
        self._ring(invitation, now)

    # --- timeouts -----------------------------------------------------------------

    def _expire(self, now: float) -> None:
        for call in [c for c in self._calls.values() if c.state in _PRE_ANSWER]:
            if call.deadline <= now:
                self._end_unanswered(
                    call,
                    CallState.TIMED_OUT,
                    EndReason.TIMEOUT,
                    StopReason.TIMEOUT,
                    now,
                )

    # --- rooms -----------------------------------------------------------------------

    def _room_create(self, s: str, a: str, m: RoomCreate, now: float) -> None:
        rid = m.room_id
        if rid in self._rooms:
            self._error(s, ErrorCode.ROOM_ID_IN_USE, "room id already used", room_id=rid)
            return
        if self._account_engaged(a):
            self._error(s, ErrorCode.SESSION_BUSY, "already in a call", room_id=rid)
            return
        invitees = tuple(dict.fromkeys(x for x in m.invite if x != a))
        self._rooms[rid] = _Room(rid, a, frozenset((a, *invitees)))
        self._join(s, a, self._rooms[rid], now)
        for invitee in invitees:
            for target in self._by_account.get(invitee, ()):
                self._send(target, RoomInvite(room_id=rid, inviter=a))

    def _room_join(self, s: str, a: str, rid: str, now: float) -> None:
        room = self._rooms.get(rid)
        if room is None or a not in room.allowed:
            self._error(s, ErrorCode.UNKNOWN_ROOM, "no such room", room_id=rid)
            return
        if any(p.account == a for p in room.participants.values()):
            self._error(
                s,
                ErrorCode.ALREADY_IN_ROOM,
                "account already in this room",
                room_id=rid,
            )
            return
        if self._account_engaged(a):
            self._error(s, ErrorCode.SESSION_BUSY, "already in a call", room_id=rid)
            return
        if len(room.participants) >= self.policy.max_room_size:
            self._error(s, ErrorCode.ROOM_FULL, "room full", room_id=rid)
            return
        self._join(s, a, room, now)

    def _join(self, s: str, a: str, room: _Room, now: float) -> None:
        # Joining a room engages the account: its pending calls end first (also
        # an outgoing call this very session was placing).
        self._enter_call(a, now)
        peer = _Participant(s, a, f"p{room.next_peer}")
        room.next_peer += 1
        peers = tuple(RoomPeer(p.peer_id, p.account) for p in room.participants.values())
        for p in room.participants.values():
            self._send(
                p.session,
                RoomPeerJoined(room_id=room.room_id, peer=RoomPeer(peer.peer_id, a)),
            )
        room.participants[s] = peer
        self._session_room[s] = room.room_id
        self._send(s, RoomJoined(room_id=room.room_id, peer_id=peer.peer_id, peers=peers))
        self._touch(a)

    def _leave_room(self, s: str, rid: str, *, notify_self: bool) -> None:
        room = self._rooms[rid]
        peer = room.participants.pop(s)
        del self._session_room[s]
        self._touch(peer.account)
        if notify_self:
            self._send(s, RoomLeft(room_id=rid))
        for p in room.participants.values():
            self._send(p.session, RoomPeerLeft(room_id=rid, peer_id=peer.peer_id))
        if not room.participants:
            del self._rooms[rid]

    def _room_relay(self, s: str, m: RoomOffer | RoomAnswer | RoomIce) -> None:
        rid = m.room_id
        if self._session_room.get(s) != rid:
            self._error(s, ErrorCode.UNKNOWN_ROOM, "not in this room", room_id=rid)
            return
        room = self._rooms[rid]
        sender = room.participants[s]
        target = room.by_peer(m.to)
        if target is None or target.session == s:
            self._error(s, ErrorCode.UNKNOWN_PEER, "no such peer in this room", room_id=rid)
            return
        match m:
            case RoomOffer():
                self._send(
                    target.session,
                    RoomRelayedOffer(room_id=rid, sender=sender.peer_id, sdp=m.sdp),
                )
            case RoomAnswer():
                self._send(
                    target.session,
                    RoomRelayedAnswer(room_id=rid, sender=sender.peer_id, sdp=m.sdp),
                )
            case RoomIce():
                self._send(
                    target.session,
                    RoomRelayedIce(room_id=rid, sender=sender.peer_id, candidate=m.candidate),
                )


def _incoming(call: _Call) -> Incoming:
    return Incoming(call_id=call.call_id, caller=call.caller, media=call.media, meeting=call.meeting)


def _move(call_id: str, token: str) -> MoveToMeeting:
    return MoveToMeeting(call_id=call_id, token=token, url=f"/m/{token}")


def sends(commands: Iterable[Command]) -> Iterator[Send]:
    """The ``Send`` commands of a batch (helper for the gateway and tests)."""
    return (c for c in commands if isinstance(c, Send))
