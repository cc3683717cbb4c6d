"""Meetings of this process: the room state machines (:mod:`suite.voip.rooms`) wired to the SFU
(:mod:`suite.voip.sfu`) and to the sockets of ``/ws/meetings/<token>``.

:class:`MeetingHub` keeps one :class:`LiveRoom` per room that has sockets. Everything a socket
says is turned into a room event under the room's lock; the commands that come out are carried
out in order: messages to sockets, sockets closed, a server peer made (its offer and layout sent)
or dropped at the SFU, a track muted, the end recorded in the store. A room with no sockets left
is forgotten (its link still works until the host ends the meeting).

Media runs in the process that holds the room's sockets; with several gateway processes a link
must reach the same one (limit, see docs/ARCHITECTURE.md "Calls").
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from suite.voip import rooms
from suite.voip.meeting_messages import (
    ActiveSpeaker,
    Admit,
    Chat,
    Deny,
    End,
    Hand,
    Hello,
    Layer,
    Layout,
    Leave,
    Lock,
    MediaAnswer,
    MediaOffer,
    MediaState,
    MeetingClientMessage,
    MeetingError,
    MeetingErrorCode,
    MeetingServerMessage,
    Mute,
    PublishAnswer,
    PublishOffer,
    Reconnect,
    Record,
    RecordingState,
    Remove,
    meeting_message_to_json,
)
from suite.voip.meeting_store import MeetingRoom, MeetingRooms
from suite.voip.recording import Recording, RecordingStore, write_webm
from suite.voip.sfu import SfuError, SfuRoom

if TYPE_CHECKING:
    from suite.voip.janus import JanusRoom

log = structlog.get_logger("suite.voip.meetings")

Sink = Callable[[dict[str, Any]], None]
Closer = Callable[[], None]


@dataclass(eq=False)
class Socket:
    peer: str
    account: str | None
    sink: Sink
    close: Closer
    display_name: str = ""
    """The account's display name ("" for a guest, or an account without one)."""


@dataclass(eq=False)
class LiveRoom:
    room: MeetingRoom
    meeting: rooms.Meeting
    sfu: SfuRoom | JanusRoom
    """The room's media engine (``sfu_engine``): the Python SFU or a Janus VideoRoom."""
    sockets: dict[str, Socket] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    recording: Recording | None = None


