"""Selective forwarding unit on aiortc: encoded frames in, the same encoded frames out.

One :class:`SfuRoom` holds one server ``RTCPeerConnection`` per participant. The server makes the
offer, so the m-lines are fixed at join and never renegotiated:

* m-line 0 (audio) and 1 (video) are ``recvonly``: the participant publishes on them (a browser's
  or aiortc's ``addTrack`` after ``setRemoteDescription`` reuses them);
* then ``slots`` pairs of ``sendonly`` audio + video m-lines. Each slot carries one other
  participant; :meth:`SfuRoom.layout` says which (``mid -> participant``), the signalling sends it
  to the page whenever it changes.

**No decoding, no encoding.** aiortc's receiver assembles RTP packets into encoded frames in its
jitter buffer and hands them, as ``(codec, frame)``, to a decoder thread through a queue. Before
``receive()`` starts that thread we swap the queue of each server receiver for a
:class:`_Tap`: frames go straight to the subscribers' tracks and the thread idles until the
receiver stops (it never gets a frame, so it never creates a decoder). The subscribers' tracks
yield ``av.Packet`` objects; aiortc's sender then only *packetizes* them (``Encoder.pack``), it
never encodes. Each subscriber's sender has its own SSRC, sequence numbers and negotiated payload
type, which is the rewriting an SFU must do; timestamps are rebased per slot so that a slot
handed to another publisher keeps counting forward.

**Feedback.** NACKs are answered per hop by aiortc (the receiver NACKs the publisher, each sender
retransmits from its own history). Nobody re-encodes, so a keyframe request from a subscriber
(PLI/FIR) is relayed to the publisher as a PLI (RFC 4585 §6.3.1; at most one per
``KEYFRAME_INTERVAL``), and a slot given a new publisher asks for one at once.

**Codec match.** Forwarding only works when every subscriber negotiated the publisher's codec, so
every server transceiver offers VP8 (+RTX) for video and Opus for audio, nothing else.

The aiortc internals used (the receiver's decoder queue, the sender's ``_send_keyframe``, the
receiver's ``_send_rtcp_pli``) are pinned: tests/voip/test_sfu_aiortc_pin.py fails when aiortc
changes them.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import logging
import queue
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import av
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from suite.voip.speaker import SpeakerDetector

if TYPE_CHECKING:
    from suite.voip.recording import Recording

log = logging.getLogger(__name__)

KEYFRAME_INTERVAL: Final = 0.5
"""Seconds between two PLIs relayed to one publisher track."""
QUEUE_FRAMES: Final = 64
"""Encoded frames a slow subscriber may lag behind before its backlog is dropped."""
FORWARDED_MIME: Final = {"audio": ("audio/opus",), "video": ("video/VP8", "video/rtx")}
_DECODER_QUEUE: Final = "_RTCRtpReceiver__decoder_queue"


class SfuError(Exception):
    """A request the SFU cannot serve (unknown participant, room full, duplicate join)."""


class _Tap:
    """Stands in for an ``RTCRtpReceiver``'s decoder queue (``queue.Queue``).

    ``put((codec, frame))`` is called on the event loop by ``_handle_rtp_packet`` with each
    complete encoded frame: it is forwarded. ``put(None)`` (the receiver stopping) and ``get()``
    (the decoder thread, which only ever sees that ``None``) go through a real queue.
    """

    def __init__(self, on_frame: Callable[[Any, Any], None]) -> None:
        self._on_frame = on_frame
        self._end: queue.Queue[None] = queue.Queue()
        self.frames = 0

    def put(self, item: Any) -> None:
        if item is None:
            self._end.put(None)
            return
        codec, frame = item
        self.frames += 1
        self._on_frame(codec, frame)

    def get(self) -> None:
        return self._end.get()


class SlotTrack(MediaStreamTrack):
    """What one subscriber receives in one slot: encoded packets of whichever publisher is
    assigned, with timestamps rebased so that the RTP timestamp keeps increasing across
    publishers (a receiver's jitter buffer would drop frames that jump backwards)."""

    def __init__(self, kind: str, on_overflow: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[av.Packet | None] = asyncio.Queue()
        self._on_overflow = on_overflow
        self._offset: int | None = None
        self._last_out = 0
        self.forwarded = 0

    def rebase(self) -> None:
        """The next packet comes from another publisher: restart the timestamp mapping."""
        self._offset = None

    def push(self, data: bytes, timestamp: int, clock_rate: int) -> None:
        if self.readyState != "live":
            # The sender stopped (its transport failed or closed): nobody reads the queue, and
            # a queue that only fills would "overflow" every QUEUE_FRAMES frames and ask the
            # publisher for a keyframe each time.
            return
        if self._queue.qsize() >= QUEUE_FRAMES:
            # A backlog this long is stale; a video decoder then needs a new keyframe.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._on_overflow()
        if self._offset is None:
            step = clock_rate // 50  # one 20 ms step after the previous publisher's last frame
            self._offset = self._last_out + step - timestamp
        out = max(0, timestamp + self._offset)
        self._last_out = out
        packet = av.Packet(data)
        packet.pts = out
        packet.time_base = fractions.Fraction(1, clock_rate)
        self._queue.put_nowait(packet)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        packet = await self._queue.get()
        if packet is None:
            raise MediaStreamError
        self.forwarded += 1
        return packet

    def stop(self) -> None:
        super().stop()
        self._queue.put_nowait(None)


class Publication:
    """One published track (a participant's audio or video) and the slots it feeds."""

    def __init__(self, owner: str, kind: str, receiver: RTCRtpReceiver) -> None:
        self.owner, self.kind, self.receiver = owner, kind, receiver
        self.subscribers: set[SlotTrack] = set()
        self.tap = _Tap(self._forward)
        self.muted = False
        """Muted (by the host or by the participant): frames are dropped, not forwarded."""
        self.recorder: Callable[[str, str, bytes], None] | None = None
        """Also gets each forwarded frame while the room records (suite/voip/recording.py)."""
        self._last_pli = -1e9
        self._pli_pending: asyncio.TimerHandle | None = None
        setattr(receiver, _DECODER_QUEUE, self.tap)

    def _forward(self, codec: Any, frame: Any) -> None:
        if self.muted:
            return
        if self.recorder is not None:
            self.recorder(self.owner, self.kind, frame.data)
        for track in self.subscribers:
            track.push(frame.data, frame.timestamp, codec.clockRate)

    def request_keyframe(self) -> None:
        """Relay a keyframe request to the publisher as a PLI (RFC 4585 §6.3.1). Requests within
        ``KEYFRAME_INTERVAL`` of the last PLI are coalesced into one PLI at the interval's end
        (dropping them would leave a subscriber that joined just then without a keyframe)."""
        if self.kind != "video" or self._pli_pending is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_pli + KEYFRAME_INTERVAL - loop.time()
        if wait > 0:
            self._pli_pending = loop.call_later(wait, self._send_pli)
        else:
            self._send_pli()

    def _send_pli(self) -> None:
        self._pli_pending = None
        sources = self.receiver.getSynchronizationSources()
        if not sources:
            return  # nothing received yet: the first frames will be a keyframe anyway
        loop = asyncio.get_running_loop()
        self._last_pli = loop.time()
        task = loop.create_task(self.receiver._send_rtcp_pli(sources[0].source))
        task.add_done_callback(_log_failure)

    def close(self) -> None:
        self.subscribers.clear()
        if self._pli_pending is not None:
            self._pli_pending.cancel()
            self._pli_pending = None


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("relaying a PLI failed: %s", task.exception())


@dataclass(eq=False)
class Slot:
    """A pair of sendonly m-lines of one subscriber, bound to at most one publisher."""

    audio: RTCRtpTransceiver
    video: RTCRtpTransceiver
    tracks: dict[str, SlotTrack]
    publisher: str | None = None


@dataclass(eq=False)
class Peer:
    id: str
    pc: RTCPeerConnection
    publications: dict[str, Publication]
    slots: list[Slot] = field(default_factory=list)


def _prefer_forwardable(transceiver: RTCRtpTransceiver, kind: str) -> None:
    caps = RTCRtpSender.getCapabilities(kind)
    wanted = FORWARDED_MIME[kind]
    transceiver.setCodecPreferences([c for c in caps.codecs if c.mimeType in wanted])


class SfuRoom:
    """The media of one room. ``join`` returns the server's offer, ``answer`` takes the
    participant's answer, ``leave`` closes its peer; ``on_layout(participant)`` is called when
    that participant's slot map (:meth:`layout`) changed."""

    def __init__(
        self,
        ice_servers: Sequence[RTCIceServer],
        *,
        max_participants: int = 8,
        on_layout: Callable[[str], None] | None = None,
        on_speaker: Callable[[str], None] | None = None,
    ) -> None:
        if max_participants < 2:
            raise ValueError("max_participants must be at least 2")
        # Always explicit: an empty list means host candidates only, never aiortc's default
        # public STUN server.
        self._ice_servers = list(ice_servers)
        self.max_participants = max_participants
        self._on_layout = on_layout or (lambda _pid: None)
        self._on_speaker = on_speaker or (lambda _pid: None)
        self.speakers = SpeakerDetector()
        """Active speaker from the RFC 6464 levels in the publishers' audio packets."""
        self.peers: dict[str, Peer] = {}
        self._recorder: Callable[[str, str, bytes], None] | None = None

    # --- signalling ---------------------------------------------------------------

    async def join(self, pid: str) -> str:
        if pid in self.peers:
            raise SfuError("already joined")
        if len(self.peers) >= self.max_participants:
            raise SfuError("room full")
        # One transport for all m-lines (RFC 9143 BUNDLE): with aiortc's default "balanced"
        # policy the slots of one kind would get transports the answerer then bundles away.
        config = RTCConfiguration(iceServers=self._ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        pc = RTCPeerConnection(config)
        publications: dict[str, Publication] = {}
        for kind in ("audio", "video"):
            tr = pc.addTransceiver(kind, direction="recvonly")
            _prefer_forwardable(tr, kind)
            publications[kind] = Publication(pid, kind, tr.receiver)
            publications[kind].recorder = self._recorder
        self._listen_levels(publications["audio"])
        peer = Peer(pid, pc, publications)
        for _ in range(self.max_participants - 1):
            ref: list[Slot] = []  # filled below; the callbacks resolve the slot through it
            pair: dict[str, RTCRtpTransceiver] = {}
            tracks: dict[str, SlotTrack] = {}
            for kind in ("audio", "video"):
                track = SlotTrack(kind, functools.partial(self._keyframe_for, ref))
                tr = pc.addTransceiver(track, direction="sendonly")
                _prefer_forwardable(tr, kind)
                self._relay_keyframe_requests(tr.sender, ref)
                pair[kind], tracks[kind] = tr, track
            slot = Slot(pair["audio"], pair["video"], tracks)
            ref.append(slot)
            peer.slots.append(slot)
        self.peers[pid] = peer

        @pc.on("connectionstatechange")
        def _media_state() -> None:
            if pc.connectionState in ("failed", "closed") and self.peers.get(pid) is peer:
                self._media_lost(peer)

        await pc.setLocalDescription(await pc.createOffer())
        for other in list(self.peers.values()):
            if other.id != pid:
                self._assign(subscriber=peer, publisher=other.id)
                self._assign(subscriber=other, publisher=pid)
        return pc.localDescription.sdp

    async def publish(self, pid: str, sdp: str) -> str:
        """Publishing on a connection of its own is for engines that ask for it (Janus)."""
        raise SfuError("this engine takes media on the offer it made")

    async def answer(self, pid: str, sdp: str) -> None:
        peer = self._peer(pid)
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def leave(self, pid: str) -> None:
        peer = self.peers.pop(pid, None)
        if peer is None:
            return
        self.speakers.gone(pid)
        for other in self.peers.values():
            for slot in other.slots:
                if slot.publisher == pid:
                    slot.publisher = None
                    self._on_layout(other.id)
        for pub in peer.publications.values():
            pub.close()
        await peer.pc.close()

    async def close(self) -> None:
        for pid in list(self.peers):
            await self.leave(pid)

    def set_muted(self, pid: str, kind: str, muted: bool) -> None:
        """Stop or resume forwarding a participant's track; a resumed video asks for a keyframe."""
        pub = self._peer(pid).publications[kind]
        pub.muted = muted
        if not muted:
            pub.request_keyframe()

    def set_layer(self, pid: str, publisher: str, layer: int) -> None:
        """Simulcast layer choice: this SFU offers one encoding per publisher and forwards it as is."""

    def record(self, recorder: Callable[[str, str, bytes], None] | None) -> None:
        """Give every published frame (owner, kind, encoded bytes) also to ``recorder``, now and
        for participants who join later; None stops. Forwarding is not changed."""
        self._recorder = recorder
        for peer in self.peers.values():
            for pub in peer.publications.values():
                pub.recorder = recorder
                if recorder is not None:
                    pub.request_keyframe()

    async def restart_ice(self, pid: str) -> bool:
        """aiortc cannot answer an ICE restart: False, the caller replaces the peer."""
        return False

    async def recorded(self, rec: Recording) -> Recording:
        """The frames came live (:meth:`record`): ``rec`` has them all."""
        return rec

    def request_keyframe(self, pid: str) -> None:
        if pid in self.peers:
            self.peers[pid].publications["video"].request_keyframe()

    def layout(self, pid: str) -> dict[str, str]:
        """``mid -> publisher id`` of the participant's bound slots (audio and video mids)."""
        out: dict[str, str] = {}
        for slot in self._peer(pid).slots:
            if slot.publisher is not None:
                for tr in (slot.audio, slot.video):
                    if tr.mid is not None:
                        out[tr.mid] = slot.publisher
        return out

    def forwarded_frames(self) -> int:
        """Encoded frames taken from publishers' receivers (never decoded)."""
        return sum(pub.tap.frames for peer in self.peers.values() for pub in peer.publications.values())

    # --- internals ----------------------------------------------------------------

    def _peer(self, pid: str) -> Peer:
        try:
            return self.peers[pid]
        except KeyError:
            raise SfuError("unknown participant") from None

    def _relay_keyframe_requests(self, sender: RTCRtpSender, slot_ref: list[Slot]) -> None:
        # aiortc's sender answers PLI/FIR by forcing its *encoder* to make a keyframe; there is
        # no encoder here, so the request goes to the publisher instead (pinned hook).
        def send_keyframe() -> None:
            self._keyframe_for(slot_ref)

        sender._send_keyframe = send_keyframe  # type: ignore[method-assign]

    def _keyframe_for(self, slot_ref: list[Slot]) -> None:
        publisher = slot_ref[0].publisher if slot_ref else None
        if publisher is not None and publisher in self.peers:
            self.peers[publisher].publications["video"].request_keyframe()

    def _listen_levels(self, pub: Publication) -> None:
        """Read the RFC 6464 audio level of each RTP packet the publisher sends (aiortc parses
        the negotiated ``ssrc-audio-level`` extension into ``packet.extensions.audio_level``)
        before the receiver handles it; the handler is pinned (tests/voip/test_sfu_aiortc_pin.py)."""
        receiver = pub.receiver
        handle = receiver._handle_rtp_packet

        async def with_level(packet: Any, arrival_time_ms: int) -> None:
            level = packet.extensions.audio_level
            if level is not None and not pub.muted and self.peers.get(pub.owner) is not None:
                changed = self.speakers.level(pub.owner, level[1], asyncio.get_running_loop().time())
                if changed is not None:
                    self._on_speaker(changed)
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = with_level  # type: ignore[method-assign]

    def _media_lost(self, peer: Peer) -> None:
        """The participant's transport failed (ICE consent expired, RFC 7675 §5.1) or closed
        while it is still in the room: stop forwarding to it. Its slots keep their publishers,
        so the layout stays true; ``leave`` (its socket going away) frees them."""
        log.info("sfu: media of %s %s", peer.id, peer.pc.connectionState)
        for slot in peer.slots:
            for kind, track in slot.tracks.items():
                for other in self.peers.values():
                    other.publications[kind].subscribers.discard(track)

    def _assign(self, *, subscriber: Peer, publisher: str) -> None:
        slot = next((s for s in subscriber.slots if s.publisher is None), None)
        if slot is None:  # cannot happen: there are max_participants - 1 slots
            raise SfuError("no free slot")
        slot.publisher = publisher
        pub = self.peers[publisher]
        for kind, track in slot.tracks.items():
            for other in self.peers.values():
                other.publications[kind].subscribers.discard(track)
            track.rebase()
            pub.publications[kind].subscribers.add(track)
        pub.publications["video"].request_keyframe()
        self._on_layout(subscriber.id)
