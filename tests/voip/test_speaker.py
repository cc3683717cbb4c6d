"""Active speaker detection from RFC 6464 levels (sans-I/O) and in the SFU's receive path."""

from __future__ import annotations

import asyncio

from suite.voip.speaker import WINDOW, SpeakerDetector, TalkingSpeaker, talk_window


def feed(d: SpeakerDetector, levels: dict[str, int], start: float, seconds: float) -> list[str]:
    """20 ms packets from each participant at a fixed level; the speaker changes seen."""
    changes = []
    t = start
    while t < start + seconds:
        for who, level in levels.items():
            changed = d.level(who, level, t)
            if changed is not None:
                changes.append(changed)
        t += 0.02
    return changes


def test_the_loudest_speaks_and_a_close_second_does_not_take_over():
    d = SpeakerDetector()
    assert feed(d, {"a": 20, "b": 127}, 0, 1.2) == ["a"]  # -20 dBov against silence
    assert feed(d, {"a": 20, "b": 17}, 1.2, 1.2) == []  # 3 dB louder: not enough to switch
    assert feed(d, {"a": 127, "b": 30}, 2.4, 1.2) == ["b"]  # a fell silent
    assert feed(d, {"a": 127, "b": 127}, 3.6, 1.2) == []  # nobody speaks: the last speaker stays
    assert d.speaker == "b"


def test_background_noise_is_not_speech_and_gaps_count_as_silence():
    d = SpeakerDetector()
    assert feed(d, {"a": 70}, 0, 2 * WINDOW + 0.1) == []  # -70 dBov: below the speech threshold
    # b sends a -45 dBov packet one time in five (silence between): -52 dBov on average, no speech
    changes = []
    for i in range(200):
        t = i * 0.02
        changes += [c for c in [d.level("a", 30, t)] if c]
        if i % 5 == 0:
            changes += [c for c in [d.level("b", 45, t)] if c]
    assert set(changes) == {"a"}
    d.gone("a")
    assert d.speaker is None


def test_talking_events_follow_the_same_rule():
    """Janus reports talking / stopped-talking with the window's mean level; the same hysteresis."""
    t = TalkingSpeaker()
    assert t.talking("a", -20.0) == "a"
    assert t.talking("b", -17.0) is None  # 3 dB louder than the talking speaker: no switch
    assert t.stopped("a") == "b"  # the speaker stopped: the one still talking takes over
    assert t.talking("a", -10.0) == "a"  # 7 dB louder
    assert t.stopped("b") is None and t.stopped("a") is None
    assert t.speaker == "a"  # nobody talks: the last speaker stays
    assert t.talking("b", -40.0) == "b"  # the speaker is silent: anyone talking takes over
    t.gone("b")
    assert t.speaker is None
    # Janus's window and threshold: 0.5 s of 20 ms packets, speech above -50 dBov
    assert talk_window() == {"audio_active_packets": 25, "audio_level_average": 50}


async def test_the_sfu_reads_levels_from_audio_packets(loopback_ice):
    """The SFU takes the RFC 6464 level out of each audio RTP packet before aiortc handles it."""
    from aiortc.rtp import RtpPacket

    from suite.voip.sfu import SfuRoom

    heard: list[str] = []
    room = SfuRoom([], max_participants=2, on_speaker=heard.append)
    try:
        await room.join("a")
        receiver = room.peers["a"].publications["audio"].receiver
        for i in range(40):
            packet = RtpPacket(payload_type=96, sequence_number=i, timestamp=i * 960)
            packet.extensions.audio_level = (True, 15)
            await receiver._handle_rtp_packet(packet, arrival_time_ms=i * 20)
            await asyncio.sleep(0.02)
        assert heard == ["a"]
    finally:
        await room.close()
