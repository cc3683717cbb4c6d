"""The media agent (aiortc): the echo test and voicemail.

* **Echo test** — ``echo@<local domain>`` answers at once and sends the caller's own audio and
  video back (aiortc decodes and re-encodes them).
* **Voicemail** — on ``DivertToVoicemail`` the caller's page sends its offer to the agent, which
  plays a short generated greeting (a tone sequence, or espeak-ng's voice when installed), records
  the caller's audio up to ``voicemail_max_seconds`` as Opus in Ogg, and on hang-up delivers a mail
  into the callee's INBOX (``MailStore.deliver``): From the caller, Subject "Voicemail from …",
  the duration in the body, the recording attached as ``audio/ogg``. Only audio is recorded
  (one track, one file: aiortc's MediaRecorder loses the video when audio frames come first).

Every ``RTCPeerConnection`` here gets its ICE servers explicitly (our coturn, or none): aiortc's
default would be a public STUN server. aiortc does not trickle: its candidates are in the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import io
import math
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import formatdate, make_msgid
from typing import Any

import av
import structlog
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from suite.voip.calls import DivertToVoicemail
from suite.voip.messages import EndReason

log = structlog.get_logger("suite.voip.agent")

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz
MIN_VOICEMAIL_SECONDS = 0.5  # shorter recordings are not worth a mail (the missed call is in the history)
ECHO_LOCAL_PART = "echo"


# --- generated audio ----------------------------------------------------------------------


def tone_pcm(seconds: float, freqs: tuple[float, ...] = (440.0,), volume: float = 0.3) -> bytes:
    """Signed 16-bit mono PCM at 48 kHz: the given tones one after another, evenly split."""
    total = int(seconds * RATE)
    per = max(1, total // max(1, len(freqs)))
    out = bytearray()
    for i in range(total):
        f = freqs[min(i // per, len(freqs) - 1)]
        # 5 ms fade in/out of each tone against clicks
        pos = i % per
        env = min(1.0, pos / 240, (per - pos) / 240)
        out += struct.pack("<h", int(32767 * volume * env * math.sin(2 * math.pi * f * i / RATE)))
    return bytes(out)


def espeak_pcm(text: str) -> bytes | None:
    """The text spoken by espeak-ng as 48 kHz mono PCM, or None when espeak-ng is missing."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        wav = subprocess.run([exe, "--stdout", "-s", "160", text], capture_output=True, timeout=20, check=True).stdout
        out = bytearray()
        with av.open(io.BytesIO(wav), mode="r", format="wav") as c:
            rs = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in c.decode(audio=0):
                for f in rs.resample(frame):
                    out += bytes(f.planes[0])[: f.samples * 2]
            for f in rs.resample(None):
                out += bytes(f.planes[0])[: f.samples * 2]
        return bytes(out)
    except (OSError, subprocess.SubprocessError, av.FFmpegError):
        return None


class PcmTrack(MediaStreamTrack):
    """An audio track playing generated PCM (then silence) in real time, 20 ms frames."""

    kind = "audio"

    def __init__(self, pcm: bytes, *, loop: bool = False) -> None:
        super().__init__()
        self.pcm = pcm
        self.loop = loop
        self._start: float | None = None
        self._ts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._ts += FRAME
            wait = self._start + self._ts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        off = self._ts * 2
        n = len(self.pcm)
        if self.loop and n:
            off %= n
            chunk = (self.pcm + self.pcm)[off : off + FRAME * 2]
        else:
            chunk = self.pcm[off : off + FRAME * 2]
        chunk = chunk.ljust(FRAME * 2, b"\x00")
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(chunk)
        frame.sample_rate = RATE
        frame.pts = self._ts
        frame.time_base = fractions.Fraction(1, RATE)
        return frame


# --- recording -----------------------------------------------------------------------------


