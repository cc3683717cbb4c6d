"""Sans-I/O meeting room: events in, commands out (like :mod:`suite.voip.calls`).

One :class:`Meeting` holds the state of one room while it has sockets: who is in it, who waits in
the lobby, locked or not, ended or not. The gateway feeds it typed events (a socket said hello,
the host admitted someone, a socket went away ...) and carries out the returned commands: send a
message to a socket, close a socket, add/drop a participant's media at the SFU, stop forwarding
a muted track, record that the meeting ended. It reads no clock and touches no socket.

Who gets in (:class:`Knock`), checked in this order:

* a meeting that ended admits nobody (``ended``); a removed account or socket stays out (``banned``);
* the host (the room's owner account) always enters, also a locked room, without lobby or password;
* a locked room admits nobody else (``locked``);
* signed-in members of the team enter directly (no password, no lobby);
* guests must give a display name, the room password when one is set (the gateway checks it and
  passes ``password_ok``), then wait in the lobby when the room has one until a host admits;
* a full room refuses (``full``); the host's own entry counts too.

Host powers (a non-host gets ``not_host``): admit / deny a knocker, mute a participant's audio or
video (the SFU drops it; only the participant can unmute), remove a participant (closed, banned
for this meeting), lock / unlock, end the meeting for everyone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TypeAlias

from suite.voip.meeting_messages import (
    MAX_NAME_CHARS,
    ChatMessage,
    Closed,
    Joined,
    Kind,
    Knocker,
    LeftReason,
    LobbyGone,
    LobbyKnock,
    MeetingError,
    MeetingErrorCode,
    MeetingServerMessage,
    MutedBy,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantUpdated,
    RecordingState,
    Role,
    RoomState,
    Waiting,
)

# --- configuration ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomConfig:
    owner: str
    """Account of the host."""
    title: str = "Meeting"
    lobby: bool = False
    """Guests wait until a host admits them."""
    password: bool = False
    """Guests must give the room password (checked by the gateway)."""
    max_participants: int = 8
    e2ee: bool = False
    """End-to-end encrypted: the browsers encrypt every frame with a key shared out of band (the
    link's fragment), the SFU forwards ciphertext; a recording would hold only ciphertext, so it
    is refused."""

    def __post_init__(self) -> None:
        if self.max_participants < 2:
            raise ValueError("max_participants must be at least 2")


# --- events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Knock:
    """A socket says hello. ``account`` is from the session cookie (None for a guest);
    ``display_name`` is that account's display name in the account store ("" when it has none).
    A member is shown under the display name, else the address: the name a member's page sends is
    not used, so nobody signed in appears under a name their account does not have."""

    peer: str
    account: str | None
    name: str | None
    password_ok: bool = False
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class Admit:
    by: str
    peer: str


@dataclass(frozen=True, slots=True)
class Deny:
    by: str
    peer: str


@dataclass(frozen=True, slots=True)
class MuteOther:
    by: str
    peer: str
    kind: Kind


@dataclass(frozen=True, slots=True)
class Remove:
    by: str
    peer: str


@dataclass(frozen=True, slots=True)
class SetLock:
    by: str
    locked: bool


@dataclass(frozen=True, slots=True)
class SetRecording:
    by: str
    on: bool


@dataclass(frozen=True, slots=True)
class EndMeeting:
    by: str


@dataclass(frozen=True, slots=True)
class SetMediaState:
    peer: str
    audio_muted: bool
    video_muted: bool
    screen: bool = False
    """The participant's video is a shared screen (the pages give it the stage)."""


@dataclass(frozen=True, slots=True)
class SetHand:
    peer: str
    raised: bool


@dataclass(frozen=True, slots=True)
class SendChat:
    peer: str
    text: str


@dataclass(frozen=True, slots=True)
class Gone:
    """The socket left (``leave`` message or disconnect)."""

    peer: str


Event: TypeAlias = (
    Knock
    | Admit
    | Deny
    | MuteOther
    | Remove
    | SetLock
    | SetRecording
    | EndMeeting
    | SetMediaState
    | SetHand
    | SendChat
    | Gone
)


# --- commands -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    peer: str
    message: MeetingServerMessage


@dataclass(frozen=True, slots=True)
class CloseSocket:
    peer: str


@dataclass(frozen=True, slots=True)
class MediaJoin:
    """Give the participant a peer at the SFU (the gateway sends it the offer)."""

    peer: str


@dataclass(frozen=True, slots=True)
class MediaLeave:
    peer: str


@dataclass(frozen=True, slots=True)
class MediaMute:
    """Stop (or resume) forwarding the participant's track of this kind."""

    peer: str
    kind: Kind
    muted: bool


@dataclass(frozen=True, slots=True)
class Recording:
    """Start (``on``) or stop and save the recording into the host's (``owner``'s) Files."""

    on: bool
    host_peer: str


@dataclass(frozen=True, slots=True)
class MeetingEnded:
    """Record that the meeting ended (its link admits nobody any more)."""


Command: TypeAlias = Send | CloseSocket | MediaJoin | MediaLeave | MediaMute | Recording | MeetingEnded


# --- state --------------------------------------------------------------------------


@dataclass(slots=True)
class _Person:
    peer: str
    account: str | None
    name: str
    role: Role
    audio_muted: bool = False
    video_muted: bool = False
    hand_raised: bool = False
    screen: bool = False

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(
            self.peer, self.name, self.role, self.audio_muted, self.video_muted, self.hand_raised, self.screen
        )


@dataclass(slots=True)
class Meeting:
    config: RoomConfig
    participants: dict[str, _Person] = field(default_factory=dict)
    lobby: dict[str, _Person] = field(default_factory=dict)
    locked: bool = False
    recording: bool = False
    ended: bool = False
    banned_accounts: set[str] = field(default_factory=set)
    banned_peers: set[str] = field(default_factory=set)
    chat_seq: int = 0

    def handle(self, event: Event) -> list[Command]:
        return list(self._handle(event))

    @property
    def empty(self) -> bool:
        return not self.participants and not self.lobby

    # --- dispatch ---------------------------------------------------------------

    def _handle(self, ev: Event) -> Iterator[Command]:
        if isinstance(ev, Knock):
            yield from self._knock(ev)
        elif isinstance(ev, Gone):
            yield from self._gone(ev.peer)
        elif isinstance(ev, (Admit, Deny, MuteOther, Remove, SetLock, SetRecording, EndMeeting)):
            yield from self._host_action(ev)
        else:
            person = self.participants.get(ev.peer)
            if person is None:
                yield _error(ev.peer, MeetingErrorCode.NOT_JOINED, "join the meeting first")
            elif isinstance(ev, SetMediaState):
                yield from self._media_state(person, ev.audio_muted, ev.video_muted, ev.screen)
            elif isinstance(ev, SetHand):
                if person.hand_raised != ev.raised:
                    person.hand_raised = ev.raised
                    yield from self._broadcast(ParticipantUpdated(participant=person.info()))
            else:  # SendChat
                self.chat_seq += 1
                msg = ChatMessage(sender=person.peer, name=person.name, text=ev.text, seq=self.chat_seq)
                yield from self._broadcast(msg)

    # --- entry --------------------------------------------------------------------

    def _knock(self, ev: Knock) -> Iterator[Command]:
        peer = ev.peer
        if peer in self.participants or peer in self.lobby:
            yield _error(peer, MeetingErrorCode.ALREADY_JOINED, "already joined")
            return
        if self.ended:
            yield _error(peer, MeetingErrorCode.ENDED, "the meeting has ended")
            yield CloseSocket(peer)
            return
        if peer in self.banned_peers or (ev.account is not None and ev.account in self.banned_accounts):
            yield _error(peer, MeetingErrorCode.BANNED, "you were removed from this meeting")
            yield CloseSocket(peer)
            return
        is_host = ev.account is not None and ev.account == self.config.owner
        if self.locked and not is_host:
            yield _error(peer, MeetingErrorCode.LOCKED, "the meeting is locked")
            return
        if ev.account is not None:
            role = Role.HOST if is_host else Role.MEMBER
            person = _Person(peer, ev.account, member_name(ev.account, ev.display_name), role)
        else:
            if not ev.name:
                yield _error(peer, MeetingErrorCode.NAME_REQUIRED, "guests give a display name")
                return
            if self.config.password and not ev.password_ok:
                yield _error(peer, MeetingErrorCode.PASSWORD_REQUIRED, "wrong or missing password")
                return
            person = _Person(peer, None, ev.name, Role.GUEST)
        if len(self.participants) >= self.config.max_participants:
            yield _error(peer, MeetingErrorCode.FULL, "the meeting is full")
            return
        if person.role is Role.GUEST and self.config.lobby:
            self.lobby[peer] = person
            yield Send(peer, Waiting())
            knocker = Knocker(peer, person.name)
            for host in self._hosts():
                yield Send(host.peer, LobbyKnock(knocker=knocker))
            return
        yield from self._enter(person)

    def _enter(self, person: _Person) -> Iterator[Command]:
        others = list(self.participants.values())
        self.participants[person.peer] = person
        lobby = tuple(Knocker(p.peer, p.name) for p in self.lobby.values()) if person.role is Role.HOST else ()
        yield Send(
            person.peer,
            Joined(
                peer_id=person.peer,
                role=person.role,
                title=self.config.title,
                locked=self.locked,
                participants=tuple(p.info() for p in self.participants.values()),
                lobby=lobby,
                e2ee=self.config.e2ee,
            ),
        )
        if self.recording:  # everyone who enters learns that the meeting is being recorded
            yield Send(person.peer, RecordingState(on=True))
        for other in others:
            yield Send(other.peer, ParticipantJoined(participant=person.info()))
        yield MediaJoin(person.peer)

    # --- host actions ---------------------------------------------------------------

    def _host_action(
        self, ev: Admit | Deny | MuteOther | Remove | SetLock | SetRecording | EndMeeting
    ) -> Iterator[Command]:
        host = self.participants.get(ev.by)
        if host is None:
            yield _error(ev.by, MeetingErrorCode.NOT_JOINED, "join the meeting first")
            return
        if host.role is not Role.HOST:
            yield _error(ev.by, MeetingErrorCode.NOT_HOST, "only the host can do this")
            return
        if isinstance(ev, SetLock):
            if self.locked != ev.locked:
                self.locked = ev.locked
                yield from self._broadcast(RoomState(locked=self.locked))
        elif isinstance(ev, SetRecording):
            if ev.on and self.config.e2ee:
                # The server holds only ciphertext: a recording of it would play nothing.
                yield _error(ev.by, MeetingErrorCode.E2EE, "an end-to-end encrypted meeting cannot be recorded")
            elif self.recording != ev.on:
                self.recording = ev.on
                yield Recording(ev.on, host.peer)
                yield from self._broadcast(RecordingState(on=ev.on))
        elif isinstance(ev, EndMeeting):
            yield from self._end()
        elif isinstance(ev, (Admit, Deny)):
            knocker = self.lobby.get(ev.peer)
            if knocker is None:
                yield _error(ev.by, MeetingErrorCode.UNKNOWN_PEER, "nobody by that id in the lobby")
                return
            if isinstance(ev, Admit) and len(self.participants) >= self.config.max_participants:
                yield _error(ev.by, MeetingErrorCode.FULL, "the meeting is full")
                return
            del self.lobby[ev.peer]
            for h in self._hosts():
                yield Send(h.peer, LobbyGone(peer_id=ev.peer))
            if isinstance(ev, Admit):
                yield from self._enter(knocker)
            else:
                yield Send(ev.peer, Closed(reason="denied"))
                yield CloseSocket(ev.peer)
        else:
            target = self.participants.get(ev.peer)
            if target is None or target.peer == host.peer:
                yield _error(ev.by, MeetingErrorCode.UNKNOWN_PEER, "no other participant by that id")
                return
            if isinstance(ev, MuteOther):
                if ev.kind == "audio" and not target.audio_muted:
                    target.audio_muted = True
                elif ev.kind == "video" and not target.video_muted:
                    target.video_muted = True
                else:
                    return
                yield MediaMute(target.peer, ev.kind, True)
                yield Send(target.peer, MutedBy(kind=ev.kind, by=host.name))
                yield from self._broadcast(ParticipantUpdated(participant=target.info()))
            else:  # Remove
                self.banned_peers.add(target.peer)
                if target.account is not None:
                    self.banned_accounts.add(target.account)
                del self.participants[target.peer]
                yield Send(target.peer, Closed(reason="removed"))
                yield CloseSocket(target.peer)
                yield MediaLeave(target.peer)
                yield from self._broadcast(ParticipantLeft(peer_id=target.peer, reason=LeftReason.REMOVED))

    def _end(self) -> Iterator[Command]:
        self.ended = True
        if self.recording:  # saved before the room goes
            self.recording = False
            hosts = self._hosts()
            yield Recording(False, hosts[0].peer if hosts else "")
        # stored before anyone is told: whoever hears "ended" finds the link ended
        yield MeetingEnded()
        for p in [*self.participants.values(), *self.lobby.values()]:
            yield Send(p.peer, Closed(reason="ended"))
            yield CloseSocket(p.peer)
            if p.peer in self.participants:
                yield MediaLeave(p.peer)
        self.participants.clear()
        self.lobby.clear()

    # --- own state ------------------------------------------------------------------

    def _media_state(self, person: _Person, audio_muted: bool, video_muted: bool, screen: bool) -> Iterator[Command]:
        changed = person.screen != screen
        person.screen = screen
        if person.audio_muted != audio_muted:
            person.audio_muted = audio_muted
            changed = True
            yield MediaMute(person.peer, "audio", audio_muted)
        if person.video_muted != video_muted:
            person.video_muted = video_muted
            changed = True
            yield MediaMute(person.peer, "video", video_muted)
        if changed:
            yield from self._broadcast(ParticipantUpdated(participant=person.info()))

    def _gone(self, peer: str) -> Iterator[Command]:
        if peer in self.lobby:
            del self.lobby[peer]
            for h in self._hosts():
                yield Send(h.peer, LobbyGone(peer_id=peer))
        elif peer in self.participants:
            del self.participants[peer]
            yield MediaLeave(peer)
            yield from self._broadcast(ParticipantLeft(peer_id=peer, reason=LeftReason.LEFT))

    # --- helpers --------------------------------------------------------------------

    def _hosts(self) -> list[_Person]:
        return [p for p in self.participants.values() if p.role is Role.HOST]

    def _broadcast(self, message: MeetingServerMessage) -> Iterator[Command]:
        for p in self.participants.values():
            yield Send(p.peer, message)


def member_name(account: str, display_name: str) -> str:
    """The name a signed-in member is shown under: the account's display name, as a guest's would
    be accepted (control characters left out, whitespace trimmed, at most MAX_NAME_CHARS), or
    the address when that leaves nothing. Shown as text only, like every name."""
    name = "".join(c for c in display_name if c >= " " and c != "\x7f").strip()[:MAX_NAME_CHARS].strip()
    return name or account


def _error(peer: str, code: MeetingErrorCode, detail: str) -> Send:
    return Send(peer, MeetingError(code=code, detail=detail))
