"""The Python SFU with real aiortc participants in a private network namespace.

Three participants publish real encoded media (VP8 from aiortc's encoder over a moving test
pattern, Opus over a tone); each decodes the other two's audio and video; one leaves and rejoins
and is seen again. The server side must never create a decoder: every decoder aiortc makes is
recorded with the receiver queue its thread serves, and none may be a server receiver's.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from av import VideoFrame

from suite.voip.agent import PcmTrack, tone_pcm

FRAMES = 15  # decoded frames wanted per remote track


def pattern():
    """A moving test pattern (VideoStreamTrack gives flat frames only), encoded by aiortc."""
    from aiortc import VideoStreamTrack

    class _T(VideoStreamTrack):
        n = 0

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            self.n += 1
            w, h = 160, 120
            frame = VideoFrame(w, h, "yuv420p")
            row = bytes((x * 3 + self.n * 5) % 256 for x in range(w))
            frame.planes[0].update(row * h)
            for plane in frame.planes[1:]:
                plane.update(bytes([(self.n * 7) % 256]) * (plane.buffer_size))
            frame.pts, frame.time_base = pts, time_base
            return frame

    return _T()


def tone():
    return PcmTrack(tone_pcm(1.0), loop=True)


@pytest.fixture
def decoder_log(monkeypatch):
    """Every ``get_decoder`` call, tagged with the input queue of the decoder thread making it."""
    import aiortc.rtcrtpreceiver as rx

    made: list[object] = []
    local = threading.local()
    real_worker, real_get = rx.decoder_worker, rx.get_decoder

    def worker(loop, input_q, output_q, decode_error):
        local.queue = input_q
        return real_worker(loop, input_q, output_q, decode_error)

    def get_decoder(codec):
        made.append(getattr(local, "queue", None))
        return real_get(codec)

    monkeypatch.setattr(rx, "decoder_worker", worker)
    monkeypatch.setattr(rx, "get_decoder", get_decoder)
    return made


class Participant:
    def __init__(self, room, pid: str) -> None:
        self.room, self.pid = room, pid
        self.frames: Counter[tuple[str, str]] = Counter()  # (publisher, kind) -> decoded frames
        self.tasks: list[asyncio.Task] = []
        self.pc = None

    async def join(self) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        offer = await self.room.join(self.pid)
        # aiortc as answerer bundles only with max-bundle (browsers follow the offer's group).
        config = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        self.pc = pc = RTCPeerConnection(config)
        pc.on("track", lambda track: None)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        pc.addTrack(tone())
        pc.addTrack(pattern())
        await pc.setLocalDescription(await pc.createAnswer())
        await self.room.answer(self.pid, pc.localDescription.sdp)
        for tr in pc.getTransceivers()[2:]:
            self.tasks.append(asyncio.create_task(self._count(tr)))

    async def _count(self, transceiver) -> None:
        track = transceiver.receiver.track
        while True:
            frame = await track.recv()
            owner = self.room.layout(self.pid).get(transceiver.mid) if self.pid in self.room.peers else None
            if owner is not None and frame is not None:
                self.frames[(owner, track.kind)] += 1

    async def leave(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        await self.pc.close()
        await self.room.leave(self.pid)

    def got_all(self, others) -> bool:
        return all(self.frames[(o, k)] >= FRAMES for o in others for k in ("audio", "video"))


async def until(check, what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what
        await asyncio.sleep(0.1)


@pytest.fixture
def keyframe_requests(monkeypatch):
    """Keyframe requests (PLI/FIR) that reached the *publishers'* encoders. The SFU replaces
    ``_send_keyframe`` on its own senders, so the class attribute only serves the clients'."""
    from aiortc.rtcrtpsender import RTCRtpSender

    got: Counter[int] = Counter()
    real = RTCRtpSender._send_keyframe

    def spy(self):
        got[id(self)] += 1
        return real(self)

    monkeypatch.setattr(RTCRtpSender, "_send_keyframe", spy)
    return got


