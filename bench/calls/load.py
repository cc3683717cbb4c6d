"""One load process of the capacity ramp: aiortc callers of the echo contact, driven over stdin/stdout.

    python bench/calls/load.py --port P --users u1@d,u2@d --echo echo@d --mode av|audio

Commands (one JSON object a line on stdin; one JSON answer a line on stdout):

* ``{"op": "add", "n": k}`` — place k more calls (each its own login + /ws/calls session, as a page does;
  signalling with ``Phone`` from tests/voip/conftest.py). Answer: connected count, setup times
  (``createOffer`` → ICE connected, ms), failures.
* ``{"op": "stats"}`` — per call: frames sent and echoed frames received so far, per kind, and whether
  the call is still up.
* ``{"op": "stop"}`` — hang up everything and exit.

To keep the callers cheap (the point is the agent's CPU, on a 2-core box the callers share the machine):

* what they send is **encoded once** at start-up — VP8 640×480 30 fps at aiortc's default 500 kb/s
  (ffmpeg's ``testsrc2`` pattern, a key frame every 3 s) and Opus 20 ms frames of a tone — and handed
  to aiortc as packets (``RTCRtpSender`` packetises ``av.Packet`` without encoding), paced in real time;
* what comes back is **counted, not decoded**: the receiver's decoder thread is replaced by one that
  counts the complete frames the jitter buffer hands it (test-side patch, like aioice's loopback one).

The agent still decodes and re-encodes everything (``EchoCall`` sends the caller's track back).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import importlib.util
import json
import os
import pickle
import sys
import time
from pathlib import Path

import aioice.ice
import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

REPO = Path(__file__).resolve().parents[2]

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]  # only lo in the namespace

# --- echoed frames: counted in the receiver's decoder thread, never decoded ----------------------------

FRAMES: dict[int, int] = {}


def _counting_decoder_worker(loop, input_q, output_q, decode_error) -> None:
    key = id(output_q)
    FRAMES.setdefault(key, 0)
    while True:
        task = input_q.get()
        if task is None:
            asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
            break
        FRAMES[key] += 1


def _patch_receiver() -> None:
    import aiortc.rtcrtpreceiver as receiver

    receiver.decoder_worker = _counting_decoder_worker


# --- what the callers send ---------------------------------------------------------------------------

VIDEO_FPS = 30
VIDEO_CLOCK = 90000
AUDIO_RATE = 48000
AUDIO_FRAME = 960  # 20 ms


def encode_video(seconds: float = 3.0, width: int = 640, height: int = 480, bitrate: int = 500_000) -> list[bytes]:
    frames = int(seconds * VIDEO_FPS)
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base = fractions.Fraction(1, VIDEO_FPS)
    enc.framerate = fractions.Fraction(VIDEO_FPS, 1)
    enc.bit_rate = bitrate
    enc.gop_size = frames  # one key frame per loop, at its start
    enc.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "bufsize": str(bitrate),
    }
    out: list[bytes] = []
    with av.open(f"testsrc2=size={width}x{height}:rate={VIDEO_FPS}", format="lavfi") as src:
        for i, frame in enumerate(src.decode(video=0)):
            if i >= frames:
                break
            frame = frame.reformat(format="yuv420p")
            frame.pts, frame.time_base = i, enc.time_base
            out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out[:frames]


def encode_audio(seconds: float = 1.0) -> list[bytes]:
    from suite.voip.agent import tone_pcm

    pcm = tone_pcm(seconds, (440.0, 660.0))
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = AUDIO_RATE, "mono", "s16"
    enc.time_base = fractions.Fraction(1, AUDIO_RATE)
    out: list[bytes] = []
    for i in range(len(pcm) // (AUDIO_FRAME * 2)):
        f = av.AudioFrame(format="s16", layout="mono", samples=AUDIO_FRAME)
        f.planes[0].update(pcm[i * AUDIO_FRAME * 2 : (i + 1) * AUDIO_FRAME * 2])
        f.sample_rate, f.pts, f.time_base = AUDIO_RATE, i * AUDIO_FRAME, enc.time_base
        out += [bytes(p) for p in enc.encode(f)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def load_media(cache: str | None, mode: str) -> dict[str, list[bytes]]:
    """The encoded media, from ``cache`` (a pickle the parent or a sibling wrote) or encoded now."""
    path = Path(cache) / f"media-{mode}.pickle" if cache else None
    if path is not None and path.exists():
        with path.open("rb") as fh:
            return pickle.load(fh)
    media = {"audio": encode_audio()}
    if mode == "av":
        media["video"] = encode_video()
    if path is not None:
        tmp = path.with_suffix(f".{os.getpid()}")
        with tmp.open("wb") as fh:
            pickle.dump(media, fh)
        tmp.replace(path)
    return media


class PacketTrack(MediaStreamTrack):
    """Pre-encoded packets in a loop, one every 1/fps s of wall time; ``sent`` counts them."""

    def __init__(self, kind: str, packets: list[bytes], fps: int, clock: int) -> None:
        super().__init__()
        self.kind = kind
        self.packets, self.fps, self.step = packets, fps, clock // fps
        self.time_base = fractions.Fraction(1, clock)
        self.sent = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self.sent / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        pkt = av.Packet(self.packets[self.sent % len(self.packets)])
        pkt.pts, pkt.time_base = self.sent * self.step, self.time_base
        self.sent += 1
        return pkt


# --- the command channel (one JSON object a line each way) --------------------------------------------


def reply(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def commands():
    """The commands on stdin, until it closes (the parent went away)."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        yield json.loads(line)


