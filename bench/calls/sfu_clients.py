"""One client process of bench/calls/sfu.py: meeting participants (aiortc), driven over stdin/stdout.

    python bench/calls/sfu_clients.py --port P --token T --media media.pickle --hosts 127.0.0.1[,10.99.0.1]

The bench starts several of these (``--client-procs``) so that the clients, not the SFU, stop being
the limit: one Python process is one core at most (the GIL), and ten aiortc peers receiving 90
streams saturated it. Each process has its own event loop and its own participants. Commands (one
JSON object a line on stdin; one JSON answer a line on stdout):

* ``{"op": "join", "names": [...], "wait_video": true, "decoders": [...]}`` — join these guests from
  the meeting link (one after the other); with ``wait_video`` wait (up to 20 s) for each one's first
  *decoded* remote video frame (first complete one for a participant that does not decode). With
  ``decoders``, only the participants named there decode (the decoding sample); the others count
  complete frames on a light path (:func:`count_only`). Answer: ``joined`` (count), ``join_s`` (socket
  open -> first decoded remote video frame, per participant that got one), ``failures``.
* ``{"op": "stats"}`` — cumulative counters: video frames sent, complete video frames received
  (jitter buffer), video frames *decoded* (complete ones for a participant
  outside the decoding sample), per participant (``decoded``, ``sent`` and ``decodes`` lists, the
  bench derives each receiver's delivery), complete frames per receiving video track (``taps``: how
  many streams a receiver gets), decode errors, connected peers, NACKs and PLIs sent.
* ``{"op": "stop"}`` — close every peer and exit.

What the participants send is encoded once by the bench (``--media``: a pickle of VP8 + Opus
packets, bench/calls/load.py) and shared by all processes; what they receive is decoded (libvpx via
PyAV, on the event loop, one decoder per receiving track) and counted, the way a browser's
``framesDecoded`` counts: a frame the SFU forwarded but that cannot be decoded (a lost reference, no
keyframe after a switch) does not count as delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import pickle
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FEEDBACK = {"nack": 0, "pli": 0}


def count_feedback() -> None:
    """Count the NACKs and PLIs the bench clients' receivers send (a loss or a stalled jitter buffer)."""
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    for name, key in (("_send_rtcp_nack", "nack"), ("_send_rtcp_pli", "pli")):
        original = getattr(RTCRtpReceiver, name)

        async def counted(self, *args, _original=original, _key=key):
            FEEDBACK[_key] += 1
            return await _original(self, *args)

        setattr(RTCRtpReceiver, name, counted)


def sha256_only(sdp: str) -> str:
    """aiortc lists sha-256, sha-384 and sha-512 fingerprints; Janus keeps the last one it reads and
    then expects sha-256 (its DTLS check fails). Bench client only: keep the sha-256 lines."""
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=fingerprint:") or "sha-256" in line
    )


def keyframe_track():
    """bench/calls/load.PacketTrack that honours keyframe requests: the SFU relays subscribers'
    PLIs to the publisher, and a real encoder would send a keyframe; here the loop restarts at its
    first packet (the loop's only keyframe). Timestamps keep counting."""
    from bench.calls.load import VIDEO_CLOCK, VIDEO_FPS, PacketTrack

    class KeyframeTrack(PacketTrack):
        base = 0

        def restart(self) -> None:
            self.base = self.sent

        async def recv(self):
            pkt = await super().recv()
            index = (self.sent - 1 - self.base) % len(self.packets)
            out = type(pkt)(self.packets[index])
            out.pts, out.time_base = pkt.pts, pkt.time_base
            return out

    return lambda packets: KeyframeTrack("video", packets, VIDEO_FPS, VIDEO_CLOCK)


