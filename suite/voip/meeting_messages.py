"""Meeting-signalling wire messages (``/ws/meetings/<token>``): typed, validated at the edge.

Same conventions as :mod:`suite.voip.messages` (one JSON object per frame, ``type``
discriminator, size checked before parsing, unknown fields refused, the client's input never
echoed back). A meeting socket is opened by a signed-in member (cookie) or by a guest holding
the link; its first message is ``hello``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import ConfigDict, Field, Strict, StringConstraints, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from suite.voip.messages import MAX_FRAME_BYTES, Sdp

MAX_NAME_CHARS: Final = 64
MAX_CHAT_CHARS: Final = 2000
MAX_PASSWORD_CHARS: Final = 256

_CONFIG: Final = ConfigDict(extra="forbid", populate_by_name=True)
PeerId = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
# A display name is shown as text only; control characters are refused, whitespace trimmed.
DisplayName = Annotated[
    str,
    Strict(),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$"),
]
Kind = Literal["audio", "video"]


class MeetingErrorCode(StrEnum):
    TOO_LARGE = "too_large"
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    NOT_JOINED = "not_joined"
    ALREADY_JOINED = "already_joined"
    NAME_REQUIRED = "name_required"
    PASSWORD_REQUIRED = "password_required"  # also for a wrong password
    LOCKED = "locked"
    FULL = "full"
    ENDED = "ended"
    BANNED = "banned"
    NOT_HOST = "not_host"
    UNKNOWN_PEER = "unknown_peer"
    MEDIA = "media"
    E2EE = "e2ee"  # not possible in an end-to-end encrypted meeting (recording)


# --- client -> server -------------------------------------------------------------


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Hello:
    """Ask to join. Guests must give a name; a member is shown under the account's display name
    (else the address), whatever name it sends."""

    type: Literal["hello"] = "hello"
    name: DisplayName | None = None
    password: Annotated[str, Strict(), StringConstraints(max_length=MAX_PASSWORD_CHARS)] | None = None


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class MediaAnswer:
    """The answer to the server's ``offer`` (SFU peer connection)."""

    type: Literal["answer"] = "answer"
    sdp: Sdp


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class PublishOffer:
    """The page's offer of its own media on a connection of its own (engines that ask for it with
    ``publish``: Janus)."""

    type: Literal["publish_offer"] = "publish_offer"
    sdp: Sdp


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Admit:
    type: Literal["admit"] = "admit"
    peer_id: PeerId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Deny:
    type: Literal["deny"] = "deny"
    peer_id: PeerId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Mute:
    """Host mutes someone (the SFU stops forwarding; only the participant can unmute)."""

    type: Literal["mute"] = "mute"
    peer_id: PeerId
    kind: Kind = "audio"


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Remove:
    type: Literal["remove"] = "remove"
    peer_id: PeerId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Lock:
    type: Literal["lock"] = "lock"
    locked: Annotated[bool, Strict()]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class End:
    type: Literal["end"] = "end"


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class MediaState:
    """The participant's own microphone / camera state; ``screen``: the video it sends is a shared
    screen (the other pages put it on the stage)."""

    type: Literal["media_state"] = "media_state"
    audio_muted: Annotated[bool, Strict()]
    video_muted: Annotated[bool, Strict()]
    screen: Annotated[bool, Strict()] = False


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Layer:
    """Which simulcast layer of a participant's video this page wants (0 lowest), from the size
    of its tile. Engines that forward one layer only ignore it."""

    type: Literal["layer"] = "layer"
    peer_id: PeerId
    layer: Annotated[int, Strict(), Field(ge=0, le=2)]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Hand:
    type: Literal["hand"] = "hand"
    raised: Annotated[bool, Strict()]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Chat:
    type: Literal["chat"] = "chat"
    text: Annotated[str, Strict(), StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CHAT_CHARS)]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Record:
    """The host starts or stops recording the meeting into its Files."""

    type: Literal["record"] = "record"
    on: Annotated[bool, Strict()]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Reconnect:
    """The page's media transport failed (a network change); it stays in the room. The Python SFU
    replaces its peer (a new ``offer``: aiortc cannot answer an ICE restart); Janus restarts ICE on
    the same connections (``publish`` with ``restart``, and a new ``offer`` for receiving)."""

    type: Literal["reconnect"] = "reconnect"


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Leave:
    type: Literal["leave"] = "leave"


MeetingClientMessage: TypeAlias = (
    Hello
    | MediaAnswer
    | PublishOffer
    | Layer
    | Admit
    | Deny
    | Mute
    | Remove
    | Lock
    | End
    | MediaState
    | Hand
    | Chat
    | Record
    | Reconnect
    | Leave
)

_CLIENT: Final[TypeAdapter[MeetingClientMessage]] = TypeAdapter(
    Annotated[MeetingClientMessage, Field(discriminator="type")]
)
CLIENT_TYPES: Final[frozenset[str]] = frozenset(
    c.__dataclass_fields__["type"].default for c in MeetingClientMessage.__args__
)


# --- server -> client -------------------------------------------------------------


class Role(StrEnum):
    HOST = "host"
    MEMBER = "member"
    GUEST = "guest"


class LeftReason(StrEnum):
    LEFT = "left"
    REMOVED = "removed"
    ENDED = "ended"


