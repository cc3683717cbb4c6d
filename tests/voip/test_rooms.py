"""The sans-I/O meeting room: every transition, by its commands."""

from __future__ import annotations

import pytest

from suite.voip.meeting_messages import (
    ChatMessage,
    Closed,
    Joined,
    LeftReason,
    LobbyGone,
    LobbyKnock,
    MeetingError,
    MeetingErrorCode,
    MutedBy,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    Role,
    RoomState,
    Waiting,
)
from suite.voip.rooms import (
    Admit,
    CloseSocket,
    Deny,
    EndMeeting,
    Gone,
    Knock,
    MediaJoin,
    MediaLeave,
    MediaMute,
    Meeting,
    MeetingEnded,
    MuteOther,
    Remove,
    RoomConfig,
    Send,
    SendChat,
    SetHand,
    SetLock,
    SetMediaState,
)

HOST = "alice@example.test"


def sent(cmds, peer=None, kind=None):
    return [
        c.message
        for c in cmds
        if isinstance(c, Send) and (peer is None or c.peer == peer) and (kind is None or isinstance(c.message, kind))
    ]


def error_code(cmds, peer):
    errs = sent(cmds, peer, MeetingError)
    assert len(errs) == 1, cmds
    return errs[0].code


def meeting(**kw) -> Meeting:
    return Meeting(RoomConfig(owner=HOST, title="Standup", **kw))


def with_host(**kw) -> Meeting:
    m = meeting(**kw)
    m.handle(Knock("h", HOST, None))
    return m


def test_host_enters_and_gets_joined_and_media():
    m = meeting()
    cmds = m.handle(Knock("h", HOST, None))
    (joined,) = sent(cmds, "h", Joined)
    assert joined.role is Role.HOST and joined.title == "Standup" and joined.peer_id == "h"
    assert [p.name for p in joined.participants] == [HOST]
    assert MediaJoin("h") in cmds


def test_member_enters_directly_and_others_are_told():
    m = with_host(lobby=True, password=True)
    cmds = m.handle(Knock("b", "bob@example.test", None))
    (joined,) = sent(cmds, "b", Joined)
    assert joined.role is Role.MEMBER and {p.peer_id for p in joined.participants} == {"h", "b"}
    (pj,) = sent(cmds, "h", ParticipantJoined)
    assert pj.participant.peer_id == "b"
    assert MediaJoin("b") in cmds


def test_members_appear_under_their_display_name_guests_under_theirs():
    """A member is shown under the account's display name (what the web app's header shows), the
    address when the account has none; a name the member's page sends is not used; a guest keeps
    the name it typed and the guest role."""
    m = meeting()
    (joined,) = sent(m.handle(Knock("h", HOST, None, display_name="Alice Liddell")), "h", Joined)
    assert [(p.name, p.role) for p in joined.participants] == [("Alice Liddell", Role.HOST)]
    cmds = m.handle(Knock("b", "bob@example.test", "Alice Liddell", display_name=""))
    (pj,) = sent(cmds, "h", ParticipantJoined)
    assert (pj.participant.name, pj.participant.role) == ("bob@example.test", Role.MEMBER)
    cmds = m.handle(Knock("c", "carol@example.test", None, display_name="  \x1b[31mCarol\n<b>C</b>\x7f  " + "x" * 80))
    (pj,) = sent(cmds, "h", ParticipantJoined)
    assert pj.participant.name == ("[31mCarol<b>C</b>  " + "x" * 80)[:64]
    cmds = m.handle(Knock("d", "dan@example.test", None, display_name=" \t\n "))
    assert sent(cmds, "h", ParticipantJoined)[0].participant.name == "dan@example.test"
    cmds = m.handle(Knock("g", None, "Gus Guest", display_name="Alice Liddell"))
    (pj,) = sent(cmds, "h", ParticipantJoined)
    assert (pj.participant.name, pj.participant.role) == ("Gus Guest", Role.GUEST)
    (chat,) = sent(m.handle(SendChat("h", "hi")), "g", ChatMessage)
    assert chat.name == "Alice Liddell"