class OggOpusRecorder:
    """Records one audio track into Opus/Ogg in memory, up to ``max_seconds`` of audio."""

    def __init__(self, max_seconds: float) -> None:
        self.max_samples = int(max_seconds * RATE)
        self.samples = 0
        self._buf = io.BytesIO()
        self._container = av.open(self._buf, mode="w", format="ogg")
        self._stream = self._container.add_stream("libopus", rate=RATE, layout="mono")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._done = False
        self.full = asyncio.Event()

    @property
    def seconds(self) -> float:
        return self.samples / RATE

    def write(self, frame: av.AudioFrame) -> None:
        if self._done or self.samples >= self.max_samples:
            return
        for f in self._resampler.resample(frame):
            take = min(f.samples, self.max_samples - self.samples)
            if take <= 0:
                break
            if take < f.samples:
                cut = av.AudioFrame(format="s16", layout="mono", samples=take)
                cut.planes[0].update(bytes(f.planes[0])[: take * 2])
                cut.sample_rate = RATE
                f = cut
            f.pts = self.samples
            f.time_base = fractions.Fraction(1, RATE)
            self.samples += f.samples
            for packet in self._stream.encode(f):
                self._container.mux(packet)
        if self.samples >= self.max_samples:
            self.full.set()

    async def run(self, track: MediaStreamTrack) -> None:
        while not self._done and self.samples < self.max_samples:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.AudioFrame), frame  # an audio track yields audio frames
            self.write(frame)

    def finish(self) -> bytes:
        if not self._done:
            self._done = True
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        return self._buf.getvalue()


# --- calls -------------------------------------------------------------------------------


def _candidate(init: dict[str, Any]):
    text = init.get("candidate") or ""
    if not text:
        return None
    c = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
    c.sdpMid = init.get("sdpMid")
    c.sdpMLineIndex = init.get("sdpMLineIndex")
    return c


def answerer_config(ice_servers: list[RTCIceServer]) -> RTCConfiguration:
    """The agent's peer connection: max-bundle, as the SFU's. With aiortc's default (balanced) an answer to
    a first offer holding two video m-lines in one BUNDLE group (a browser sending camera and screen at
    once) leaves the second video's receiver on a transport aiortc then stops (aiortc issue #1414)."""
    return RTCConfiguration(iceServers=ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class _AgentCall:
    def __init__(self, agent: MediaAgent, hub, call_id: str) -> None:
        self.agent, self.hub, self.call_id = agent, hub, call_id
        self.pc: RTCPeerConnection | None = None
        self._early_ice: list[dict[str, Any]] = []
        self.closed = False
        self.tasks: set[asyncio.Task] = set()

    def _new_pc(self) -> RTCPeerConnection:
        pc = RTCPeerConnection(answerer_config(self.agent.ice_servers()))

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "failed" and not self.closed:
                self.hub.end_side(self.call_id, EndReason.DISCONNECTED)

        return pc

    def _spawn(self, coro) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    def on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        raise NotImplementedError

    def before_answer(self, pc: RTCPeerConnection) -> None:
        pass

    async def offer(self, sdp: str) -> str:
        if self.pc is not None:
            raise ValueError("renegotiation is not supported by the agent")
        pc = self.pc = self._new_pc()
        pc.on("track", lambda track: self.on_track(pc, track))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self.before_answer(pc)
        await pc.setLocalDescription(await pc.createAnswer())
        for init in self._early_ice:
            await self.ice(init)
        self._early_ice.clear()
        return pc.localDescription.sdp

    async def ice(self, candidate: dict[str, Any]) -> None:
        if self.pc is None:
            self._early_ice.append(candidate)
            return
        c = _candidate(candidate)
        if c is not None:
            with contextlib.suppress(ValueError):
                await self.pc.addIceCandidate(c)

    async def _close_pc(self) -> None:
        self.closed = True
        for t in list(self.tasks):
            t.cancel()
        if self.pc is not None:
            await self.pc.close()
        self.agent.calls.discard(self)


class EchoCall(_AgentCall):
    """Sends the caller's own tracks back."""

    def __init__(self, agent, hub, call_id: str, caller: str) -> None:
        super().__init__(agent, hub, call_id)
        self.caller = caller

    def on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        pc.addTrack(track)

    async def close(self, reason: str) -> None:
        await self._close_pc()


class VoicemailCall(_AgentCall):
    def __init__(self, agent, hub, divert: DivertToVoicemail) -> None:
        super().__init__(agent, hub, divert.call_id)
        self.divert = divert
        self.recorder = OggOpusRecorder(agent.max_seconds)
        self.started = time.time()
        self._delivered = False
        self.delivered = asyncio.Event()

    def before_answer(self, pc: RTCPeerConnection) -> None:
        for t in pc.getTransceivers():
            if t.kind == "audio" and t.sender.track is None:
                pc.addTrack(PcmTrack(self.agent.greeting(self.divert.callee)))
                break

    def on_track(self, pc: RTCPeerConnection, track: MediaStreamTrack) -> None:
        if track.kind != "audio" or getattr(self, "_recording", False):
            return  # video is not recorded (one audio track per voicemail)
        self._recording = True
        self._spawn(self.recorder.run(track))
        self._spawn(self._limit())

    async def _limit(self) -> None:
        await self.recorder.full.wait()
        self.hub.end_side(self.call_id, EndReason.HANGUP)

    async def close(self, reason: str) -> None:
        await self._close_pc()
        if self._delivered:
            return
        self._delivered = True
        try:
            data = self.recorder.finish()
            if self.recorder.seconds >= MIN_VOICEMAIL_SECONDS:
                await self.agent.deliver_voicemail(self.divert, data, self.recorder.seconds, self.started)
        except Exception:
            log.exception("voicemail.delivery_failed", call_id=self.call_id)
        finally:
            self.delivered.set()


def voicemail_mail(caller: str, callee: str, audio: bytes, seconds: float, when: float) -> bytes:
    msg = EmailMessage(policy=default_policy)
    msg["From"] = caller
    msg["To"] = callee
    msg["Subject"] = f"Voicemail from {caller}"
    msg["Date"] = formatdate(when, localtime=False)
    msg["Message-ID"] = make_msgid("voicemail", domain=callee.rsplit("@", 1)[-1])
    msg["X-Suite-Voicemail-Duration"] = f"{seconds:.1f}"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))
    msg.set_content(
        f"{caller} called you on {stamp} and left a voicemail of {round(seconds)} seconds "
        f"({seconds:.1f} s).\n\nThe recording is attached (Opus audio).\n"
    )
    name = time.strftime("voicemail-%Y%m%d-%H%M%S.ogg", time.gmtime(when))
    msg.add_attachment(audio, maintype="audio", subtype="ogg", filename=name)
    return msg.as_bytes()