async def test_three_participants_forward_without_decoding(netns, loopback_ice, decoder_log, keyframe_requests):
    if not netns:
        return
    from suite.voip.sfu import SfuRoom

    layouts: list[str] = []
    room = SfuRoom([], max_participants=4, on_layout=layouts.append)
    people = {pid: Participant(room, pid) for pid in ("alice", "bob", "carol")}
    taps: list[object] = []  # every server receiver's tap, also of peers that left

    def note_taps() -> None:
        taps.extend(pub.tap for peer in room.peers.values() for pub in peer.publications.values())

    try:
        for p in people.values():
            await p.join()
        note_taps()
        for pid, p in people.items():
            others = [o for o in people if o != pid]
            await until(lambda p=p, others=others: p.got_all(others), f"{pid} got {dict(p.frames)}")

        # carol leaves: the others' slots for her are freed; she rejoins and is seen again.
        await people["carol"].leave()
        assert all("carol" not in room.layout(pid).values() for pid in ("alice", "bob"))
        for pid in ("alice", "bob"):
            people[pid].frames.clear()
        people["carol"] = Participant(room, "carol")
        await people["carol"].join()
        note_taps()
        for pid, p in people.items():
            others = [o for o in people if o != pid]
            await until(lambda p=p, others=others: p.got_all(others), f"after rejoin {pid} got {dict(p.frames)}")

        assert room.forwarded_frames() > 0
        server_queues = {id(t) for t in taps}
        assert decoder_log, "the clients decoded, so decoders were made"
        assert not [q for q in decoder_log if id(q) in server_queues], "the SFU created a decoder"
        assert all(q is not None for q in decoder_log)
        assert layouts.count("alice") >= 3  # bob, carol, carol again
        # Keyframe requests reached the publishers' encoders through the SFU: carol's rejoin
        # subscribed her to alice and bob mid-stream, so both were asked for a keyframe.
        video_senders = {id(p.pc.getTransceivers()[1].sender): pid for pid, p in people.items()}
        assert {video_senders[s] for s in keyframe_requests if s in video_senders} >= {"alice", "bob"}
    finally:
        for p in people.values():
            if p.pc is not None:
                await p.pc.close()
        await room.close()


async def test_a_stopped_slot_takes_no_frames_and_asks_no_keyframes():
    """A subscriber whose sender stopped (transport gone) must not fill a queue nobody reads: that
    "overflowed" every QUEUE_FRAMES frames and asked the publisher for a keyframe each time."""
    from suite.voip.sfu import QUEUE_FRAMES, SlotTrack

    asked: list[int] = []
    track = SlotTrack("video", lambda: asked.append(1))
    for i in range(QUEUE_FRAMES + 1):
        track.push(b"x", i * 3000, 90000)
    assert asked == [1]  # a live track that nobody drains overflows once
    track.stop()
    for i in range(5 * QUEUE_FRAMES):
        track.push(b"x", i * 3000, 90000)
    assert asked == [1]


async def test_a_closed_subscriber_is_no_longer_forwarded_to(loopback_ice):
    """When a participant's peer connection fails or closes while it is still in the room, the
    publishers stop pushing frames to its slots (offers only: no media flows in this test)."""
    from suite.voip.sfu import SfuRoom

    room = SfuRoom([], max_participants=3)
    try:
        await room.join("a")
        await room.join("b")
        a, b = room.peers["a"], room.peers["b"]
        a_tracks = {t for slot in a.slots for t in slot.tracks.values()}
        assert a_tracks & b.publications["video"].subscribers
        await a.pc.close()
        assert "a" in room.peers  # still in the room until its socket goes
        assert not a_tracks & (b.publications["video"].subscribers | b.publications["audio"].subscribers)
        assert {t for slot in b.slots for t in slot.tracks.values()} & a.publications["video"].subscribers
    finally:
        await room.close()