class MeetingHub:
    def __init__(
        self,
        store: MeetingRooms,
        *,
        ice_servers: Callable[[], list[Any]],
        browser_ice: Callable[[str], list[dict[str, Any]]] = lambda _name: [],
        max_participants: int = 8,
        janus_urls: list[str] | None = None,
        janus_rec_dir: Path | None = None,
        recordings: RecordingStore | None = None,
    ) -> None:
        self.store = store
        self.janus_urls = janus_urls or []
        """``sfu_engine = "janus"``: the Janus instances rooms are spread over (rendezvous hash)."""
        self.janus_rec_dir = janus_rec_dir
        """Janus's recording folder (the same path here); None: no recording on Janus."""
        self.recordings = recordings
        """Where a finished recording goes (the host's Files; None: recording is refused)."""
        self._saving: set[asyncio.Task[None]] = set()
        self.ice_servers = ice_servers
        """The SFU's own (aiortc) ICE servers."""
        self.browser_ice = browser_ice
        """``iceServers`` handed to a participant's browser with the offer (by account or guest)."""
        self.max_participants = max_participants
        self.live: dict[int, LiveRoom] = {}

    # --- sockets -------------------------------------------------------------------

    def open(
        self, room: MeetingRoom, account: str | None, sink: Sink, close: Closer, display_name: str = ""
    ) -> tuple[LiveRoom, str]:
        live = self.live.get(room.id)
        if live is None:
            config = rooms.RoomConfig(
                owner=room.owner,
                title=room.title,
                lobby=room.lobby,
                password=room.password_hash is not None,
                max_participants=self.max_participants,
                e2ee=room.e2ee,
            )
            holder: list[LiveRoom] = []
            sfu: SfuRoom | JanusRoom
            if self.janus_urls:
                from suite.voip.janus import JanusRoom, pick_instance

                sfu = JanusRoom(
                    pick_instance(str(room.id), self.janus_urls),
                    room.id,
                    send=lambda pid, msg: self._send(holder[0], pid, msg),
                    ice=lambda pid: tuple(self.browser_ice(self._who(holder[0], pid))),
                    max_participants=self.max_participants,
                    on_speaker=lambda pid: self._speaker(holder[0], pid),
                    rec_dir=self.janus_rec_dir,
                )
            else:
                sfu = SfuRoom(
                    self.ice_servers(),
                    max_participants=self.max_participants,
                    on_layout=lambda pid: self._send_layout(holder[0], pid),
                    on_speaker=lambda pid: self._speaker(holder[0], pid),
                )
            live = LiveRoom(room, rooms.Meeting(config, ended=room.ended_at is not None), sfu)
            holder.append(live)
            self.live[room.id] = live
        peer = secrets.token_urlsafe(9)
        live.sockets[peer] = Socket(peer, account, sink, close, display_name)
        return live, peer

    async def message(self, live: LiveRoom, peer: str, msg: MeetingClientMessage, *, password_ok: bool = False) -> None:
        sock = live.sockets.get(peer)
        if sock is None:
            return
        async with live.lock:
            if isinstance(msg, Reconnect):
                if peer in live.meeting.participants and peer in live.sfu.peers:
                    try:
                        if await live.sfu.restart_ice(peer):  # Janus: the same connections, new ICE
                            return
                    except SfuError as exc:
                        log.info("meeting.ice_restart_failed", room=live.room.id, error=str(exc))
                    await live.sfu.leave(peer)
                    if live.recording is not None:
                        live.recording.gone(peer, asyncio.get_running_loop().time())
                    await self._media_join(live, peer)
                else:
                    self._send(
                        live, peer, MeetingError(code=MeetingErrorCode.NOT_JOINED, detail="join the meeting first")
                    )
                return
            if isinstance(msg, Layer):
                if peer in live.sfu.peers and msg.peer_id in live.sfu.peers:
                    live.sfu.set_layer(peer, msg.peer_id, msg.layer)
                return
            if isinstance(msg, (MediaAnswer, PublishOffer)):
                try:
                    if isinstance(msg, MediaAnswer):
                        await live.sfu.answer(peer, msg.sdp)
                    else:
                        self._send(live, peer, PublishAnswer(sdp=await live.sfu.publish(peer, msg.sdp)))
                except (SfuError, ValueError) as exc:
                    self._send(live, peer, MeetingError(code=MeetingErrorCode.MEDIA, detail=str(exc)[:200]))
                return
            event = _event(peer, sock.account, msg, password_ok, sock.display_name)
            await self._run(live, live.meeting.handle(event))

    async def close(self, live: LiveRoom, peer: str) -> None:
        async with live.lock:
            if live.sockets.pop(peer, None) is None:
                return
            await self._run(live, live.meeting.handle(rooms.Gone(peer)))
            if not live.sockets and self.live.get(live.room.id) is live:
                del self.live[live.room.id]
                self._stop_recording(live, None)
                await live.sfu.close()

    async def stop(self) -> None:
        for live in list(self.live.values()):
            self._stop_recording(live, None)
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)
        for live in list(self.live.values()):
            for sock in list(live.sockets.values()):
                sock.close()
            await live.sfu.close()
        self.live.clear()

    # --- commands ------------------------------------------------------------------

    async def _run(self, live: LiveRoom, commands: list[rooms.Command]) -> None:
        for cmd in commands:
            if isinstance(cmd, rooms.Send):
                self._send(live, cmd.peer, cmd.message)
            elif isinstance(cmd, rooms.CloseSocket):
                sock = live.sockets.get(cmd.peer)
                if sock is not None:
                    sock.close()
            elif isinstance(cmd, rooms.MediaJoin):
                await self._media_join(live, cmd.peer)
            elif isinstance(cmd, rooms.MediaLeave):
                await live.sfu.leave(cmd.peer)
                if live.recording is not None:
                    live.recording.gone(cmd.peer, asyncio.get_running_loop().time())
            elif isinstance(cmd, rooms.Recording):
                if cmd.on:
                    self._start_recording(live, cmd.host_peer)
                else:
                    self._stop_recording(live, cmd.host_peer)
            elif isinstance(cmd, rooms.MediaMute):
                if cmd.peer in live.sfu.peers:
                    live.sfu.set_muted(cmd.peer, cmd.kind, cmd.muted)
            elif isinstance(cmd, rooms.MeetingEnded):
                await self.store.mark_ended(live.room.id)
                log.info("meeting.ended", room=live.room.id)

    async def _media_join(self, live: LiveRoom, peer: str) -> None:
        try:
            offer = await live.sfu.join(peer)
        except SfuError as exc:
            self._send(live, peer, MeetingError(code=MeetingErrorCode.MEDIA, detail=str(exc)))
            return
        if offer is not None:  # None: the engine asked the page to publish (Janus)
            self._send(live, peer, MediaOffer(sdp=offer, ice_servers=tuple(self.browser_ice(self._who(live, peer)))))
            self._send_layout(live, peer)
        if live.sfu.speakers.speaker is not None:
            self._send(live, peer, ActiveSpeaker(peer_id=live.sfu.speakers.speaker))

    @staticmethod
    def _who(live: LiveRoom, peer: str) -> str:
        """The TURN user name of a participant: the account, or ``guest-<peer>``."""
        sock = live.sockets.get(peer)
        return (sock.account if sock and sock.account else None) or f"guest-{peer}"

    def _speaker(self, live: LiveRoom, pid: str) -> None:
        for peer in list(live.meeting.participants):
            self._send(live, peer, ActiveSpeaker(peer_id=pid))
        if live.recording is not None:
            # the recording follows the speaker (from its next keyframe)
            live.recording.want(pid, asyncio.get_running_loop().time())

    # --- recording ------------------------------------------------------------------

    def _start_recording(self, live: LiveRoom, host_peer: str) -> None:
        loop = asyncio.get_running_loop()
        speaker = live.sfu.speakers.speaker
        rec = Recording(started=loop.time(), prefer=speaker or host_peer, on_switch=live.sfu.request_keyframe)
        try:
            if self.recordings is None:
                raise SfuError("recording is not available")
            live.sfu.record(lambda owner, kind, data: rec.frame(owner, kind, data, loop.time()))
        except SfuError as exc:  # no Files wired, or Janus without janus_rec_dir / janus-pp-rec
            live.meeting.recording = False
            self._send(live, host_peer, MeetingError(code=MeetingErrorCode.MEDIA, detail=str(exc)))
            for peer in list(live.meeting.participants):
                self._send(live, peer, RecordingState(on=False))
            return
        live.recording = rec
        log.info("meeting.recording", room=live.room.id, on=True)

    def _stop_recording(self, live: LiveRoom, host_peer: str | None) -> None:
        rec, live.recording = live.recording, None
        if rec is None:
            return
        live.sfu.record(None)
        task = asyncio.get_running_loop().create_task(self._save(live, rec, host_peer))
        self._saving.add(task)
        task.add_done_callback(self._saving.discard)

    async def _save(self, live: LiveRoom, rec: Recording, host_peer: str | None) -> None:
        assert self.recordings is not None
        stamp = time.strftime("%Y-%m-%d %H.%M.%S", time.gmtime())
        title = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in live.room.title)[:80].strip()
        name = f"{title or 'Meeting'} {stamp}.webm"
        saved: str | None = None
        with tempfile.TemporaryDirectory(prefix="suite-recording-") as tmp:
            path = Path(tmp) / "recording.webm"
            try:
                rec = await live.sfu.recorded(rec)  # an engine that kept the frames itself (Janus)
                seconds = await asyncio.to_thread(write_webm, rec, path)
                saved = await self.recordings.save(live.room.owner, name, path)
                log.info("meeting.recording", room=live.room.id, on=False, saved=saved, seconds=round(seconds, 1))
            except Exception:
                log.exception("meeting.recording_failed", room=live.room.id)
        if host_peer is not None:
            if saved is None:
                self._send(
                    live, host_peer, MeetingError(code=MeetingErrorCode.MEDIA, detail="the recording was not saved")
                )
            else:
                self._send(live, host_peer, RecordingState(on=False, saved=saved))

    def _send(self, live: LiveRoom, peer: str, message: MeetingServerMessage) -> None:
        sock = live.sockets.get(peer)
        if sock is None:
            return
        try:
            sock.sink(meeting_message_to_json(message))
        except asyncio.QueueFull:  # a socket that does not read its messages is dropped
            sock.close()

    def _send_layout(self, live: LiveRoom, peer: str) -> None:
        if peer in live.sfu.peers:
            self._send(live, peer, Layout(slots=live.sfu.layout(peer)))


def _event(
    peer: str, account: str | None, msg: MeetingClientMessage, password_ok: bool, display_name: str = ""
) -> rooms.Event:
    match msg:
        case Hello():
            return rooms.Knock(peer, account, msg.name, password_ok, display_name)
        case Admit():
            return rooms.Admit(peer, msg.peer_id)
        case Deny():
            return rooms.Deny(peer, msg.peer_id)
        case Mute():
            return rooms.MuteOther(peer, msg.peer_id, msg.kind)
        case Remove():
            return rooms.Remove(peer, msg.peer_id)
        case Lock():
            return rooms.SetLock(peer, msg.locked)
        case Record():
            return rooms.SetRecording(peer, msg.on)
        case End():
            return rooms.EndMeeting(peer)
        case MediaState():
            return rooms.SetMediaState(peer, msg.audio_muted, msg.video_muted, msg.screen)
        case Hand():
            return rooms.SetHand(peer, msg.raised)
        case Chat():
            return rooms.SendChat(peer, msg.text)
        case Leave():
            return rooms.Gone(peer)
    raise AssertionError(f"unhandled message {msg!r}")  # MediaAnswer, PublishOffer, Layer: by the caller