class MediaAgent:
    """Creates the agent's side calls for the hub; see the module docstring."""

    def __init__(
        self, ctx, *, ice_servers: Callable[[], list[RTCIceServer]] = list, max_seconds: float = 120.0
    ) -> None:
        self.ctx = ctx
        self.ice_servers = ice_servers
        self.max_seconds = max_seconds
        self.domains: set[str] = set()
        self.calls: set[_AgentCall] = set()
        self._greeting: bytes | None = None

    async def refresh_domains(self) -> None:
        self.domains = {d.name.lower() for d in await self.ctx.accounts.list_domains()}

    def is_echo(self, account: str) -> bool:
        local, _, domain = account.rpartition("@")
        return local.lower() == ECHO_LOCAL_PART and domain.lower() in self.domains

    def greeting(self, callee: str) -> bytes:
        if self._greeting is None:
            speech = espeak_pcm("The person you called is not available. Please leave a message after the tone.")
            beep = tone_pcm(0.4, (880.0,))
            pause = b"\x00" * (RATE // 5 * 2)
            self._greeting = (speech + pause if speech else tone_pcm(0.6, (523.25, 659.25, 783.99)) + pause) + beep
        return self._greeting

    def echo(self, hub, call_id: str, caller: str, session: str) -> EchoCall:
        call = EchoCall(self, hub, call_id, caller)
        self.calls.add(call)
        return call

    def voicemail(self, hub, divert: DivertToVoicemail) -> VoicemailCall:
        call = VoicemailCall(self, hub, divert)
        self.calls.add(call)
        return call

    async def deliver_voicemail(self, d: DivertToVoicemail, audio: bytes, seconds: float, when: float) -> None:
        from suite.mail.store.store import MailStore

        acct = await self.ctx.accounts.get(d.callee)
        if acct is None:
            return
        raw = voicemail_mail(d.caller, d.callee, audio, seconds, when)
        await MailStore(self.ctx).deliver(acct.id, "INBOX", raw)
        log.info("voicemail.delivered", call_id=d.call_id, callee=d.callee, seconds=round(seconds, 1), bytes=len(raw))
