"""Active speaker detection from the audio levels publishers put in their RTP packets.

Browsers (and aiortc) send the RFC 6464 client-to-mixer audio level header extension
(``urn:ietf:params:rtp-hdrext:ssrc-audio-level``) in every audio packet: the level of that packet's
audio in -dBov, 0 the loudest, 127 silence (RFC 6464 §3). The SFU reads it without decoding
anything. Sans-I/O: :class:`SpeakerDetector` takes ``(participant, level, now)`` samples and says
when the active speaker changes; the SFU feeds it, the meeting hub tells the pages (speaker view)
and the recorder (whose video to keep).

The rule: every ``WINDOW`` seconds, each participant's mean power over the window in dBov (packets
that did not come count as silence); the loudest one above ``SPEAKING_DBOV`` becomes the speaker when it
is ``HYSTERESIS_DB`` louder than the current one or the current one fell silent — so two people
talking at once do not make the view flap. Nobody speaking keeps the last speaker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

WINDOW: Final = 0.5
"""Seconds per decision."""
SPEAKING_DBOV: Final = -50.0
"""A mean level above this is speech (RFC 6464 levels are -dBov; 127 = silence)."""
HYSTERESIS_DB: Final = 6.0
SILENCE: Final = -127.0


@dataclass
class SpeakerDetector:
    speaker: str | None = None
    _window_start: float | None = None
    _sums: dict[str, float] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)

    def level(self, who: str, level: int, now: float) -> str | None:
        """One packet's level (RFC 6464 value, 0..127 = 0..-127 dBov). Returns the new speaker
        when it changed at this sample, else None."""
        if self._window_start is None:
            self._window_start = now
        changed = None
        if now - self._window_start >= WINDOW:
            changed = self._decide()
            self._window_start = now
            self._sums.clear()
            self._counts.clear()
        # power, not dB, is averaged: a short loud word in a quiet window still counts
        self._sums[who] = self._sums.get(who, 0.0) + 10 ** (-min(127, max(0, level)) / 10)
        self._counts[who] = self._counts.get(who, 0) + 1
        return changed

    def gone(self, who: str) -> None:
        self._sums.pop(who, None)
        self._counts.pop(who, None)
        if self.speaker == who:
            self.speaker = None

    def _decide(self) -> str | None:
        if not self._counts:
            return None
        most = max(self._counts.values())  # packets a talker sent in this window; fewer = silence
        means = {who: 10 * math.log10(max(self._sums[who] / most, 1e-13)) for who in self._counts}
        loudest = max(means, key=lambda who: means[who])
        if means[loudest] < SPEAKING_DBOV or loudest == self.speaker:
            return None
        current = means.get(self.speaker, SILENCE) if self.speaker is not None else SILENCE
        if current >= SPEAKING_DBOV and means[loudest] < current + HYSTERESIS_DB:
            return None
        self.speaker = loudest
        return loudest


@dataclass
class TalkingSpeaker:
    """The same decision from an engine that measures the levels itself and reports only when a
    publisher starts or stops talking (Janus VideoRoom's ``talking`` / ``stopped-talking``, with
    the mean level of the window: configured by :func:`talk_window` to this module's rule).

    The newest talker becomes the speaker when the current one is silent or it is ``HYSTERESIS_DB``
    louder; when the speaker stops, the loudest one still talking takes over; nobody talking keeps
    the last speaker."""

    speaker: str | None = None
    _talking: dict[str, float] = field(default_factory=dict)
    """who -> the mean dBov reported when it started talking"""

    def talking(self, who: str, dbov: float) -> str | None:
        """``who`` started talking at ``dbov`` (negative); the new speaker or None."""
        self._talking[who] = dbov
        current = self._talking.get(self.speaker) if self.speaker is not None else None
        if who == self.speaker or (current is not None and dbov < current + HYSTERESIS_DB):
            return None
        self.speaker = who
        return who

    def stopped(self, who: str) -> str | None:
        self._talking.pop(who, None)
        if who != self.speaker or not self._talking:
            return None
        self.speaker = max(self._talking, key=lambda w: self._talking[w])
        return self.speaker

    def gone(self, who: str) -> None:
        self._talking.pop(who, None)
        if self.speaker == who:
            self.speaker = None


def talk_window() -> dict[str, int]:
    """Janus VideoRoom room options that report talking on this module's rule: a window of
    ``WINDOW`` seconds of 20 ms packets, speech when the window's mean level (RFC 6464 value,
    -dBov) is below ``-SPEAKING_DBOV``."""
    return {"audio_active_packets": round(WINDOW / 0.02), "audio_level_average": round(-SPEAKING_DBOV)}