class DecodingTap:
    """Stands in for an aiortc receiver's decoder queue (like the SFU's ``_Tap``): each complete
    encoded frame the jitter buffer hands over is decoded here, on the event loop, instead of in
    one decoder thread per receiver (90 threads woken 30 times a second cost more than decoding)."""

    def __init__(self, kind: str, decode: bool) -> None:
        import queue

        self.kind = kind
        self.frames = 0
        self.decoded = 0
        self.errors = 0
        self._end: queue.Queue[None] = queue.Queue()
        self._codec = None
        if decode and kind == "video":
            import av

            self._codec = av.CodecContext.create("vp8", "r")

    def put(self, item) -> None:
        if item is None:
            self._end.put(None)
            return
        _codec, frame = item
        self.frames += 1
        if self._codec is None:
            if self.kind == "video":
                self.decoded += 1  # --no-decode: complete frames stand for decoded ones
            return
        import av

        try:
            self.decoded += len(self._codec.decode(av.Packet(frame.data)))
        except av.error.FFmpegError:
            self.errors += 1

    def get(self) -> None:
        return self._end.get()


class _Stream:
    """One incoming video stream of a counting participant: its receiver's tap, NACK state, and the
    frames seen in part (RTP timestamp -> [first seq, marker seq, seqs])."""

    __slots__ = ("tap", "receiver", "ssrc", "rtx", "nack", "pending", "done", "sequence_number")

    def __init__(self, tap: DecodingTap, receiver, ssrc: int, rtx: bool, nack) -> None:
        self.tap, self.receiver, self.ssrc, self.rtx, self.nack = tap, receiver, ssrc, rtx, nack
        self.pending: dict[int, list] = {}
        self.done: dict[int, None] = {}
        self.sequence_number = 0
        """The last packet's (NackGenerator.add reads a packet's .sequence_number: this stands in)."""


_AUDIO = object()
_KEEP = 64
"""Frames in part / done remembered per stream (2 s at 30 fps)."""


def count_only(transport) -> None:
    """The receiving path of a participant outside the decoding sample (``--decoders``): each SRTP
    packet the transport decrypted is read here instead of by aiortc's receivers: the RTP header
    (RFC 3550 §5.1, RTX per RFC 4588 §4) and the VP8 payload descriptor's S bit and partition id
    (RFC 7741 §4.2) say which packets make a frame; a frame counts when all its packets, first to
    marker, arrived (a retransmission fills a gap). Losses are NACKed as aiortc's receiver does
    (RFC 4585 §6.2.1), so the engine retransmits the same. Not done, unlike a full receiver: no
    jitter buffer, no REMB or reception statistics, no PLI, audio read and dropped. Cost per packet:
    SRTP (the transport, unchanged) and a few struct reads, instead of aiortc's Python RTP path."""
    if getattr(transport, "_bench_count_only", False):
        return
    import struct

    from aiortc.rtcrtpreceiver import NackGenerator

    from suite.voip.sfu import _DECODER_QUEUE

    transport._bench_count_only = True
    router = transport._rtp_router
    full = transport._handle_rtp_data
    streams: dict[int, object] = {}
    header = struct.Struct("!BBHII")
    u16 = struct.Struct("!H")

    def resolve(ssrc: int):
        receiver, primary, rtx = router.ssrc_table.get(ssrc), ssrc, False
        if receiver is None:
            for r in router.receivers:
                primary = r._RTCRtpReceiver__rtx_ssrc.get(ssrc)
                if primary is not None:
                    receiver, rtx = r, True
                    break
        tap = getattr(receiver, _DECODER_QUEUE, None) if receiver is not None else None
        if not isinstance(tap, DecodingTap):
            return None
        if tap.kind == "audio":
            return _AUDIO
        if rtx:
            main = streams.get(primary)
            nack = main.nack if isinstance(main, _Stream) else NackGenerator()
        else:
            nack = NackGenerator()
        return _Stream(tap, receiver, primary, rtx, nack)

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        if len(data) < 12:
            return
        b0, b1, seq, ts, ssrc = header.unpack_from(data)
        st = streams.get(ssrc)
        if st is None:
            st = resolve(ssrc)
            if st is None:  # not (yet) a known receiver's: aiortc routes it as usual
                await full(data, arrival_time_ms)
                return
            streams[ssrc] = st
        if st is _AUDIO:
            return
        assert isinstance(st, _Stream)
        off = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10:
            off += 4 + 4 * u16.unpack_from(data, off + 2)[0]
        end = len(data) - (data[-1] if b0 & 0x20 else 0)
        if st.rtx:
            if end - off < 2:
                return
            seq = u16.unpack_from(data, off)[0]
            off += 2
        if off >= end:  # padding only
            return
        st.sequence_number = seq
        if st.nack.add(st):
            await st.receiver._send_rtcp_nack(st.ssrc, sorted(st.nack.missing))
        if ts in st.done:
            return
        f = st.pending.get(ts)
        if f is None:
            f = st.pending[ts] = [None, None, set()]
            if len(st.pending) > _KEEP:
                st.pending.pop(next(iter(st.pending)))
        f[2].add(seq)
        desc = data[off]
        if desc & 0x10 and not desc & 0x07:
            f[0] = seq
        if b1 & 0x80:
            f[1] = seq
        if f[0] is not None and f[1] is not None and len(f[2]) == ((f[1] - f[0]) & 0xFFFF) + 1:
            del st.pending[ts]
            st.done[ts] = None
            if len(st.done) > _KEEP:
                st.done.pop(next(iter(st.done)))
            st.tap.frames += 1
            st.tap.decoded += 1

    transport._handle_rtp_data = handle