def test_screen_share_is_part_of_the_media_state():
    m = with_host()
    m.handle(Knock("b", "bob@example.test", None))
    cmds = m.handle(SetMediaState("b", False, False, screen=True))
    (upd,) = sent(cmds, "h", ParticipantUpdated)
    assert upd.participant.screen is True and not any(isinstance(c, MediaMute) for c in cmds)
    assert sent(m.handle(SetMediaState("b", False, False, screen=True)), "h") == []  # nothing changed
    (upd,) = sent(m.handle(SetMediaState("b", False, False)), "h", ParticipantUpdated)
    assert upd.participant.screen is False


def test_guest_needs_a_name():
    m = with_host()
    cmds = m.handle(Knock("g", None, None))
    assert error_code(cmds, "g") is MeetingErrorCode.NAME_REQUIRED
    assert "g" not in m.participants


def test_guest_needs_the_password_when_set_and_may_retry():
    m = with_host(password=True)
    cmds = m.handle(Knock("g", None, "Gus", password_ok=False))
    assert error_code(cmds, "g") is MeetingErrorCode.PASSWORD_REQUIRED
    assert not any(isinstance(c, CloseSocket) for c in cmds)
    cmds = m.handle(Knock("g", None, "Gus", password_ok=True))
    assert sent(cmds, "g", Joined)


def test_guest_without_lobby_enters():
    m = with_host()
    cmds = m.handle(Knock("g", None, "Gus"))
    (joined,) = sent(cmds, "g", Joined)
    assert joined.role is Role.GUEST
    assert MediaJoin("g") in cmds


def test_lobby_knock_admit():
    m = with_host(lobby=True)
    cmds = m.handle(Knock("g", None, "Gus"))
    assert sent(cmds, "g") == [Waiting()]
    (knock,) = sent(cmds, "h", LobbyKnock)
    assert knock.knocker.name == "Gus"
    assert not any(isinstance(c, MediaJoin) for c in cmds)
    cmds = m.handle(Admit("h", "g"))
    assert sent(cmds, "h", LobbyGone) == [LobbyGone(peer_id="g")]
    assert sent(cmds, "g", Joined) and MediaJoin("g") in cmds
    assert "g" in m.participants and not m.lobby


def test_lobby_is_listed_for_a_host_joining_later():
    m = meeting(lobby=True)
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(Knock("h", HOST, None))
    (joined,) = sent(cmds, "h", Joined)
    assert [k.peer_id for k in joined.lobby] == ["g"]
    cmds = m.handle(Knock("b", "bob@example.test", None))
    (joined,) = sent(cmds, "b", Joined)
    assert joined.lobby == ()  # members do not see the lobby


def test_lobby_deny_closes_the_knocker():
    m = with_host(lobby=True)
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(Deny("h", "g"))
    assert sent(cmds, "g") == [Closed(reason="denied")]
    assert CloseSocket("g") in cmds and not m.lobby


def test_knocker_leaving_tells_the_host():
    m = with_host(lobby=True)
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(Gone("g"))
    assert sent(cmds, "h") == [LobbyGone(peer_id="g")]


@pytest.mark.parametrize(
    "event",
    [
        Admit("b", "g"),
        Deny("b", "g"),
        MuteOther("b", "h", "audio"),
        Remove("b", "h"),
        SetLock("b", True),
        EndMeeting("b"),
    ],
)
def test_host_actions_refused_to_members(event):
    m = with_host(lobby=True)
    m.handle(Knock("b", "bob@example.test", None))
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(event)
    assert error_code(cmds, "b") is MeetingErrorCode.NOT_HOST
    assert len(cmds) == 1


def test_actions_before_joining_are_refused():
    m = with_host(lobby=True)
    m.handle(Knock("g", None, "Gus"))  # waits in the lobby
    for ev in (SendChat("g", "hi"), SetHand("g", True), SetMediaState("g", True, True), SetLock("g", True)):
        assert error_code(m.handle(ev), "g") is MeetingErrorCode.NOT_JOINED


