"""Call switch: life cycle, multi-session ringing, relay isolation, rooms, presence."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from suite.voip.calls import (
    TRANSITIONS,
    CallPolicy,
    CallState,
    CallSwitch,
    Command,
    CreateMeeting,
    DivertToVoicemail,
    FromClient,
    IllegalTransition,
    MeetingCreated,
    Presence,
    PresenceChanged,
    RecordCall,
    Send,
    SessionClosed,
    SessionOpened,
    Tick,
    transition,
)
from suite.voip.history import CallOutcome, CallRecord
from suite.voip.messages import (
    CLIENT_TYPES,
    MAX_FRAME_BYTES,
    MAX_SDP_CHARS,
    Accepted,
    CallEnded,
    ClientMessageError,
    Diverted,
    EndReason,
    ErrorCode,
    ErrorMessage,
    Incoming,
    MoveToMeeting,
    RelayedAnswer,
    RelayedIce,
    RelayedOffer,
    Ringing,
    RoomJoined,
    RoomPeerJoined,
    RoomPeerLeft,
    RoomRelayedAnswer,
    RoomRelayedIce,
    RoomRelayedOffer,
    StopReason,
    StopRinging,
    client_json_schema,
    decode_client_frame,
    parse_client_message,
    server_json_schema,
    server_message_to_json,
)

T0 = 1_700_000_000.0
SDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CAND = {
    "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "sdpMid": "0",
}
CALL = "call-0001"


class Harness:
    """Drives a CallSwitch with JSON messages, checking invariants each step."""

    def __init__(self, policy: CallPolicy | None = None) -> None:
        self.sw = CallSwitch(policy or CallPolicy(ring_timeout=30))
        self.now = T0

    def _run(self, event: Any) -> list[Command]:
        out = self.sw.handle(event, self.now)
        assert self.sw.invariant_violations() == []
        return out

    def open(self, session: str, account: str) -> list[Command]:
        return self._run(SessionOpened(session, account))

    def close(self, session: str) -> list[Command]:
        return self._run(SessionClosed(session))

    def msg(self, session: str, **fields: Any) -> list[Command]:
        # Through the real edge: JSON text -> validated dataclass.
        message = decode_client_frame(json.dumps(fields))
        return self._run(FromClient(session, message))

    def tick(self, seconds: float) -> list[Command]:
        self.now += seconds
        return self._run(Tick())


def to(cmds: list[Command], session: str) -> list[Any]:
    return [c.message for c in cmds if isinstance(c, Send) and c.session == session]


def targets(cmds: list[Command]) -> set[str]:
    return {c.session for c in cmds if isinstance(c, Send)}


def records(cmds: list[Command]) -> list[CallRecord]:
    return [c.record for c in cmds if isinstance(c, RecordCall)]


def presence(cmds: list[Command]) -> dict[str, Presence]:
    return {c.account: c.presence for c in cmds if isinstance(c, PresenceChanged)}


def error_code(cmds: list[Command], session: str) -> ErrorCode:
    (err,) = to(cmds, session)
    assert isinstance(err, ErrorMessage)
    assert targets(cmds) == {session}  # an error goes to the offender only
    return err.code


def state(h: Harness, call_id: str = CALL) -> CallState | None:
    for view in h.sw.calls():
        if view.call_id == call_id:
            return view.state
    return None


@pytest.fixture
def h() -> Harness:
    """alice on a1; bob on b1, b2, b3; carol on c1."""
    h = Harness()
    h.open("a1", "alice")
    for s in ("b1", "b2", "b3"):
        h.open(s, "bob")
    h.open("c1", "carol")
    return h


def ringing_call(h: Harness) -> list[Command]:
    return h.msg("a1", type="invite", call_id=CALL, to="bob", media="video")


def accepted_call(h: Harness, by: str = "b2") -> list[Command]:
    ringing_call(h)
    return h.msg(by, type="accept", call_id=CALL)


# --- life cycle ------------------------------------------------------------------


def test_invite_rings_every_open_session_of_the_callee(h: Harness) -> None:
    out = ringing_call(h)
    assert targets(out) == {"b1", "b2", "b3"}
    for s in ("b1", "b2", "b3"):
        assert to(out, s) == [Incoming(call_id=CALL, caller="alice", media="video")]
    assert state(h) is CallState.INVITING
    assert records(out) == []


def test_ringing_ack_reaches_the_caller_once(h: Harness) -> None:
    ringing_call(h)
    out = h.msg("b1", type="ringing", call_id=CALL)
    assert to(out, "a1") == [Ringing(call_id=CALL)] and targets(out) == {"a1"}
    assert state(h) is CallState.RINGING
    assert h.msg("b3", type="ringing", call_id=CALL) == []
    assert state(h) is CallState.RINGING


def test_three_sessions_ring_first_accept_wins_others_stop(h: Harness) -> None:
    ringing_call(h)
    h.msg("b1", type="ringing", call_id=CALL)
    out = h.msg("b2", type="accept", call_id=CALL)
    assert to(out, "a1") == [Accepted(call_id=CALL, peer="bob")]
    assert to(out, "b2") == [Accepted(call_id=CALL, peer="alice")]
    for other in ("b1", "b3"):
        assert to(out, other) == [StopRinging(call_id=CALL, reason=StopReason.ANSWERED_ELSEWHERE)]
    assert targets(out) == {"a1", "b1", "b2", "b3"}
    assert presence(out) == {"alice": Presence.IN_CALL, "bob": Presence.IN_CALL}
    (view,) = h.sw.calls()
    assert (view.state, view.caller_session, view.callee_session) == (
        CallState.ACCEPTED,
        "a1",
        "b2",
    )
    # The late one is refused; the binding does not change.
    assert error_code(h.msg("b3", type="accept", call_id=CALL), "b3") is ErrorCode.NOT_ALLOWED
    assert h.sw.calls()[0].callee_session == "b2"


def test_accept_without_ringing_ack_is_allowed(h: Harness) -> None:
    ringing_call(h)
    h.msg("b3", type="accept", call_id=CALL)
    assert state(h) is CallState.ACCEPTED


def test_decline_ends_the_call_everywhere(h: Harness) -> None:
    ringing_call(h)
    h.msg("b1", type="ringing", call_id=CALL)
    out = h.msg("b1", type="decline", call_id=CALL)
    assert to(out, "a1") == [CallEnded(call_id=CALL, reason=EndReason.DECLINED)]
    assert to(out, "b2") == to(out, "b3") == [StopRinging(call_id=CALL, reason=StopReason.DECLINED)]
    assert to(out, "b1") == []
    (rec,) = records(out)
    assert (rec.outcome, rec.end_reason, rec.caller, rec.callee) == (
        CallOutcome.DECLINED,
        EndReason.DECLINED,
        "alice",
        "bob",
    )
    assert not rec.missed_for("bob") and h.sw.calls() == []


def test_callee_session_answers_busy(h: Harness) -> None:
    ringing_call(h)
    out = h.msg("b3", type="busy", call_id=CALL)
    assert to(out, "a1") == [CallEnded(call_id=CALL, reason=EndReason.BUSY)]
    assert to(out, "b1") == [StopRinging(call_id=CALL, reason=StopReason.BUSY)]
    (rec,) = records(out)
    assert rec.outcome is CallOutcome.BUSY and rec.missed_for("bob")


def test_callee_already_in_a_call_answers_busy_without_ringing(h: Harness) -> None:
    accepted_call(h)
    out = h.msg("c1", type="invite", call_id="call-0002", to="bob")
    assert targets(out) == {"c1"}  # bob's sessions never ring: no call waiting
    assert to(out, "c1") == [CallEnded(call_id="call-0002", reason=EndReason.BUSY)]
    (rec,) = records(out)
    assert (rec.caller, rec.callee, rec.outcome) == ("carol", "bob", CallOutcome.BUSY)
    assert rec.missed_for("bob") and not rec.missed_for("carol")
    assert state(h) is CallState.ACCEPTED  # the running call is untouched


def test_cancel_during_ringing_records_a_missed_call(h: Harness) -> None:
    ringing_call(h)
    h.msg("b2", type="ringing", call_id=CALL)
    h.now += 4
    out = h.msg("a1", type="cancel", call_id=CALL)
    for s in ("b1", "b2", "b3"):
        assert to(out, s) == [StopRinging(call_id=CALL, reason=StopReason.CANCELLED)]
    assert to(out, "a1") == [CallEnded(call_id=CALL, reason=EndReason.CANCELLED)]
    (rec,) = records(out)
    assert rec.outcome is CallOutcome.MISSED and rec.end_reason is EndReason.CANCELLED
    assert rec.missed_for("bob") and rec.duration == 0.0
    assert (rec.started_at, rec.ended_at, rec.answered_at) == (T0, T0 + 4, None)


def test_timeout_without_voicemail(h: Harness) -> None:
    ringing_call(h)
    assert h.sw.next_deadline() == T0 + 30
    assert h.tick(29.5) == []
    out = h.tick(0.5)
    assert to(out, "a1") == [CallEnded(call_id=CALL, reason=EndReason.TIMEOUT)]
    for s in ("b1", "b2", "b3"):
        assert to(out, s) == [StopRinging(call_id=CALL, reason=StopReason.TIMEOUT)]
    assert not any(isinstance(c, DivertToVoicemail) for c in out)
    (rec,) = records(out)
    assert rec.outcome is CallOutcome.MISSED and rec.end_reason is EndReason.TIMEOUT
    assert not rec.voicemail and rec.ended_at == T0 + 30
    assert h.sw.next_deadline() is None and h.tick(100) == []


def test_timeout_diverts_to_voicemail_when_enabled() -> None:
    h = Harness(CallPolicy(ring_timeout=20, voicemail=True))
    h.open("a1", "alice")
    h.open("b1", "bob")
    ringing_call(h)
    out = h.tick(20)
    assert to(out, "a1") == [Diverted(call_id=CALL)]
    assert to(out, "b1") == [StopRinging(call_id=CALL, reason=StopReason.TIMEOUT)]
    assert [c for c in out if isinstance(c, DivertToVoicemail)] == [
        DivertToVoicemail(CALL, "alice", "a1", "bob", "video")
    ]
    (rec,) = records(out)
    assert rec.voicemail and rec.missed_for("bob") and rec.end_reason is EndReason.TIMEOUT


@pytest.mark.parametrize("voicemail", [False, True])
def test_offline_callee_is_unavailable(voicemail: bool) -> None:
    h = Harness(CallPolicy(voicemail=voicemail))
    h.open("a1", "alice")
    out = h.msg("a1", type="invite", call_id=CALL, to="dave")
    expected = Diverted(call_id=CALL) if voicemail else CallEnded(call_id=CALL, reason=EndReason.UNAVAILABLE)
    assert to(out, "a1") == [expected]
    assert any(isinstance(c, DivertToVoicemail) for c in out) is voicemail
    (rec,) = records(out)
    assert rec.end_reason is EndReason.UNAVAILABLE and rec.missed_for("dave")
    assert rec.voicemail is voicemail


def test_session_opened_while_ringing_rings_too(h: Harness) -> None:
    ringing_call(h)
    out = h.open("b4", "bob")
    assert to(out, "b4") == [Incoming(call_id=CALL, caller="alice", media="video")]
    out = h.msg("b4", type="accept", call_id=CALL)
    assert to(out, "b1") == [StopRinging(call_id=CALL, reason=StopReason.ANSWERED_ELSEWHERE)]


@pytest.mark.parametrize("who", ["a1", "b2"])
def test_hangup_from_either_side(h: Harness, who: str) -> None:
    accepted_call(h)
    h.now += 42
    out = h.msg(who, type="hangup", call_id=CALL)
    assert to(out, "a1") == to(out, "b2") == [CallEnded(call_id=CALL, reason=EndReason.HANGUP)]
    assert targets(out) == {"a1", "b2"}
    (rec,) = records(out)
    assert rec.outcome is CallOutcome.ANSWERED and rec.duration == 42
    assert not rec.missed_for("bob")
    assert presence(out) == {"alice": Presence.ONLINE, "bob": Presence.ONLINE}
    assert h.sw.calls() == []


@pytest.mark.parametrize("gone", ["a1", "b2"])
def test_disconnect_of_a_session_in_a_call_ends_it(h: Harness, gone: str) -> None:
    accepted_call(h)
    out = h.close(gone)
    other = "b2" if gone == "a1" else "a1"
    assert to(out, other) == [CallEnded(call_id=CALL, reason=EndReason.DISCONNECTED)]
    assert targets(out) == {other}
    (rec,) = records(out)
    assert rec.outcome is CallOutcome.ANSWERED and rec.end_reason is EndReason.DISCONNECTED
    assert h.sw.calls() == []


def test_caller_disconnect_while_ringing_cancels(h: Harness) -> None:
    ringing_call(h)
    out = h.close("a1")
    assert targets(out) == {"b1", "b2", "b3"}
    (rec,) = records(out)
    assert rec.end_reason is EndReason.CANCELLED and rec.missed_for("bob")
    assert presence(out) == {"alice": Presence.OFFLINE}


def test_callee_sessions_all_disconnecting_makes_call_unavailable(h: Harness) -> None:
    ringing_call(h)
    assert h.close("b1") == [] and h.close("b2") == []
    assert state(h) is CallState.INVITING  # b3 still rings
    out = h.close("b3")
    assert to(out, "a1") == [CallEnded(call_id=CALL, reason=EndReason.UNAVAILABLE)]
    assert records(out)[0].end_reason is EndReason.UNAVAILABLE


def test_accepting_a_call_ends_the_accounts_other_pending_calls(h: Harness) -> None:
    ringing_call(h)
    h.msg("c1", type="invite", call_id="call-0002", to="bob")
    h.open("d1", "dave")
    h.msg("b1", type="invite", call_id="call-0003", to="dave")  # bob calls dave too
    out = h.msg("b2", type="accept", call_id=CALL)
    assert to(out, "c1") == [CallEnded(call_id="call-0002", reason=EndReason.BUSY)]
    assert StopRinging(call_id="call-0002", reason=StopReason.BUSY) in to(out, "b3")
    assert to(out, "d1") == [StopRinging(call_id="call-0003", reason=StopReason.CANCELLED)]
    assert CallEnded(call_id="call-0003", reason=EndReason.CANCELLED) in to(out, "b1")
    assert {r.call_id: r.outcome for r in records(out)} == {
        "call-0002": CallOutcome.BUSY,
        "call-0003": CallOutcome.MISSED,
    }
    assert [v.call_id for v in h.sw.calls()] == [CALL]


# --- a call becomes a meeting ------------------------------------------------------

TOKEN = "t" * 24
INVITE = "invite-0001"


def meeting_made(h: Harness, token: str | None = TOKEN) -> list[Command]:
    h.now += 1
    return h._run(MeetingCreated(CALL, token, INVITE))


def test_adding_a_person_moves_both_parties_and_rings_the_third(h: Harness) -> None:
    accepted_call(h)
    out = h.msg("b2", type="add_person", call_id=CALL, to="carol")
    assert out == [CreateMeeting(CALL, host="alice", title="Call of alice and bob")]  # the caller hosts
    assert state(h) is CallState.ACCEPTED  # still talking while the room is made
    out = meeting_made(h)
    move = MoveToMeeting(call_id=CALL, token=TOKEN, url=f"/m/{TOKEN}")
    assert to(out, "a1") == to(out, "b2") == [move]
    assert to(out, "c1") == [Incoming(call_id=INVITE, caller="bob", media="video", meeting=TOKEN)]
    assert targets(out) == {"a1", "b2", "c1"}
    (rec,) = records(out)
    assert rec.call_id == CALL and rec.end_reason is EndReason.MOVED and rec.outcome is CallOutcome.ANSWERED
    assert state(h) is None and state(h, INVITE) is CallState.INVITING
    # the one who added is in the meeting now: the invitation ringing does not keep it busy
    assert h.sw.presence("bob") is Presence.ONLINE
    h.close("b2")  # ... and may even close its signalling socket: carol still rings
    h.msg("c1", type="ringing", call_id=INVITE)
    h.open("c2", "carol")
    out = h.msg("c2", type="accept", call_id=INVITE)
    assert to(out, "c2") == [MoveToMeeting(call_id=INVITE, token=TOKEN, url=f"/m/{TOKEN}")]
    assert to(out, "c1") == [StopRinging(call_id=INVITE, reason=StopReason.ANSWERED_ELSEWHERE)]
    (rec,) = records(out)
    assert (rec.caller, rec.callee, rec.end_reason) == ("bob", "carol", EndReason.MOVED)
    assert h.sw.calls() == [] and h.sw.presence("carol") is Presence.ONLINE


def test_an_unanswered_invitation_is_missed_never_voicemail() -> None:
    h = Harness(CallPolicy(ring_timeout=30, voicemail=True))
    for s, a in (("a1", "alice"), ("b2", "bob"), ("c1", "carol")):
        h.open(s, a)
    accepted_call(h)
    h.msg("a1", type="add_person", call_id=CALL, to="carol")
    meeting_made(h)
    out = h.tick(31)
    assert to(out, "a1") == [CallEnded(call_id=INVITE, reason=EndReason.TIMEOUT)]
    assert not [c for c in out if isinstance(c, DivertToVoicemail)]
    assert records(out)[0].missed_for("carol")
    # declined, with the inviter gone: nothing is sent to a closed session
    h.msg("a1", type="add_person", call_id=CALL, to="carol")  # the call is over
    h.open("a2", "alice")
    h.msg("a2", type="invite", call_id="call-0002", to="bob")
    h.msg("b2", type="accept", call_id="call-0002")
    h.msg("a2", type="add_person", call_id="call-0002", to="carol")
    h._run(MeetingCreated("call-0002", TOKEN, "invite-0002"))
    h.close("a2")
    out = h.msg("c1", type="decline", call_id="invite-0002")
    assert targets(out) == set() and records(out)[0].outcome is CallOutcome.DECLINED


def test_add_person_refusals(h: Harness) -> None:
    ringing_call(h)
    assert error_code(h.msg("a1", type="add_person", call_id=CALL, to="carol"), "a1") is ErrorCode.INVALID_STATE
    h.msg("b2", type="accept", call_id=CALL)
    assert error_code(h.msg("c1", type="add_person", call_id=CALL, to="dave"), "c1") is ErrorCode.UNKNOWN_CALL
    assert error_code(h.msg("b1", type="add_person", call_id=CALL, to="dave"), "b1") is ErrorCode.NOT_ALLOWED
    assert error_code(h.msg("a1", type="add_person", call_id=CALL, to="bob"), "a1") is ErrorCode.SELF_CALL
    assert len(h.msg("a1", type="add_person", call_id=CALL, to="carol")) == 1
    assert error_code(h.msg("b2", type="add_person", call_id=CALL, to="dave"), "b2") is ErrorCode.INVALID_STATE
    # the room could not be made: the one who asked is told, the call goes on and may try again
    out = meeting_made(h, token=None)
    assert error_code(out, "a1") is ErrorCode.INVALID_STATE and state(h) is CallState.ACCEPTED
    assert len(h.msg("a1", type="add_person", call_id=CALL, to="carol")) == 1
    # hung up while the room was made: nobody moves, nobody rings
    h.msg("b2", type="hangup", call_id=CALL)
    assert meeting_made(h) == []


def test_a_busy_third_person_is_not_rung(h: Harness) -> None:
    accepted_call(h)
    h.open("d1", "dave")
    h.msg("c1", type="invite", call_id="call-0002", to="dave")
    h.msg("d1", type="accept", call_id="call-0002")
    h.msg("a1", type="add_person", call_id=CALL, to="carol")
    out = meeting_made(h)
    assert to(out, "c1") == []
    assert to(out, "a1") == [
        MoveToMeeting(call_id=CALL, token=TOKEN, url=f"/m/{TOKEN}"),
        CallEnded(call_id=INVITE, reason=EndReason.BUSY),
    ]


# --- illegal transitions -------------------------------------------------------


def test_transition_table_allows_exactly_the_documented_moves() -> None:
    terminal = {
        CallState.DECLINED,
        CallState.BUSY,
        CallState.CANCELLED,
        CallState.TIMED_OUT,
        CallState.UNAVAILABLE,
        CallState.ENDED,
    }
    for old in CallState:
        for new in CallState:
            if new in TRANSITIONS[old]:
                assert transition(old, new) is new
            else:
                with pytest.raises(IllegalTransition):
                    transition(old, new)
    assert all(not TRANSITIONS[s] for s in terminal)
    assert TRANSITIONS[CallState.ACCEPTED] == {CallState.ENDED}
    assert CallState.ENDED not in TRANSITIONS[CallState.RINGING]


ILLEGAL = [
    # (setup, session, message type, expected error)
    ("ringing", "a1", "accept", ErrorCode.NOT_ALLOWED),  # caller cannot accept
    ("ringing", "a1", "decline", ErrorCode.NOT_ALLOWED),
    ("ringing", "a1", "ringing", ErrorCode.NOT_ALLOWED),
    ("ringing", "b1", "cancel", ErrorCode.NOT_ALLOWED),  # only the caller session
    ("ringing", "a1", "hangup", ErrorCode.INVALID_STATE),  # use cancel
    ("ringing", "b1", "hangup", ErrorCode.NOT_ALLOWED),
    ("ringing", "a1", "offer", ErrorCode.INVALID_STATE),  # no SDP before accept
    ("ringing", "b1", "offer", ErrorCode.NOT_ALLOWED),
    ("ringing", "c1", "accept", ErrorCode.UNKNOWN_CALL),  # a stranger
    ("ringing", "c1", "cancel", ErrorCode.UNKNOWN_CALL),
    ("accepted", "b2", "accept", ErrorCode.INVALID_STATE),
    ("accepted", "b1", "accept", ErrorCode.NOT_ALLOWED),
    ("accepted", "b2", "decline", ErrorCode.INVALID_STATE),
    ("accepted", "b1", "decline", ErrorCode.NOT_ALLOWED),
    ("accepted", "a1", "cancel", ErrorCode.INVALID_STATE),
    ("accepted", "b1", "hangup", ErrorCode.NOT_ALLOWED),  # another session of bob
    ("accepted", "b2", "ringing", ErrorCode.NOT_ALLOWED),
    ("accepted", "c1", "hangup", ErrorCode.UNKNOWN_CALL),
    ("ended", "b2", "hangup", ErrorCode.UNKNOWN_CALL),
    ("ended", "b2", "accept", ErrorCode.UNKNOWN_CALL),
    ("ended", "a1", "cancel", ErrorCode.UNKNOWN_CALL),
    ("ended", "a1", "offer", ErrorCode.UNKNOWN_CALL),
]


@pytest.mark.parametrize(("setup", "session", "kind", "code"), ILLEGAL)
def test_illegal_moves_get_an_error_and_change_nothing(
    h: Harness, setup: str, session: str, kind: str, code: ErrorCode
) -> None:
    if setup == "ringing":
        ringing_call(h)
    else:
        accepted_call(h)
        if setup == "ended":
            h.msg("a1", type="hangup", call_id=CALL)
    before = h.sw.calls()
    fields: dict[str, Any] = {"type": kind, "call_id": CALL}
    if kind == "offer":
        fields["sdp"] = SDP
    out = h.msg(session, **fields)
    assert error_code(out, session) is code
    assert to(out, session)[0].call_id == CALL
    assert h.sw.calls() == before


def test_invite_refusals(h: Harness) -> None:
    assert error_code(h.msg("a1", type="invite", call_id=CALL, to="alice"), "a1") is ErrorCode.SELF_CALL
    accepted_call(h)
    out = h.msg("a1", type="invite", call_id="call-0009", to="carol")
    assert error_code(out, "a1") is ErrorCode.SESSION_BUSY
    h.open("a2", "alice")  # another session of an account already in a call
    assert error_code(h.msg("a2", type="invite", call_id="call-0009", to="carol"), "a2") is ErrorCode.SESSION_BUSY
    out = h.msg("c1", type="invite", call_id=CALL, to="alice")  # live id
    assert error_code(out, "c1") is ErrorCode.CALL_ID_IN_USE
    h.msg("a1", type="hangup", call_id=CALL)
    out = h.msg("c1", type="invite", call_id=CALL, to="alice")  # finished id
    assert error_code(out, "c1") is ErrorCode.CALL_ID_IN_USE


def test_messages_from_unknown_sessions_are_ignored(h: Harness) -> None:
    ringing_call(h)
    assert (
        h.sw.handle(
            FromClient("ghost", parse_client_message({"type": "accept", "call_id": CALL})),
            T0,
        )
        == []
    )
    assert h.close("ghost") == []
    assert state(h) is CallState.INVITING


def test_reopening_a_session_for_another_account_is_a_gateway_bug(h: Harness) -> None:
    assert h.open("a1", "alice") == []
    with pytest.raises(ValueError):
        h.sw.handle(SessionOpened("a1", "mallory"), T0)


# --- relay isolation -------------------------------------------------------------


def test_offer_answer_ice_flow_only_between_the_bound_sessions(h: Harness) -> None:
    accepted_call(h)
    out = h.msg("a1", type="offer", call_id=CALL, sdp=SDP)
    assert out == [Send("b2", RelayedOffer(call_id=CALL, sender="alice", sdp=SDP))]
    out = h.msg("b2", type="answer", call_id=CALL, sdp=SDP)
    assert out == [Send("a1", RelayedAnswer(call_id=CALL, sender="bob", sdp=SDP))]
    out = h.msg("b2", type="ice", call_id=CALL, candidate=CAND)
    assert targets(out) == {"a1"}
    (ice,) = to(out, "a1")
    assert isinstance(ice, RelayedIce) and ice.candidate.candidate == CAND["candidate"]
    assert server_message_to_json(ice)["candidate"]["sdpMid"] == "0"
    out = h.msg("a1", type="ice", call_id=CALL, candidate={"candidate": ""})  # end of candidates
    assert targets(out) == {"b2"}


def test_third_account_cannot_inject_ice(h: Harness) -> None:
    accepted_call(h)
    out = h.msg("c1", type="ice", call_id=CALL, candidate=CAND)
    assert error_code(out, "c1") is ErrorCode.UNKNOWN_CALL
    out = h.msg("c1", type="offer", call_id=CALL, sdp=SDP)
    assert error_code(out, "c1") is ErrorCode.UNKNOWN_CALL


def test_other_session_of_the_callee_can_neither_read_nor_inject(h: Harness) -> None:
    accepted_call(h)
    seen: list[Command] = []
    seen += h.msg("a1", type="offer", call_id=CALL, sdp=SDP)
    seen += h.msg("b2", type="answer", call_id=CALL, sdp=SDP)
    seen += h.msg("a1", type="ice", call_id=CALL, candidate=CAND)
    assert to(seen, "b1") == [] and to(seen, "b3") == []
    out = h.msg("b1", type="ice", call_id=CALL, candidate=CAND)
    assert error_code(out, "b1") is ErrorCode.NOT_ALLOWED
    out = h.msg("b3", type="answer", call_id=CALL, sdp=SDP)
    assert error_code(out, "b3") is ErrorCode.NOT_ALLOWED
    # Nor can another session of the caller.
    h.open("a2", "alice")
    assert error_code(h.msg("a2", type="offer", call_id=CALL, sdp=SDP), "a2") is ErrorCode.NOT_ALLOWED


# --- presence ----------------------------------------------------------------------


def test_presence_follows_sessions_and_calls() -> None:
    h = Harness()
    assert h.sw.presence("alice") is Presence.OFFLINE
    assert presence(h.open("a1", "alice")) == {"alice": Presence.ONLINE}
    assert presence(h.open("a2", "alice")) == {}  # unchanged: no event
    h.open("b1", "bob")
    out = ringing_call(h)
    assert presence(out) == {}  # ringing is not "in a call"
    out = h.msg("b1", type="accept", call_id=CALL)
    assert presence(out) == {"alice": Presence.IN_CALL, "bob": Presence.IN_CALL}
    assert h.sw.presence("alice") is Presence.IN_CALL
    assert presence(h.close("a2")) == {}  # a2 was not in the call
    out = h.close("a1")
    assert presence(out) == {"alice": Presence.OFFLINE, "bob": Presence.ONLINE}
    assert presence(h.close("b1")) == {"bob": Presence.OFFLINE}


# --- rooms -------------------------------------------------------------------------


@pytest.fixture
def room() -> Harness:
    h = Harness()
    for acc in ("alice", "bob", "carol", "dave", "erin", "frank"):
        h.open(acc[0] + "1", acc)
    return h


ROOM = "room-0001"


def test_room_of_four_then_the_fifth_is_refused(room: Harness) -> None:
    h = room
    out = h.msg("a1", type="room_create", room_id=ROOM, invite=["bob", "carol", "dave", "erin"])
    assert to(out, "a1") == [RoomJoined(room_id=ROOM, peer_id="p1", peers=())]
    assert {s for s in targets(out) if s != "a1"} == {"b1", "c1", "d1", "e1"}  # invites
    assert presence(out) == {"alice": Presence.IN_CALL}
    out = h.msg("b1", type="room_join", room_id=ROOM)
    (joined,) = to(out, "b1")
    assert isinstance(joined, RoomJoined) and joined.peer_id == "p2"
    assert [(p.peer_id, p.account) for p in joined.peers] == [("p1", "alice")]
    assert isinstance(to(out, "a1")[0], RoomPeerJoined)
    h.msg("c1", type="room_join", room_id=ROOM)
    out = h.msg("d1", type="room_join", room_id=ROOM)
    assert {s for s in targets(out)} == {"a1", "b1", "c1", "d1"}
    assert len(h.sw.room_members(ROOM)) == 4
    out = h.msg("e1", type="room_join", room_id=ROOM)
    assert error_code(out, "e1") is ErrorCode.ROOM_FULL
    assert len(h.sw.room_members(ROOM)) == 4
    # A place frees up: erin can join now.
    out = h.msg("c1", type="room_leave", room_id=ROOM)
    for s in ("a1", "b1", "d1"):
        assert to(out, s) == [RoomPeerLeft(room_id=ROOM, peer_id="p3")]
    assert presence(out) == {"carol": Presence.ONLINE}
    out = h.msg("e1", type="room_join", room_id=ROOM)
    assert [p.account for p in to(out, "e1")[0].peers] == ["alice", "bob", "dave"]


def test_room_signalling_is_point_to_point_between_members(room: Harness) -> None:
    h = room
    h.msg("a1", type="room_create", room_id=ROOM, invite=["bob", "carol", "erin"])
    h.msg("b1", type="room_join", room_id=ROOM)
    h.msg("c1", type="room_join", room_id=ROOM)
    out = h.msg("c1", type="room_offer", room_id=ROOM, to="p1", sdp=SDP)
    assert out == [Send("a1", RoomRelayedOffer(room_id=ROOM, sender="p3", sdp=SDP))]
    out = h.msg("a1", type="room_ice", room_id=ROOM, to="p3", candidate=CAND)
    assert targets(out) == {"c1"} and isinstance(to(out, "c1")[0], RoomRelayedIce)
    # Invited but not joined, and never invited: both refused, nothing relayed.
    assert error_code(h.msg("e1", type="room_offer", room_id=ROOM, to="p1", sdp=SDP), "e1") is ErrorCode.UNKNOWN_ROOM
    assert (
        error_code(h.msg("f1", type="room_ice", room_id=ROOM, to="p1", candidate=CAND), "f1") is ErrorCode.UNKNOWN_ROOM
    )
    assert error_code(h.msg("f1", type="room_join", room_id=ROOM), "f1") is ErrorCode.UNKNOWN_ROOM
    assert error_code(h.msg("a1", type="room_offer", room_id=ROOM, to="p9", sdp=SDP), "a1") is ErrorCode.UNKNOWN_PEER
    assert error_code(h.msg("a1", type="room_offer", room_id=ROOM, to="p1", sdp=SDP), "a1") is ErrorCode.UNKNOWN_PEER


def test_room_membership_rules(room: Harness) -> None:
    h = room
    h.msg("a1", type="room_create", room_id=ROOM, invite=["bob"])
    assert error_code(h.msg("c1", type="room_create", room_id=ROOM), "c1") is ErrorCode.ROOM_ID_IN_USE
    h.msg("b1", type="room_join", room_id=ROOM)
    h.open("b2", "bob")
    assert error_code(h.msg("b2", type="room_join", room_id=ROOM), "b2") is ErrorCode.ALREADY_IN_ROOM
    # In a room means in a call: a 1:1 invite to bob is busy, bob cannot invite.
    out = h.msg("c1", type="invite", call_id=CALL, to="bob")
    assert to(out, "c1") == [CallEnded(call_id=CALL, reason=EndReason.BUSY)]
    assert error_code(h.msg("b2", type="invite", call_id="call-0002", to="carol"), "b2") is ErrorCode.SESSION_BUSY
    # Disconnect leaves the room; the last one out deletes it.
    out = h.close("b1")
    assert to(out, "a1") == [RoomPeerLeft(room_id=ROOM, peer_id="p2")]
    h.msg("a1", type="room_leave", room_id=ROOM)
    assert h.sw.room_members(ROOM) == {}
    assert error_code(h.msg("a1", type="room_leave", room_id=ROOM), "a1") is ErrorCode.UNKNOWN_ROOM
    assert h.sw.invariant_violations() == []


def test_joining_a_room_ends_pending_calls(room: Harness) -> None:
    h = room
    h.msg("a1", type="room_create", room_id=ROOM, invite=["bob"])
    h.msg("c1", type="invite", call_id=CALL, to="bob")
    out = h.msg("b1", type="room_join", room_id=ROOM)
    assert to(out, "c1") == [CallEnded(call_id=CALL, reason=EndReason.BUSY)]
    assert records(out)[0].outcome is CallOutcome.BUSY


def test_room_size_policy_is_bounded() -> None:
    with pytest.raises(ValueError):
        CallPolicy(max_room_size=5)
    with pytest.raises(ValueError):
        CallPolicy(ring_timeout=0)


# --- edge validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", ErrorCode.BAD_JSON),
        (b"\xff\xfe", ErrorCode.BAD_JSON),
        ("[" * 50_000, ErrorCode.BAD_JSON),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE),
        ('"invite"', ErrorCode.INVALID_MESSAGE),
        ('{"call_id": "call-0001"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "sip_register"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": 7}', ErrorCode.UNKNOWN_TYPE),
        (
            '{"type": "accept", "call_id": "call-0001", "extra": 1}',
            ErrorCode.INVALID_MESSAGE,
        ),
        ('{"type": "accept", "call_id": "short"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "accept", "call_id": 123456789}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "accept"}', ErrorCode.INVALID_MESSAGE),
        (
            '{"type": "invite", "call_id": "call-0001", "to": "b o b"}',
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            '{"type": "invite", "call_id": "call-0001", "to": "bob", "media": "fax"}',
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            '{"type": "offer", "call_id": "call-0001", "sdp": "hello"}',
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            '{"type": "ice", "call_id": "call-0001", "candidate": {"candidate": "x", "sdpMLineIndex": true}}',
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            '{"type": "ice", "call_id": "call-0001", "candidate": "x"}',
            ErrorCode.INVALID_MESSAGE,
        ),
        (
            '{"type": "room_create", "room_id": "room-0001", "invite": "bob"}',
            ErrorCode.INVALID_MESSAGE,
        ),
    ],
)
def test_bad_frames_are_refused_with_a_typed_error(raw: str | bytes, code: ErrorCode) -> None:
    with pytest.raises(ClientMessageError) as exc:
        decode_client_frame(raw)
    assert exc.value.code is code
    reply = server_message_to_json(exc.value.to_server())
    assert reply["type"] == "error" and reply["code"] == code.value


def test_oversized_frames_are_refused_before_parsing() -> None:
    # Not even JSON: the size check must come first.
    with pytest.raises(ClientMessageError) as exc:
        decode_client_frame("{" * (MAX_FRAME_BYTES + 1))
    assert exc.value.code is ErrorCode.TOO_LARGE
    frame = json.dumps({"type": "offer", "call_id": CALL, "sdp": SDP + "a=x\r\n" * 20_000})
    with pytest.raises(ClientMessageError) as exc:
        decode_client_frame(frame)
    assert exc.value.code is ErrorCode.TOO_LARGE
    # Multi-byte characters count as bytes, not characters.
    with pytest.raises(ClientMessageError) as exc:
        decode_client_frame(json.dumps({"type": "x", "p": "é" * 40_000}, ensure_ascii=False))
    assert exc.value.code is ErrorCode.TOO_LARGE


def test_oversized_fields_inside_a_small_enough_frame() -> None:
    big_sdp = SDP + "a=" + "x" * MAX_SDP_CHARS
    with pytest.raises(ClientMessageError) as exc:
        parse_client_message({"type": "offer", "call_id": CALL, "sdp": big_sdp})
    assert exc.value.code is ErrorCode.INVALID_MESSAGE and "sdp" in exc.value.detail
    with pytest.raises(ClientMessageError):
        parse_client_message({"type": "invite", "call_id": CALL, "to": "b" * 321})
    with pytest.raises(ClientMessageError):
        parse_client_message({"type": "room_create", "room_id": ROOM, "invite": ["x"] * 17})
    # The refused input is never echoed back.
    with pytest.raises(ClientMessageError) as exc:
        parse_client_message({"type": "invite", "call_id": CALL, "to": "<script>"[:0] + "a b"})
    assert "a b" not in exc.value.detail


def test_schemas_cover_every_message_type() -> None:
    client = client_json_schema()
    kinds = {ref.split("/")[-1] for ref in client["discriminator"]["mapping"]}
    assert kinds == CLIENT_TYPES
    server = server_json_schema()
    assert {"incoming", "stop_ringing", "call_ended", "error", "room_joined"} <= set(server["discriminator"]["mapping"])
    ice = client["$defs"]["IceCandidate"]["properties"]
    assert {"candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"} == set(ice)


# --- property: random event sequences ---------------------------------------------
#
# A hypothesis state machine drives the switch with random events.  Rules pick
# their targets mostly among the sessions that matter for a live call (ringing,
# bound) and sometimes anywhere, so that both legal and illegal moves are
# exercised; every step checks the commands and the switch's invariants.

ACCOUNTS = ("alice", "bob", "carol", "dave")  # dave never has a session: offline
SESSIONS = tuple(f"s{i}" for i in range(6))
OWNER = {s: ACCOUNTS[i % 3] for i, s in enumerate(SESSIONS)}
ROOM_IDS = ("room-0001", "room-0002")
CALL_KINDS = (
    "ringing",
    "accept",
    "decline",
    "busy",
    "cancel",
    "hangup",
    "offer",
    "answer",
    "ice",
)
ROOM_KINDS = ("room_join", "room_leave", "room_offer", "room_answer", "room_ice")


class SwitchMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.sw = CallSwitch(CallPolicy(ring_timeout=30, voicemail=True, max_room_size=3))
        self.now = T0
        self.next_id = 0
        self.used_ids: list[str] = ["call-none"]
        self.accepted_by: dict[str, str] = {}
        self.recorded: set[str] = set()
        self.seen: set[str] = set()  # kinds of output, for the coverage guard
        for s in SESSIONS:
            self.sw.handle(SessionOpened(s, OWNER[s]), self.now)

    # -- driving ----------------------------------------------------------------

    def apply(self, event: Any) -> None:
        calls_before = {v.call_id: v for v in self.sw.calls()}
        rooms_before = {r: self.sw.room_members(r) for r in ROOM_IDS}
        sender = event.session if isinstance(event, FromClient) else None
        out = self.sw.handle(event, self.now)
        open_now = {s for s in SESSIONS if self.sw.account_of(s) is not None}
        for c in out:
            self.seen.add(type(c.message).__name__ if isinstance(c, Send) else type(c).__name__)
            if isinstance(c, Send):
                assert c.session in open_now, c  # never to a closed or unknown session
                msg = c.message
                if isinstance(msg, RelayedOffer | RelayedAnswer | RelayedIce):
                    view = calls_before[msg.call_id]
                    pair = {view.caller_session, view.callee_session}
                    assert view.state is CallState.ACCEPTED
                    assert sender in pair and c.session in pair and c.session != sender
                    assert msg.sender == self.sw.account_of(sender)
                if isinstance(msg, RoomRelayedOffer | RoomRelayedAnswer | RoomRelayedIce):
                    members = rooms_before[msg.room_id]
                    assert sender in members and c.session in members and c.session != sender
                if isinstance(msg, ErrorMessage):
                    assert c.session == sender  # errors only to the offender
                    if msg.call_id is not None and msg.code in (
                        ErrorCode.NOT_ALLOWED,
                        ErrorCode.INVALID_STATE,
                    ):
                        # Only a party learns that a call exists.
                        view = calls_before[msg.call_id]
                        assert self.sw.account_of(sender) in (view.caller, view.callee)
                if isinstance(msg, Incoming):
                    assert self.sw.account_of(c.session) != msg.caller
            elif isinstance(c, PresenceChanged):
                assert self.sw.presence(c.account) is c.presence
            elif isinstance(c, RecordCall):
                rec = c.record
                assert rec.call_id not in self.recorded  # one history row per call
                self.recorded.add(rec.call_id)
                assert rec.started_at <= rec.ended_at
                assert (rec.answered_at is not None) == (rec.outcome is CallOutcome.ANSWERED)
            elif isinstance(c, DivertToVoicemail):
                assert self.sw.account_of(c.caller_session) == c.caller

    def send(self, session: str, fields: dict[str, Any]) -> None:
        self.apply(FromClient(session, parse_client_message(fields)))

    # -- rules ------------------------------------------------------------------

    @rule(session=st.sampled_from(SESSIONS))
    def open_session(self, session: str) -> None:
        self.apply(SessionOpened(session, OWNER[session]))

    @rule(session=st.sampled_from(SESSIONS))
    def close_session(self, session: str) -> None:
        self.apply(SessionClosed(session))

    @rule(seconds=st.floats(min_value=0, max_value=40))
    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.apply(Tick())

    @rule(
        session=st.sampled_from(SESSIONS),
        to=st.sampled_from(ACCOUNTS),
        reuse=st.booleans(),
        data=st.data(),
    )
    def invite(self, session: str, to: str, reuse: bool, data: st.DataObject) -> None:
        if reuse:
            call_id = data.draw(st.sampled_from(self.used_ids))
        else:
            self.next_id += 1
            call_id = f"call-{self.next_id:04d}"
            self.used_ids.append(call_id)
        self.send(session, {"type": "invite", "call_id": call_id, "to": to})

    @staticmethod
    def _call_fields(kind: str, call_id: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"type": kind, "call_id": call_id}
        if kind in ("offer", "answer"):
            fields["sdp"] = SDP
        if kind == "ice":
            fields["candidate"] = CAND
        return fields

    @rule(
        kind=st.sampled_from(CALL_KINDS),
        session=st.sampled_from(SESSIONS),
        data=st.data(),
    )
    def call_message_anywhere(self, kind: str, session: str, data: st.DataObject) -> None:
        """Any call message about any id, from anyone: mostly illegal."""
        call_id = data.draw(st.sampled_from(self.used_ids))
        self.send(session, self._call_fields(kind, call_id))

    def _live(self) -> bool:
        return bool(self.sw.calls())

    @precondition(_live)
    @rule(data=st.data())
    def call_message_plausible(self, data: st.DataObject) -> None:
        """A move on a live call, mostly by one of the sessions involved in it."""
        view = data.draw(st.sampled_from(self.sw.calls()))
        if view.callee_session:
            # The bound pair, but also the parties' other sessions.
            near = {
                *self.sw.sessions_of(view.caller),
                *self.sw.sessions_of(view.callee),
            }
            kind = data.draw(st.sampled_from(["offer", "answer", "ice", "ice", "hangup"]))
        else:
            near = {view.caller_session, *view.ringing_sessions}
            kind = data.draw(st.sampled_from(["ringing", "accept", "accept", "decline", "busy", "cancel"]))
        near.add(data.draw(st.sampled_from(SESSIONS)))  # now and then a stranger
        session = data.draw(st.sampled_from(sorted(near)))
        self.send(session, self._call_fields(kind, view.call_id))

    @staticmethod
    def _room_fields(kind: str, room_id: str, to: str) -> dict[str, Any]:
        fields: dict[str, Any] = {"type": kind, "room_id": room_id}
        if kind in ("room_offer", "room_answer"):
            fields |= {"to": to, "sdp": SDP}
        elif kind == "room_ice":
            fields |= {"to": to, "candidate": CAND}
        return fields

    @rule(
        kind=st.sampled_from(("room_create", "room_join", "room_join", *ROOM_KINDS)),
        session=st.sampled_from(SESSIONS),
        room_id=st.sampled_from(ROOM_IDS),
        to=st.sampled_from(["p1", "p2", "p3", "p4", "p5"]),
        invite=st.lists(st.sampled_from(ACCOUNTS), min_size=1, max_size=4),
    )
    def room_message_anywhere(self, kind: str, session: str, room_id: str, to: str, invite: list[str]) -> None:
        """Any room message from anyone (create, join, leave, signal)."""
        fields = self._room_fields(kind, room_id, to)
        if kind == "room_create":
            fields["invite"] = invite
        self.send(session, fields)

    def _crowded(self) -> bool:
        return any(len(self.sw.room_peers(r)) >= 2 for r in ROOM_IDS)

    @precondition(_crowded)
    @rule(
        kind=st.sampled_from(["room_offer", "room_answer", "room_ice", "room_ice", "room_leave"]),
        data=st.data(),
    )
    def room_message_plausible(self, kind: str, data: st.DataObject) -> None:
        """A participant signals another one of its room (or leaves)."""
        room_id = data.draw(st.sampled_from([r for r in ROOM_IDS if len(self.sw.room_peers(r)) >= 2]))
        peers = self.sw.room_peers(room_id)
        session = data.draw(st.sampled_from(sorted(peers)))
        to = data.draw(st.sampled_from(sorted(p for s, p in peers.items() if s != session)))
        self.send(session, self._room_fields(kind, room_id, to))

    # -- invariants -------------------------------------------------------------

    @invariant()
    def sound_state(self) -> None:
        assert self.sw.invariant_violations() == []
        for view in self.sw.calls():
            if view.callee_session is not None:
                # At most one accepted session per call, and it never changes.
                assert self.accepted_by.setdefault(view.call_id, view.callee_session) == view.callee_session
            else:
                assert view.state is not CallState.ACCEPTED
        for r in ROOM_IDS:
            assert len(self.sw.room_members(r)) <= 3


SwitchMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSwitchMachine = SwitchMachine.TestCase


def test_random_sequences_reach_every_kind_of_outcome() -> None:
    """Guard against a vacuous property test: the machine must reach real calls."""
    seen: set[str] = set()

    class Recording(SwitchMachine):
        def teardown(self) -> None:
            seen.update(self.seen)

    run_state_machine_as_test(
        Recording,
        settings=settings(
            max_examples=150,
            stateful_step_count=50,
            deadline=None,
            database=None,
            derandomize=True,
        ),
    )
    for kind in ("Accepted", "StopRinging", "Diverted", "RoomJoined", "RoomPeerLeft"):
        assert kind in seen, (kind, sorted(seen))
    assert seen & {"RelayedOffer", "RelayedAnswer", "RelayedIce"}, sorted(seen)
    assert seen & {"RoomRelayedOffer", "RoomRelayedAnswer", "RoomRelayedIce"}, sorted(seen)


def test_every_server_message_of_a_call_round_trips_as_json(h: Harness) -> None:
    from pydantic import TypeAdapter

    from suite.voip.messages import ServerMessage

    adapter = TypeAdapter(ServerMessage)
    out = ringing_call(h)
    out += h.msg("b1", type="ringing", call_id=CALL)
    out += h.msg("b2", type="accept", call_id=CALL)
    out += h.msg("a1", type="offer", call_id=CALL, sdp=SDP)
    out += h.msg("b2", type="ice", call_id=CALL, candidate=CAND)
    out += h.msg("c1", type="hangup", call_id=CALL)
    out += h.msg("b2", type="hangup", call_id=CALL)
    sent = [c.message for c in out if isinstance(c, Send)]
    assert len({type(m) for m in sent}) >= 7
    for m in sent:
        wire = json.loads(json.dumps(server_message_to_json(m)))
        assert adapter.validate_python(wire) == m


def test_accepting_on_a_session_that_is_placing_a_call_cancels_that_call(
    h: Harness,
) -> None:
    h.open("d1", "dave")
    h.msg("b1", type="invite", call_id="call-0002", to="dave")  # b1 is calling dave...
    ringing_call(h)  # ...when alice calls bob: b1 rings too
    out = h.msg("b1", type="accept", call_id=CALL)
    assert to(out, "d1") == [StopRinging(call_id="call-0002", reason=StopReason.CANCELLED)]
    assert CallEnded(call_id="call-0002", reason=EndReason.CANCELLED) in to(out, "b1")
    assert Accepted(call_id=CALL, peer="alice") in to(out, "b1")
    (view,) = h.sw.calls()
    assert (view.call_id, view.callee_session) == (CALL, "b1")
    # b1's binding is the new call: relaying works from it.
    assert targets(h.msg("b1", type="answer", call_id=CALL, sdp=SDP)) == {"a1"}


def test_joining_a_room_while_placing_a_call_cancels_the_call(room: Harness) -> None:
    h = room
    h.msg("a1", type="room_create", room_id=ROOM, invite=["bob"])
    h.msg("b1", type="invite", call_id=CALL, to="carol")
    out = h.msg("b1", type="room_join", room_id=ROOM)
    assert to(out, "c1") == [StopRinging(call_id=CALL, reason=StopReason.CANCELLED)]
    assert isinstance(to(out, "b1")[-1], RoomJoined)
    assert h.sw.calls() == [] and "b1" in h.sw.room_members(ROOM)