class Participant:
    def __init__(self, port: int, token: str, name: str, media: dict, decode: bool, light: bool = False) -> None:
        self.port, self.token, self.name, self.media, self.decode = port, token, name, media, decode
        self.light = light
        """Outside the decoding sample: count complete frames with :func:`count_only`."""
        self.pub = None  # Janus: the publishing connection
        self.ws = None
        self.pc = None
        self.taps: list[DecodingTap] = []
        self.first_video: float | None = None
        self.opened = 0.0
        self.tasks: list[asyncio.Task] = []

    async def join(self) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
        from websockets.asyncio.client import connect

        from bench.calls.load import AUDIO_FRAME, AUDIO_RATE, PacketTrack

        self.opened = time.monotonic()
        self.ws = await connect(f"ws://127.0.0.1:{self.port}/ws/meetings/{self.token}", max_size=2**22)
        await self.ws.send(json.dumps({"type": "hello", "name": self.name}))
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if m["type"] in ("offer", "publish"):
                break
            if m["type"] == "error":
                raise RuntimeError(m)
        self.audio = PacketTrack("audio", self.media["audio"], AUDIO_RATE // AUDIO_FRAME, AUDIO_RATE)
        self.video = keyframe_track()(self.media["video"])
        if m["type"] == "publish":  # Janus
            await self._janus_publish()
            return
        # aiortc always gets explicit ICE servers (none: host candidates on the namespace's lo)
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=m["sdp"], type="offer"))
        self._tap(pc.getTransceivers()[2:])
        pc.addTrack(self.audio)
        sender = pc.addTrack(self.video)
        sender._send_keyframe = self.video.restart  # bench client only: see keyframe_track
        await pc.setLocalDescription(await pc.createAnswer())
        await self.ws.send(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))
        self.tasks.append(asyncio.create_task(self._drain()))

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            async for _ in self.ws:
                pass

    def _tap(self, transceivers) -> None:
        from suite.voip.sfu import _DECODER_QUEUE

        for tr in transceivers:
            if self.light:
                count_only(tr.receiver.transport)
            if isinstance(getattr(tr.receiver, _DECODER_QUEUE), DecodingTap):
                continue
            tap = DecodingTap(tr.kind, self.decode)
            setattr(tr.receiver, _DECODER_QUEUE, tap)
            self.taps.append(tap)

    # --- Janus: publish on one connection, receive on another (renegotiated as people come) ---

    async def _janus_publish(self) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        self.pub = pub = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        pub.addTransceiver(self.audio, direction="sendonly")
        tr = pub.addTransceiver(self.video, direction="sendonly")
        tr.sender._send_keyframe = self.video.restart  # bench client only: see keyframe_track
        await pub.setLocalDescription(await pub.createOffer())
        await self.ws.send(json.dumps({"type": "publish_offer", "sdp": sha256_only(pub.localDescription.sdp)}))
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
            if m["type"] == "publish_answer":
                break
            if m["type"] == "error":
                raise RuntimeError(m)
        await pub.setRemoteDescription(RTCSessionDescription(sdp=m["sdp"], type="answer"))
        self.tasks.append(asyncio.create_task(self._janus_receive()))

    async def _janus_receive(self) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        with contextlib.suppress(Exception):
            async for raw in self.ws:
                m = json.loads(raw)
                if m["type"] != "offer":
                    continue
                if self.pc is None:
                    # max-bundle, not aiortc's default: with balanced, a first offer with two videos
                    # (Janus's, joining a room of two publishers) leaves the second receiver on a
                    # stopped transport (aiortc #1414; tests/voip/test_meetings_janus.py)
                    cfg = RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
                    self.pc = RTCPeerConnection(cfg)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=m["sdp"], type="offer"))
                self._tap(self.pc.getTransceivers())
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.ws.send(json.dumps({"type": "answer", "sdp": sha256_only(self.pc.localDescription.sdp)}))

    def video_decoded(self) -> int:
        n = sum(tap.decoded for tap in self.taps if tap.kind == "video")
        if n and self.first_video is None:
            self.first_video = time.monotonic()
        return n

    def stats(self) -> dict:
        video = [tap for tap in self.taps if tap.kind == "video"]
        return {
            "sent": self.video.sent,
            "frames": sum(tap.frames for tap in video),
            "decoded": self.video_decoded(),
            "errors": sum(tap.errors for tap in video),
            "taps": [tap.frames for tap in video],
            "up": self.pc is not None and self.pc.connectionState == "connected",
            "decodes": self.decode,
        }

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for pc in (self.pc, self.pub):
            if pc is not None:
                with contextlib.suppress(Exception):
                    await pc.close()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


