"""Meeting recordings: the SFU's encoded frames, kept while the host records, written as WebM.

Forwarding never decodes; the recorder is one more consumer of the encoded frames the SFU already
has (:meth:`suite.voip.sfu.SfuRoom.start_recording`), and only the recorder decodes:

* **video** — one VP8 track, remuxed, never re-encoded: the frames of one participant at a time
  (the active speaker's, from the audio levels: suite/voip/speaker.py; before anyone spoke the
  host's camera, else the first participant seen on camera). A switch to another participant waits for that participant's next
  keyframe (the SFU asks for one), so the track decodes from every switch on;
* **audio** — everyone's Opus decoded, laid on one timeline by arrival time (silence where a
  participant was muted or not there yet), mixed (FFmpeg's ``amix``) and encoded once as Opus.

Frames are kept in memory (about 4 MB a minute at 500 kbit/s) and the file is made when the
recording stops, in a worker thread (:func:`write_webm`); then :class:`RecordingStore` (a port the
runner wires to the files service: suite/wiring.py) puts it into the host's Files under
``Recordings/``. An engine that records by itself (Janus: suite/voip/janus_recording.py) hands its
frames over only when the recording stops; :func:`replayed` runs them through the same choices,
with the speaker changes logged meanwhile (``Recording.events``).
"""

from __future__ import annotations

import fractions
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import av

FOLDER = "Recordings"
AUDIO_RATE = 48000
OPUS_FRAME = 960  # 20 ms
MS = fractions.Fraction(1, 1000)


class RecordingStore(Protocol):
    """Keeps a finished recording in the host's Files; returns its path there."""

    async def save(self, owner: str, name: str, path: Path) -> str: ...


def vp8_keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 keyframe, None for an interframe (RFC 6386 §9.1: frame tag bit 0
    is 0 for a keyframe, then the start code 9d 01 2a and two 14-bit little-endian sizes)."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        return None
    return int.from_bytes(frame[6:8], "little") & 0x3FFF, int.from_bytes(frame[8:10], "little") & 0x3FFF


@dataclass
class Recording:
    """What the recorder kept: ``(ms since start, owner, encoded frame)`` per kind."""

    started: float
    prefer: str | None = None
    """The participant whose video is taken when it publishes: the active speaker, at first the
    host (or whoever spoke last before the recording started)."""
    on_switch: Callable[[str], None] = lambda _owner: None
    """Called when the video should come from another participant (ask it for a keyframe)."""
    audio: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    video: list[tuple[int, bytes]] = field(default_factory=list)
    size: tuple[int, int] | None = None
    speaker: str | None = None
    """Whose video is recorded now."""
    events: list[tuple[float, str, bool]] = field(default_factory=list)
    """``(time, participant, speaks)``: each :meth:`want` (True) and :meth:`gone` (False) given a time,
    for :func:`replayed`."""
    first: str | None = field(default=None, init=False)
    _wanted: str | None = None

    def __post_init__(self) -> None:
        self.first = self.prefer

    def frame(self, owner: str, kind: str, data: bytes, now: float) -> None:
        if not data:
            # RTP padding (a browser probing bandwidth) comes out of the jitter buffer as an empty
            # "frame"; a muxer refuses an empty packet (EINVAL)
            return
        at = int((now - self.started) * 1000)
        if kind == "audio":
            self.audio.setdefault(owner, []).append((at, data))
            return
        if self.speaker is None and self._wanted is None:
            self._switch(owner)  # anyone on camera until the preferred one shows up
        if owner == self.prefer and self.speaker != owner and self._wanted != owner:
            self._switch(owner)
        if owner == self._wanted:
            size = vp8_keyframe_size(data)
            if size is None:
                return  # wait for the keyframe the switch asked for
            self.speaker, self._wanted = owner, None
            self.size = self.size or size
        if owner == self.speaker:
            self.video.append((at, data))

    def want(self, owner: str, now: float | None = None) -> None:
        """Follow ``owner`` (the active speaker): its video from its next keyframe on."""
        if now is not None:
            self.events.append((now, owner, True))
        self.prefer = owner
        if owner != self.speaker:
            self._switch(owner)

    def _switch(self, owner: str) -> None:
        self._wanted = owner
        self.on_switch(owner)

    def gone(self, owner: str, now: float | None = None) -> None:
        if now is not None:
            self.events.append((now, owner, False))
        if owner == self.speaker:
            self.speaker = None
        if owner == self._wanted:
            self._wanted = None


def replayed(rec: Recording, frames: Iterable[tuple[float, str, str, bytes]]) -> Recording:
    """The recording of an engine that kept the frames itself (Janus), as if they had come live:
    ``(time, owner, kind, encoded frame)`` on ``rec``'s clock, interleaved with the speaker changes
    and departures ``rec`` logged meanwhile. No keyframe can be asked for any more: a switch waits
    for the next one the publisher sent (the engine asked for one live, at the switch)."""
    out = Recording(started=rec.started, prefer=rec.first)
    timeline = [(max(t, rec.started), 1, owner, kind, data) for t, owner, kind, data in frames]
    timeline += [(t, 0, owner, "want" if speaks else "gone", b"") for t, owner, speaks in rec.events]
    for t, order, owner, what, data in sorted(timeline, key=lambda e: (e[0], e[1])):
        if order:
            out.frame(owner, what, data, t)
        elif what == "want":
            out.want(owner)
        else:
            out.gone(owner)
    return out