def test_admit_unknown_or_twice():
    m = with_host(lobby=True)
    assert error_code(m.handle(Admit("h", "nobody")), "h") is MeetingErrorCode.UNKNOWN_PEER
    m.handle(Knock("g", None, "Gus"))
    m.handle(Admit("h", "g"))
    assert error_code(m.handle(Admit("h", "g")), "h") is MeetingErrorCode.UNKNOWN_PEER


def test_host_mutes_a_participant_once():
    m = with_host()
    m.handle(Knock("b", "bob@example.test", None))
    cmds = m.handle(MuteOther("h", "b", "audio"))
    assert MediaMute("b", "audio", True) in cmds
    assert sent(cmds, "b", MutedBy) == [MutedBy(kind="audio", by=HOST)]
    updates = sent(cmds, None, ParticipantUpdated)
    assert len(updates) == 2 and all(u.participant.audio_muted for u in updates)
    assert m.handle(MuteOther("h", "b", "audio")) == []  # already muted
    # only the participant unmutes
    cmds = m.handle(SetMediaState("b", False, False))
    assert cmds[0] == MediaMute("b", "audio", False)
    assert not sent(cmds, None, ParticipantUpdated)[0].participant.audio_muted


def test_host_cannot_target_self_or_unknown():
    m = with_host()
    assert error_code(m.handle(MuteOther("h", "h", "audio")), "h") is MeetingErrorCode.UNKNOWN_PEER
    assert error_code(m.handle(Remove("h", "zz")), "h") is MeetingErrorCode.UNKNOWN_PEER


def test_remove_closes_bans_and_tells_the_others():
    m = with_host()
    m.handle(Knock("b", "bob@example.test", None))
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(Remove("h", "b"))
    assert sent(cmds, "b") == [Closed(reason="removed")]
    assert CloseSocket("b") in cmds and MediaLeave("b") in cmds
    for p in ("h", "g"):
        assert sent(cmds, p) == [ParticipantLeft(peer_id="b", reason=LeftReason.REMOVED)]
    # the account stays out, also from another socket
    cmds = m.handle(Knock("b2", "bob@example.test", None))
    assert error_code(cmds, "b2") is MeetingErrorCode.BANNED and CloseSocket("b2") in cmds
    # a removed guest's socket stays out
    m.handle(Remove("h", "g"))
    assert error_code(m.handle(Knock("g", None, "Gus")), "g") is MeetingErrorCode.BANNED


def test_lock_keeps_everyone_but_the_host_out():
    m = with_host()
    m.handle(Knock("b", "bob@example.test", None))
    cmds = m.handle(SetLock("h", True))
    assert sent(cmds, "b") == [RoomState(locked=True)]
    assert m.handle(SetLock("h", True)) == []  # no change, no noise
    assert error_code(m.handle(Knock("c", "carol@example.test", None)), "c") is MeetingErrorCode.LOCKED
    assert error_code(m.handle(Knock("g", None, "Gus")), "g") is MeetingErrorCode.LOCKED
    cmds = m.handle(Knock("h2", HOST, None))  # the host's second device
    assert sent(cmds, "h2", Joined)[0].locked is True
    m.handle(SetLock("h", False))
    assert sent(m.handle(Knock("c", "carol@example.test", None)), "c", Joined)


def test_full_room():
    m = with_host(max_participants=2)
    m.handle(Knock("b", "bob@example.test", None))
    assert error_code(m.handle(Knock("c", "carol@example.test", None)), "c") is MeetingErrorCode.FULL
    m2 = with_host(max_participants=2, lobby=True)
    m2.handle(Knock("g1", None, "One"))
    m2.handle(Knock("g2", None, "Two"))
    m2.handle(Admit("h", "g1"))
    assert error_code(m2.handle(Admit("h", "g2")), "h") is MeetingErrorCode.FULL
    assert "g2" in m2.lobby