@dataclass(frozen=True, config=_CONFIG)
class ParticipantInfo:
    peer_id: str
    name: str
    role: Role
    audio_muted: bool = False
    video_muted: bool = False
    hand_raised: bool = False
    screen: bool = False


@dataclass(frozen=True, config=_CONFIG)
class Knocker:
    peer_id: str
    name: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Waiting:
    """In the lobby until a host admits."""

    type: Literal["waiting"] = "waiting"


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Joined:
    type: Literal["joined"] = "joined"
    peer_id: str
    role: Role
    title: str
    locked: bool
    participants: tuple[ParticipantInfo, ...]
    lobby: tuple[Knocker, ...] = ()  # hosts only
    e2ee: bool = False  # frames are end-to-end encrypted (the key is never sent to the server)


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class ParticipantJoined:
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class ParticipantUpdated:
    type: Literal["participant_updated"] = "participant_updated"
    participant: ParticipantInfo


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class ParticipantLeft:
    type: Literal["participant_left"] = "participant_left"
    peer_id: str
    reason: LeftReason


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class LobbyKnock:
    type: Literal["lobby_knock"] = "lobby_knock"
    knocker: Knocker


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class LobbyGone:
    """A knocker left the lobby (admitted, denied or gone)."""

    type: Literal["lobby_gone"] = "lobby_gone"
    peer_id: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomState:
    type: Literal["room_state"] = "room_state"
    locked: bool


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RecordingState:
    """Sent to everyone when recording starts or stops and to each one who joins while it runs:
    the page shows a notice while ``on``. To the host, ``saved`` is where the file went in Files."""

    type: Literal["recording"] = "recording"
    on: bool
    saved: str | None = None


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class ActiveSpeaker:
    """Who speaks now (from the audio levels in the participants' packets): the speaker view."""

    type: Literal["speaker"] = "speaker"
    peer_id: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class MutedBy:
    """The host muted you: stop sending this kind (the SFU already drops it)."""

    type: Literal["muted"] = "muted"
    kind: Kind
    by: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Closed:
    """The server is done with this socket: denied at the lobby, removed, or the meeting ended."""

    type: Literal["closed"] = "closed"
    reason: Literal["denied", "removed", "ended"]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class ChatMessage:
    type: Literal["chat"] = "chat"
    sender: str  # peer id
    name: str
    text: str
    seq: int


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class MediaOffer:
    """The SFU's offer; m-lines 0/1 carry what you publish, the rest are slots (see ``layout``)."""

    type: Literal["offer"] = "offer"
    sdp: str
    ice_servers: tuple[dict[str, Any], ...] = ()
    """``RTCConfiguration.iceServers`` for this peer (our TURN with a fresh credential, also for
    guests, who cannot call /api/calls/ice)."""
    publish: bool = True
    """True: m-lines 0/1 are the page's to publish on (the Python SFU's one connection). False:
    this offer only receives (Janus); the page publishes on another connection when asked
    (``publish``), and a later offer with ``publish`` false renegotiates the receiving one."""


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class PublishRequest:
    """Offer your media on a connection of its own (``publish_offer``); the engine answers with
    ``publish_answer``."""

    type: Literal["publish"] = "publish"
    ice_servers: tuple[dict[str, Any], ...] = ()
    restart: bool = False
    """Offer again on the publishing connection with new ICE credentials (RFC 8445 §9: an ICE
    restart); False: a new publishing connection."""


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class PublishAnswer:
    type: Literal["publish_answer"] = "publish_answer"
    sdp: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Layout:
    """Which participant each receiving m-line (mid) carries now."""

    type: Literal["layout"] = "layout"
    slots: dict[str, str]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class MeetingError:
    type: Literal["error"] = "error"
    code: MeetingErrorCode
    detail: str


MeetingServerMessage: TypeAlias = (
    Waiting
    | Joined
    | ParticipantJoined
    | ParticipantUpdated
    | ParticipantLeft
    | LobbyKnock
    | LobbyGone
    | RoomState
    | RecordingState
    | ActiveSpeaker
    | MutedBy
    | Closed
    | ChatMessage
    | MediaOffer
    | PublishRequest
    | PublishAnswer
    | Layout
    | MeetingError
)
_SERVER: Final[TypeAdapter[MeetingServerMessage]] = TypeAdapter(
    Annotated[MeetingServerMessage, Field(discriminator="type")]
)


class MeetingMessageError(ValueError):
    def __init__(self, code: MeetingErrorCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code, self.detail = code, detail

    def to_server(self) -> MeetingError:
        return MeetingError(code=self.code, detail=self.detail)


def decode_meeting_frame(raw: bytes | str, *, max_bytes: int = MAX_FRAME_BYTES) -> MeetingClientMessage:
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:  # limit checked before parsing
        raise MeetingMessageError(MeetingErrorCode.TOO_LARGE, f"frame exceeds {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise MeetingMessageError(MeetingErrorCode.BAD_JSON, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise MeetingMessageError(MeetingErrorCode.INVALID_MESSAGE, "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise MeetingMessageError(MeetingErrorCode.UNKNOWN_TYPE, "unknown message type")
    try:
        return _CLIENT.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        raise MeetingMessageError(MeetingErrorCode.INVALID_MESSAGE, f"{where}: {first['type']}") from None


def meeting_message_to_json(message: MeetingServerMessage) -> dict[str, Any]:
    return _SERVER.dump_python(message, mode="json", by_alias=True)
