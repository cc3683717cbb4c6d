"""The recorder without a network: encoded VP8 and Opus frames in (as the SFU hands them over),
a WebM out whose streams and lengths libavformat (and ffprobe, when installed) read back."""

from __future__ import annotations

import fractions
import json
import os
import shutil
import subprocess

import av

from suite.testing import require_tool
from suite.voip.recording import Recording, vp8_keyframe_size, write_webm


def vp8(frames: int, size=(160, 120), gop: int = 15) -> list[bytes]:
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = *size, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    enc.gop_size = gop
    enc.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    out: list[bytes] = []
    for i in range(frames):
        f = av.VideoFrame(*size, "yuv420p")
        for n, plane in enumerate(f.planes):
            plane.update(bytes([(i * 9 + n * 40) % 256]) * plane.buffer_size)
        f.pts = i
        out += [bytes(p) for p in enc.encode(f)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def opus(frames: int) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    out: list[bytes] = []
    for i in range(frames):
        f = av.AudioFrame(format="s16", layout="mono", samples=960)
        f.planes[0].update(bytes((i * 7 + k) % 256 for k in range(1920)))
        f.sample_rate, f.pts = 48000, i * 960
        out += [bytes(p) for p in enc.encode(f)]
    return out


def probe(path) -> dict[str, float]:
    """Seconds of each stream kind, read back by libavformat (PyAV) and, when installed, ffprobe."""
    lengths: dict[str, float] = {}
    with av.open(str(path)) as c:
        for s in c.streams:
            pts = [p.pts for p in c.demux(s) if p.pts is not None]
            c.seek(0)
            lengths[f"{s.type}/{s.codec_context.name}"] = float(max(pts) * s.time_base)
    if shutil.which("ffprobe") or os.environ.get("SUITE_REQUIRE_ALL") == "1":
        ffprobe = require_tool("ffprobe", "ffmpeg")
        out = subprocess.run(
            [
                ffprobe,
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,codec_name:format=duration",
                "-of",
                "json",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        info = json.loads(out.stdout)
        assert sorted(f"{s['codec_type']}/{s['codec_name']}" for s in info["streams"]) == sorted(lengths)
        assert abs(float(info["format"]["duration"]) - max(lengths.values())) < 0.2
    return lengths


def test_recorded_webm_has_the_speakers_video_and_the_mixed_audio(tmp_path):
    video = vp8(90)  # 3 s, keyframes at 0, 15, 30 ...
    assert vp8_keyframe_size(video[0]) == (160, 120) and vp8_keyframe_size(video[1]) is None
    voice = opus(150)  # 3 s
    asked: list[str] = []
    rec = Recording(started=0.0, prefer="host", on_switch=asked.append)
    for i in range(90):
        t = i / 30
        rec.frame("guest", "video", video[i], t)  # the guest's camera is first: recorded
        if i >= 20:  # the host's camera comes on at 0.67 s: the recording switches at its keyframe
            rec.frame("host", "video", video[i], t)
    for i in range(150):
        rec.frame("host", "audio", voice[i], i * 0.02)
        rec.frame("host", "video", b"", i * 0.02)  # padding a browser sends to probe bandwidth
        if i >= 50:  # the guest speaks from 1 s on
            rec.frame("guest", "audio", voice[i], i * 0.02)
    assert asked == ["guest", "host"] and rec.speaker == "host"
    # the guest's frames up to the host's next keyframe (frame 30), then only the host's
    assert len(rec.video) == 31 + 60
    path = tmp_path / "r.webm"
    seconds = write_webm(rec, path)
    lengths = probe(path)
    assert set(lengths) == {"video/vp8", "audio/opus"}
    assert 2.8 < lengths["video/vp8"] <= 3.0 and 2.8 < lengths["audio/opus"] <= 3.1
    assert abs(seconds - max(lengths.values())) < 0.05
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 91  # every frame decodes (no switch without a keyframe)


def test_frames_handed_over_after_the_fact_follow_the_speaker_changes_logged_live(tmp_path):
    """An engine that records itself (Janus) gives the frames when the recording stops; the
    speaker changes and departures the hub logged meanwhile switch the video at the same places."""
    from suite.voip.recording import replayed

    video = vp8(90)  # keyframes at 0, 15, 30, ...
    live = Recording(started=10.0, prefer="host")
    live.want("guest", 10.0 + 0.5)  # the guest speaks at 0.5 s: its video from its next keyframe
    live.gone("guest", 10.0 + 1.49)  # and leaves at 1.5 s: anyone on camera, the host at its keyframe
    assert live.video == [] and [e[1:] for e in live.events] == [("guest", True), ("guest", False)]
    frames = [(10.0 + i / 30, "host", "video", video[i]) for i in range(90)]
    frames += [(10.001 + i / 30, "guest", "video", video[i]) for i in range(45)]
    rec = replayed(live, reversed(frames))  # any order: placed by time
    assert rec.speaker == "host"
    # host 0..15 (until the guest's keyframe 15, 1 ms later), guest 15..44, host from its keyframe 45
    assert len(rec.video) == 16 + 30 + 45
    path = tmp_path / "r.webm"
    write_webm(rec, path)
    with av.open(str(path)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 91