def test_end_closes_everyone_and_the_link():
    m = with_host(lobby=True)
    m.handle(Knock("b", "bob@example.test", None))
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(EndMeeting("h"))
    for p in ("h", "b", "g"):
        assert Send(p, Closed(reason="ended")) in cmds and CloseSocket(p) in cmds
    assert MediaLeave("h") in cmds and MediaLeave("b") in cmds and MediaLeave("g") not in cmds
    # stored before anyone is told, so whoever hears "ended" finds the link ended
    assert cmds.count(MeetingEnded()) == 1
    assert all(cmds.index(MeetingEnded()) < cmds.index(Send(p, Closed(reason="ended"))) for p in ("h", "b", "g"))
    assert m.ended and m.empty
    cmds = m.handle(Knock("h", HOST, None))
    assert error_code(cmds, "h") is MeetingErrorCode.ENDED


def test_leave_tells_the_others_and_drops_media():
    m = with_host()
    m.handle(Knock("b", "bob@example.test", None))
    cmds = m.handle(Gone("b"))
    assert cmds == [MediaLeave("b"), Send("h", ParticipantLeft(peer_id="b", reason=LeftReason.LEFT))]
    assert m.handle(Gone("b")) == []  # twice is harmless
    # a member who left may come back
    assert sent(m.handle(Knock("b", "bob@example.test", None)), "b", Joined)


def test_double_hello_refused():
    m = with_host()
    assert error_code(m.handle(Knock("h", HOST, None)), "h") is MeetingErrorCode.ALREADY_JOINED


def test_hand_and_chat_reach_everyone():
    m = with_host()
    m.handle(Knock("g", None, "Gus"))
    cmds = m.handle(SetHand("g", True))
    assert {c.peer for c in cmds} == {"h", "g"} and all(u.participant.hand_raised for u in sent(cmds))
    assert m.handle(SetHand("g", True)) == []
    cmds = m.handle(SendChat("g", "hello <b>all</b>"))
    msgs = sent(cmds, None, ChatMessage)
    assert len(msgs) == 2 and msgs[0] == ChatMessage(sender="g", name="Gus", text="hello <b>all</b>", seq=1)
    assert sent(m.handle(SendChat("h", "hi")), "g")[0].seq == 2


def test_media_state_of_both_kinds():
    m = with_host()
    cmds = m.handle(SetMediaState("h", True, True))
    assert cmds[:2] == [MediaMute("h", "audio", True), MediaMute("h", "video", True)]
    assert m.handle(SetMediaState("h", True, True)) == []


def test_config_limits():
    with pytest.raises(ValueError):
        RoomConfig(owner=HOST, max_participants=1)


def test_recording_is_the_hosts_and_everyone_is_told():
    from suite.voip.meeting_messages import RecordingState
    from suite.voip.rooms import Recording, SetRecording

    m = with_host()
    m.handle(Knock("b", "bob@example.test", None))
    assert error_code(m.handle(SetRecording("b", True)), "b") is MeetingErrorCode.NOT_HOST
    cmds = m.handle(SetRecording("h", True))
    assert [c for c in cmds if isinstance(c, Recording)] == [Recording(True, "h")]
    assert sent(cmds, "h", RecordingState) == sent(cmds, "b", RecordingState) == [RecordingState(on=True)]
    assert m.handle(SetRecording("h", True)) == []  # already on
    # someone who enters while it records is told at once
    cmds = m.handle(Knock("c", "carol@example.test", None))
    assert sent(cmds, "c", RecordingState) == [RecordingState(on=True)]
    cmds = m.handle(SetRecording("h", False))
    assert [c for c in cmds if isinstance(c, Recording)] == [Recording(False, "h")]
    assert sent(cmds, "c", RecordingState) == [RecordingState(on=False)]
    # ending the meeting while it records stops (and saves) the recording first
    m.handle(SetRecording("h", True))
    cmds = m.handle(EndMeeting("h"))
    assert cmds.index(Recording(False, "h")) < cmds.index(MeetingEnded())


def test_an_end_to_end_encrypted_meeting_is_not_recorded():
    from suite.voip.rooms import Recording, SetRecording

    m = with_host(e2ee=True)
    cmds = m.handle(SetRecording("h", True))
    assert error_code(cmds, "h") is MeetingErrorCode.E2EE
    assert not [c for c in cmds if isinstance(c, Recording)] and not m.recording
    joined = sent(m.handle(Knock("b", "bob@example.test", None)), "b", Joined)
    assert joined[0].e2ee is True