# --- calls -----------------------------------------------------------------------------------------


def _phone_class():
    path = REPO / "tests" / "voip" / "conftest.py"
    spec = importlib.util.spec_from_file_location("suite_tests_voip_fixtures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Phone


class EchoCaller:
    def __init__(self, phone, call_id: str, echo: str, mode: str, media: dict[str, list[bytes]]) -> None:
        self.phone, self.call_id, self.echo, self.mode, self.media = phone, call_id, echo, mode, media
        self.tracks: dict[str, PacketTrack] = {}
        self.queues: dict[str, int] = {}  # kind -> id(receiver's frame queue)
        self.ended: str | None = None
        self._drain: asyncio.Task | None = None

    async def start(self, timeout: float) -> float:
        """Invite the echo contact, offer, wait for ICE; the setup time in ms (createOffer -> ICE connected)."""
        p = self.phone
        await p.login()
        await p.send(type="invite", call_id=self.call_id, to=self.echo, media="video" if self.mode == "av" else "audio")
        await p.expect("accepted", timeout)
        self.tracks["audio"] = PacketTrack("audio", self.media["audio"], AUDIO_RATE // AUDIO_FRAME, AUDIO_RATE)
        if self.mode == "av":
            self.tracks["video"] = PacketTrack("video", self.media["video"], VIDEO_FPS, VIDEO_CLOCK)
        t0 = time.monotonic()
        await asyncio.wait_for(p.offer(self.call_id, *self.tracks.values()), timeout)
        deadline = t0 + timeout
        while p.pc.iceConnectionState not in ("connected", "completed"):
            if p.pc.iceConnectionState == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"ICE {p.pc.iceConnectionState}")
            await asyncio.sleep(0.002)
        setup = (time.monotonic() - t0) * 1000
        for _ in range(len(self.tracks)):
            t = await asyncio.wait_for(p.tracks.get(), timeout)
            self.queues[t.kind] = id(t._queue)
        self._drain = asyncio.get_running_loop().create_task(self._read_ws())
        return setup

    async def _read_ws(self) -> None:
        """Keep the signalling socket read during the call; note when the agent ends it."""
        try:
            while True:
                m = json.loads(await self.phone.ws.recv())
                if m.get("type") == "call_ended" and m.get("call_id") == self.call_id:
                    self.ended = m.get("reason") or "ended"
        except Exception:
            if self.ended is None:
                self.ended = "signalling closed"

    def stats(self) -> dict:
        pc = self.phone.pc
        state = pc.connectionState if pc is not None else "new"
        return {
            "id": self.call_id,
            "up": self.ended is None and state == "connected",
            "state": state,
            "ended": self.ended,
            "sent": {k: t.sent for k, t in self.tracks.items()},
            "recv": {k: FRAMES.get(q, 0) for k, q in self.queues.items()},
        }

    async def stop(self) -> None:
        if self._drain is not None:
            self._drain.cancel()
        with contextlib.suppress(Exception):  # the socket may be gone already
            if self.phone.ws is not None and self.ended is None:
                await self.phone.send(type="hangup", call_id=self.call_id)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.phone.close(), 10)


async def _place(
    call: EchoCaller,
    sem: asyncio.Semaphore,
    timeout: float,
    calls: list[EchoCaller],
    setups: list[float],
    failures: list[str],
) -> None:
    async with sem:
        try:
            setups.append(await call.start(timeout))
            calls.append(call)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            await call.stop()


async def serve(args) -> None:
    _patch_receiver()
    Phone = _phone_class()
    media = load_media(args.media_cache, args.mode)
    users = args.users.split(",")
    calls: list[EchoCaller] = []
    seq = 0
    reply({"op": "ready", "video_frames": len(media.get("video", [])), "audio_frames": len(media["audio"])})
    async for cmd in commands():
        if cmd["op"] == "add":
            sem = asyncio.Semaphore(args.concurrency)
            setups: list[float] = []
            failures: list[str] = []
            batch = []
            for _ in range(int(cmd["n"])):
                seq += 1
                user = users[(args.worker * 7919 + seq) % len(users)]
                batch.append(
                    EchoCaller(Phone(args.port, user), f"bench-{args.worker}-{seq:05d}", args.echo, args.mode, media)
                )
            await asyncio.gather(*(_place(c, sem, args.timeout, calls, setups, failures) for c in batch))
            reply({"op": "added", "calls": len(calls), "setup_ms": setups, "failures": failures})
        elif cmd["op"] == "stats":
            reply({"op": "stats", "t": time.monotonic(), "calls": [c.stats() for c in calls]})
        elif cmd["op"] == "stop":
            await asyncio.gather(*(c.stop() for c in calls))
            calls.clear()
            reply({"op": "stopped"})
            break


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--users", required=True, help="comma-separated addresses to log in as (round-robin)")
    ap.add_argument("--echo", required=True, help="the echo contact, e.g. echo@bench.test")
    ap.add_argument("--mode", choices=("av", "audio"), default="av")
    ap.add_argument("--worker", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=4, help="call set-ups in flight at once")
    ap.add_argument("--timeout", type=float, default=20.0)
    ap.add_argument("--media-cache", help="folder for the encoded media (encoded once, shared by the workers)")
    args = ap.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