async def serve(args) -> None:
    import aioice.ice

    from bench.calls.load import commands, reply  # (sets its own host addresses: lo only, replaced below)

    hosts = args.hosts.split(",")
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(hosts)
    count_feedback()
    with open(args.media, "rb") as fh:
        media = pickle.load(fh)
    people: list[Participant] = []
    reply({"op": "ready"})
    async for cmd in commands():
        if cmd["op"] == "join":
            new, failures = [], []
            sample = cmd.get("decoders")
            for name in cmd["names"]:
                decode = not args.no_decode and (sample is None or name in sample)
                p = Participant(args.port, args.token, name, media, decode, light=sample is not None and not decode)
                try:
                    await p.join()
                except Exception as exc:
                    failures.append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
                    await p.close()
                    continue
                new.append(p)
            people += new
            if cmd.get("wait_video"):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and any(p.video_decoded() == 0 for p in new):
                    await asyncio.sleep(0.02)
            joins = [p.first_video - p.opened for p in new if p.first_video is not None]
            reply({"op": "joined", "joined": len(new), "join_s": joins, "failures": failures})
        elif cmd["op"] == "stats":
            per = [p.stats() for p in people]
            reply({"op": "stats", "people": per, **FEEDBACK})
        elif cmd["op"] == "stop":
            await asyncio.gather(*(p.close() for p in people))
            reply({"op": "stopped"})
            break


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True, help="the meeting's link token")
    ap.add_argument("--media", required=True, help="pickle of the encoded media, {'audio': [...], 'video': [...]}")
    ap.add_argument("--hosts", default="127.0.0.1", help="ICE host addresses (comma-separated)")
    ap.add_argument("--no-decode", action="store_true", help="count complete frames instead of decoded ones")
    asyncio.run(serve(ap.parse_args()))


if __name__ == "__main__":
    main()
