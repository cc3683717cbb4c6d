"""Call-signalling wire messages: typed dataclasses validated at the edge.

Every frame a browser sends on the signalling WebSocket is one JSON object with a
``type`` discriminator.  :func:`decode_client_frame` checks the size *before*
parsing, :func:`parse_client_message` validates the decoded object against the
closed set of client messages (unknown types, unknown fields, wrong types and
oversized strings are refused with a :class:`ClientMessageError` that carries a
typed :class:`ErrorCode`).  Inside the call core only these dataclasses are used.

Server messages are dataclasses too; :func:`server_message_to_json` turns one
into the JSON object sent to a session.  :func:`client_json_schema` and
:func:`server_json_schema` publish both schemas (JSON Schema 2020-12, generated
by pydantic) for the browser page and for documentation.

The SDP payload is carried opaquely (RFC 8866 §5: a session description starts
with ``v=0``; we check only that and its size), ICE candidates use the field
names of the W3C ``RTCIceCandidateInit`` dictionary so that the page can send
``candidate.toJSON()`` as is.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from pydantic.dataclasses import dataclass

# --- limits -----------------------------------------------------------------

MAX_FRAME_BYTES: Final = 64 * 1024
"""Largest signalling frame accepted from a client, checked before json.loads."""
MAX_SDP_CHARS: Final = 32 * 1024
MAX_CANDIDATE_CHARS: Final = 1024
MAX_ACCOUNT_CHARS: Final = 320  # RFC 5321 §4.5.3.1: 64 local + @ + 255 domain
MAX_ROOM_INVITEES: Final = 16
MAX_ROOM_PARTICIPANTS: Final = 4
"""Mesh rooms: every pair holds its own peer connection, so 4 means 6 links."""

_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{8,64}$"
_PEER_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
# An account name is opaque here (the account store decides what exists); it
# must be printable and free of whitespace so that it is safe in logs, in the
# TURN username ("expiry:account") and in history rows.
_ACCOUNT_PATTERN: Final = r"^[^\s\x00-\x1f\x7f]+$"

_CONFIG: Final = ConfigDict(extra="forbid", populate_by_name=True)

CallId = Annotated[str, Strict(), StringConstraints(pattern=_ID_PATTERN)]
RoomId = Annotated[str, Strict(), StringConstraints(pattern=_ID_PATTERN)]
PeerId = Annotated[str, Strict(), StringConstraints(pattern=_PEER_PATTERN)]
Account = Annotated[
    str,
    Strict(),
    StringConstraints(min_length=1, max_length=MAX_ACCOUNT_CHARS, pattern=_ACCOUNT_PATTERN),
]
Sdp = Annotated[
    str,
    Strict(),
    # RFC 8866 §5: "v=" is the first line of a session description.
    StringConstraints(min_length=4, max_length=MAX_SDP_CHARS, pattern=r"^v=0\r?\n"),
]
Media = Literal["audio", "video"]


class ErrorCode(StrEnum):
    """Codes of the ``error`` server message; stable, documented for the page."""

    TOO_LARGE = "too_large"
    BAD_JSON = "bad_json"
    UNKNOWN_TYPE = "unknown_type"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_CALL = "unknown_call"  # also for calls the session is not party to
    CALL_ID_IN_USE = "call_id_in_use"
    SELF_CALL = "self_call"
    SESSION_BUSY = "session_busy"  # this session/account already in a call
    NOT_ALLOWED = "not_allowed"  # party to the call, but not this session/role
    INVALID_STATE = "invalid_state"
    UNKNOWN_ROOM = "unknown_room"  # also for rooms the account is not invited to
    ROOM_ID_IN_USE = "room_id_in_use"
    ROOM_FULL = "room_full"
    ALREADY_IN_ROOM = "already_in_room"
    UNKNOWN_PEER = "unknown_peer"


# --- client -> server ---------------------------------------------------------


@dataclass(frozen=True, config=_CONFIG)
class IceCandidate:
    """W3C webrtc-pc ``RTCIceCandidateInit``; ``candidate == ""`` ends gathering."""

    candidate: Annotated[str, Strict(), StringConstraints(max_length=MAX_CANDIDATE_CHARS)]
    sdp_mid: Annotated[str, Strict(), StringConstraints(max_length=64)] | None = Field(default=None, alias="sdpMid")
    sdp_mline_index: Annotated[int, Strict(), Field(ge=0, le=1023)] | None = Field(default=None, alias="sdpMLineIndex")
    username_fragment: Annotated[str, Strict(), StringConstraints(max_length=256)] | None = Field(
        default=None, alias="usernameFragment"
    )


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Invite:
    """Caller asks to call ``to``; every open session of ``to`` will ring."""

    type: Literal["invite"] = "invite"
    call_id: CallId
    to: Account
    media: Media = "audio"


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RingingAck:
    """A callee session confirms it is ringing (shown to the caller once)."""

    type: Literal["ringing"] = "ringing"
    call_id: CallId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Accept:
    type: Literal["accept"] = "accept"
    call_id: CallId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Decline:
    type: Literal["decline"] = "decline"
    call_id: CallId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Busy:
    """A callee session answers busy (e.g. the device is in a native call)."""

    type: Literal["busy"] = "busy"
    call_id: CallId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Cancel:
    """The caller gives up before the call is accepted."""

    type: Literal["cancel"] = "cancel"
    call_id: CallId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Hangup:
    type: Literal["hangup"] = "hangup"
    call_id: CallId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Offer:
    type: Literal["offer"] = "offer"
    call_id: CallId
    sdp: Sdp


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Answer:
    type: Literal["answer"] = "answer"
    call_id: CallId
    sdp: Sdp


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Ice:
    type: Literal["ice"] = "ice"
    call_id: CallId
    candidate: IceCandidate


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class AddPerson:
    """A party of an accepted call adds ``to``: the call becomes a meeting (``move_to_meeting``)."""

    type: Literal["add_person"] = "add_person"
    call_id: CallId
    to: Account


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomCreate:
    """Create a mesh room, join it, and invite accounts (who may then join)."""

    type: Literal["room_create"] = "room_create"
    room_id: RoomId
    invite: Annotated[tuple[Account, ...], Field(max_length=MAX_ROOM_INVITEES)] = ()


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomJoin:
    type: Literal["room_join"] = "room_join"
    room_id: RoomId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomLeave:
    type: Literal["room_leave"] = "room_leave"
    room_id: RoomId


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomOffer:
    type: Literal["room_offer"] = "room_offer"
    room_id: RoomId
    to: PeerId
    sdp: Sdp


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomAnswer:
    type: Literal["room_answer"] = "room_answer"
    room_id: RoomId
    to: PeerId
    sdp: Sdp


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomIce:
    type: Literal["room_ice"] = "room_ice"
    room_id: RoomId
    to: PeerId
    candidate: IceCandidate


ClientMessage: TypeAlias = (
    Invite
    | RingingAck
    | Accept
    | Decline
    | Busy
    | Cancel
    | Hangup
    | Offer
    | Answer
    | Ice
    | AddPerson
    | RoomCreate
    | RoomJoin
    | RoomLeave
    | RoomOffer
    | RoomAnswer
    | RoomIce
)

_CLIENT_ADAPTER: Final[TypeAdapter[ClientMessage]] = TypeAdapter(Annotated[ClientMessage, Field(discriminator="type")])
CLIENT_TYPES: Final[frozenset[str]] = frozenset(c.__dataclass_fields__["type"].default for c in ClientMessage.__args__)


# --- server -> client ---------------------------------------------------------


class StopReason(StrEnum):
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    DECLINED = "declined"
    BUSY = "busy"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"


class EndReason(StrEnum):
    HANGUP = "hangup"
    DECLINED = "declined"
    BUSY = "busy"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"
    DISCONNECTED = "disconnected"
    MOVED = "moved"  # the call went on as a meeting


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Incoming:
    """A call rings; with ``meeting`` (a room's link token) accepting it opens that meeting."""

    type: Literal["incoming"] = "incoming"
    call_id: str
    caller: str
    media: Media
    meeting: str | None = None


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Ringing:
    type: Literal["ringing"] = "ringing"
    call_id: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Accepted:
    """Sent to both bound sessions; ``peer`` is the other party's account."""

    type: Literal["accepted"] = "accepted"
    call_id: str
    peer: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class StopRinging:
    type: Literal["stop_ringing"] = "stop_ringing"
    call_id: str
    reason: StopReason


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class CallEnded:
    type: Literal["call_ended"] = "call_ended"
    call_id: str
    reason: EndReason


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class MoveToMeeting:
    """Leave the 1:1 call (close its peer connection) and open the meeting at ``url``."""

    type: Literal["move_to_meeting"] = "move_to_meeting"
    call_id: str
    token: str
    url: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class Diverted:
    """The callee did not answer; the caller is handed to the voicemail agent."""

    type: Literal["diverted"] = "diverted"
    call_id: str
    target: Literal["voicemail"] = "voicemail"


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RelayedOffer:
    type: Literal["offer"] = "offer"
    call_id: str
    sender: str
    sdp: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RelayedAnswer:
    type: Literal["answer"] = "answer"
    call_id: str
    sender: str
    sdp: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RelayedIce:
    type: Literal["ice"] = "ice"
    call_id: str
    sender: str
    candidate: IceCandidate


@dataclass(frozen=True, config=_CONFIG)
class RoomPeer:
    peer_id: str
    account: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomInvite:
    type: Literal["room_invite"] = "room_invite"
    room_id: str
    inviter: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomJoined:
    """To the joiner: its own peer id and the peers it must send offers to."""

    type: Literal["room_joined"] = "room_joined"
    room_id: str
    peer_id: str
    peers: tuple[RoomPeer, ...]


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomPeerJoined:
    type: Literal["room_peer_joined"] = "room_peer_joined"
    room_id: str
    peer: RoomPeer


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomPeerLeft:
    type: Literal["room_peer_left"] = "room_peer_left"
    room_id: str
    peer_id: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomLeft:
    type: Literal["room_left"] = "room_left"
    room_id: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomRelayedOffer:
    type: Literal["room_offer"] = "room_offer"
    room_id: str
    sender: str  # peer id
    sdp: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomRelayedAnswer:
    type: Literal["room_answer"] = "room_answer"
    room_id: str
    sender: str
    sdp: str


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class RoomRelayedIce:
    type: Literal["room_ice"] = "room_ice"
    room_id: str
    sender: str
    candidate: IceCandidate


@dataclass(frozen=True, config=_CONFIG, kw_only=True)
class ErrorMessage:
    type: Literal["error"] = "error"
    code: ErrorCode
    detail: str
    call_id: str | None = None
    room_id: str | None = None


ServerMessage: TypeAlias = (
    Incoming
    | Ringing
    | Accepted
    | StopRinging
    | CallEnded
    | MoveToMeeting
    | Diverted
    | RelayedOffer
    | RelayedAnswer
    | RelayedIce
    | RoomInvite
    | RoomJoined
    | RoomPeerJoined
    | RoomPeerLeft
    | RoomLeft
    | RoomRelayedOffer
    | RoomRelayedAnswer
    | RoomRelayedIce
    | ErrorMessage
)

_SERVER_ADAPTER: Final[TypeAdapter[ServerMessage]] = TypeAdapter(Annotated[ServerMessage, Field(discriminator="type")])


# --- edge -----------------------------------------------------------------------


class ClientMessageError(ValueError):
    """A frame was refused at the edge; ``to_server()`` is the reply to send."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail

    def to_server(self) -> ErrorMessage:
        return ErrorMessage(code=self.code, detail=self.detail)


def decode_client_frame(raw: bytes | str, *, max_bytes: int = MAX_FRAME_BYTES) -> ClientMessage:
    """Size-check, JSON-decode and validate one WebSocket text frame."""
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > max_bytes:  # limit checked before parsing
        raise ClientMessageError(ErrorCode.TOO_LARGE, f"frame exceeds {max_bytes} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ClientMessageError(ErrorCode.BAD_JSON, "frame is not valid JSON") from None
    return parse_client_message(data)


def parse_client_message(data: object) -> ClientMessage:
    """Validate a decoded JSON object into one of the client message dataclasses."""
    if not isinstance(data, dict):
        raise ClientMessageError(ErrorCode.INVALID_MESSAGE, "message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        raise ClientMessageError(ErrorCode.UNKNOWN_TYPE, "unknown message type")
    try:
        return _CLIENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        # The client's own input is never echoed back.
        raise ClientMessageError(ErrorCode.INVALID_MESSAGE, f"{where}: {first['type']}") from None


def server_message_to_json(message: ServerMessage) -> dict[str, Any]:
    return _SERVER_ADAPTER.dump_python(message, mode="json", by_alias=True)


def client_message_to_json(message: ClientMessage) -> dict[str, Any]:
    """The JSON a client would send for ``message`` (used by tests and tools)."""
    return _CLIENT_ADAPTER.dump_python(message, mode="json", by_alias=True)


def client_json_schema() -> dict[str, Any]:
    return _CLIENT_ADAPTER.json_schema(by_alias=True)


def server_json_schema() -> dict[str, Any]:
    return _SERVER_ADAPTER.json_schema(by_alias=True)