def write_webm(rec: Recording, path: Path) -> float:
    """Write the recording as WebM (VP8 remuxed + mixed Opus); its length in seconds."""
    with av.open(str(path), "w", format="webm") as out:
        vstream = None
        if rec.video and rec.size is not None:
            vstream = out.add_stream("libvpx", rate=30)
            vstream.width, vstream.height = rec.size
            vstream.time_base = MS
        astream = out.add_stream("libopus", rate=AUDIO_RATE) if rec.audio else None
        if astream is not None:
            astream.layout = "stereo"
            astream.time_base = fractions.Fraction(1, AUDIO_RATE)
        # RFC 7741 §4 / WebM: the packets are muxed as they came, pts in milliseconds
        packets: list[av.Packet] = []
        if vstream is not None:
            last = -1
            for at, data in rec.video:
                p = av.Packet(data)
                p.pts = p.dts = last = max(at, last + 1)  # strictly increasing, also across a switch
                p.time_base = MS
                p.stream = vstream
                if vp8_keyframe_size(data) is not None:
                    p.is_keyframe = True
                packets.append(p)
        if astream is not None:
            packets += _mixed_audio(rec, astream)
        for p in packets:
            if p.time_base is None:  # the encoder's packets count in its own time base
                p.time_base = fractions.Fraction(1, AUDIO_RATE)
        end = 0.0
        for p in sorted(packets, key=_seconds):
            end = max(end, _seconds(p))
            try:
                out.mux(p)
            except av.FFmpegError as exc:
                raise ValueError(
                    f"muxing {p.stream.type} pts={p.pts} dts={p.dts} tb={p.time_base} size={p.size}: {exc.log}"
                ) from exc
    return end


def _seconds(packet: av.Packet) -> float:
    return float((packet.pts or 0) * (packet.time_base or fractions.Fraction(1, AUDIO_RATE)))


def _mixed_audio(rec: Recording, stream: av.audio.stream.AudioStream) -> list[av.Packet]:
    from av.filter import Graph

    tracks = [frames for frames in rec.audio.values() if frames]
    graph = Graph()
    tb = fractions.Fraction(1, AUDIO_RATE)
    sources = [graph.add_abuffer(format="s16", sample_rate=AUDIO_RATE, layout="stereo", time_base=tb) for _ in tracks]
    mix = graph.add("amix", f"inputs={len(tracks)}:duration=longest:normalize=0")
    sink = graph.add("abuffersink")
    for i, src in enumerate(sources):
        src.link_to(mix, 0, i)
    mix.link_to(sink)
    graph.configure()
    out: list[av.Packet] = []

    def drain() -> None:
        while True:
            try:
                frame = sink.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            assert isinstance(frame, av.AudioFrame)
            out.extend(stream.encode(frame))

    pcm = [_decoded(frames) for frames in tracks]
    for i in range(max(len(track) for track in pcm)):  # interleaved: amix mixes as inputs arrive
        for src, track in zip(sources, pcm, strict=True):
            if i < len(track):
                src.push(track[i])
        drain()
    for src in sources:
        src.push(None)
    drain()
    out.extend(stream.encode(None))
    # The encoder's timestamps follow amix's output, which came out non-monotonic once with a
    # browser's audio (the muxer then refused a packet: EINVAL). The encoded audio is one
    # gapless stream (silence was filled in), so each packet starts where the previous ended.
    at = 0
    for packet in out:
        packet.pts = packet.dts = at
        packet.time_base = fractions.Fraction(1, AUDIO_RATE)
        at += packet.duration or OPUS_FRAME
    return out


def _decoded(frames: list[tuple[int, bytes]]) -> list[av.AudioFrame]:
    """One participant's Opus frames as 48 kHz stereo PCM on the recording's timeline."""
    tb = fractions.Fraction(1, AUDIO_RATE)
    decoder = av.CodecContext.create("opus", "r")
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
    out: list[av.AudioFrame] = []
    position = 0  # samples on the timeline so far
    for at, data in frames:
        start = at * AUDIO_RATE // 1000
        while start - position >= OPUS_FRAME:  # not there yet, or muted: silence
            out.append(_silence(position))
            position += OPUS_FRAME
        try:
            decoded = decoder.decode(av.Packet(data))
        except av.FFmpegError:
            continue  # a damaged frame: its 20 ms stay silent
        for frame in decoded:
            for f in resampler.resample(frame):
                f.pts, f.time_base = position, tb
                position += f.samples
                out.append(f)
    return out


def _silence(pts: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="stereo", samples=OPUS_FRAME)
    frame.planes[0].update(bytes(OPUS_FRAME * 4))
    frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, pts, fractions.Fraction(1, AUDIO_RATE)
    return frame
