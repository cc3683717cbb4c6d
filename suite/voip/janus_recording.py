"""Janus VideoRoom's own recordings turned into the frames the recorder takes (suite/voip/recording.py).

Janus keeps each publisher's streams as ``.mjr`` files (the RTP it received, one file per stream,
``<filename>-audio-0.mjr`` / ``<filename>-video-1.mjr``) in the room's ``rec_dir``. When the
recording stops, ``janus-pp-rec`` (Debian's ``janus-tools``) reorders each file's RTP and writes
the stream as WebM (VP8) or Ogg (Opus), and PyAV (FFmpeg's libavformat) reads the encoded packets
back — nothing is decoded here. The ``.mjr`` header's ``u`` (wall-clock microseconds of the first
packet written; ``janus-pp-rec -j``) puts every file on one timeline.

The folder must be the same path on the Janus host and here (Janus on this machine, or a shared
mount): ``janus_rec_dir``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import av

log = logging.getLogger(__name__)

PP_REC: Final = "janus-pp-rec"
KINDS: Final = {"a": "audio", "v": "video"}
CODECS: Final = {"audio": "opus", "video": "vp8"}
TIMEOUT: Final = 600.0
Frame = tuple[float, str, str, bytes]
"""(wall-clock seconds, participant, kind, encoded frame)"""


def pp_rec() -> str | None:
    return shutil.which(PP_REC)


def recording_files(rec_dir: Path, base: str) -> dict[int, list[Path]]:
    """The .mjr files of one recording by publisher feed (``<base>-<feed>-<kind>-<mindex>.mjr``)."""
    pattern = re.compile(re.escape(base) + r"-(\d+)-(audio|video)-\d+\.mjr")
    out: dict[int, list[Path]] = {}
    for path in sorted(rec_dir.glob(f"{base}-*.mjr")):
        m = pattern.fullmatch(path.name)
        if m:
            out.setdefault(int(m.group(1)), []).append(path)
    return out


def mjr_frames(mjr: Path, owner: str, work: Path) -> list[Frame]:
    """The encoded frames of one .mjr file with their wall-clock times; [] for a file without
    media (a recording stopped before the first packet) or in another codec."""
    exe = pp_rec()
    if exe is None:
        raise FileNotFoundError("janus-pp-rec is not installed (Debian package janus-tools)")
    run = subprocess.run([exe, "-j", str(mjr)], capture_output=True, text=True, timeout=TIMEOUT)
    try:
        header = json.loads(run.stdout)
        kind = KINDS[header["t"]]
        first = float(header["u"]) / 1e6
    except (ValueError, KeyError, TypeError):
        log.warning("janus recording %s: no header (%s)", mjr.name, run.stderr.strip()[-200:])
        return []
    if header.get("c") != CODECS[kind] or first <= 0:
        return []
    out_path = work / (mjr.stem + (".webm" if kind == "video" else ".opus"))
    run = subprocess.run([exe, "-d", "2", str(mjr), str(out_path)], capture_output=True, text=True, timeout=TIMEOUT)
    if run.returncode != 0 or not out_path.exists():
        log.warning("janus recording %s: janus-pp-rec failed (%s)", mjr.name, run.stderr.strip()[-200:])
        return []
    frames: list[Frame] = []
    with av.open(str(out_path)) as container:
        stream = container.streams[0]
        for packet in container.demux(stream):
            if packet.pts is None or not packet.size or packet.time_base is None:
                continue
            frames.append((first + float(packet.pts * packet.time_base), owner, kind, bytes(packet)))
    return frames


def collect(rec_dir: Path, base: str, owners: Mapping[int, str]) -> list[Frame]:
    """Every frame of one recording (blocking: run it in a thread); its .mjr files are removed."""
    files = recording_files(rec_dir, base)
    frames: list[Frame] = []
    with tempfile.TemporaryDirectory(prefix="suite-janus-rec-") as tmp:
        for feed, paths in files.items():
            owner = owners.get(feed)
            for path in paths:
                if owner is not None:
                    frames += mjr_frames(path, owner, Path(tmp))
    for paths in files.values():
        for path in paths:
            path.unlink(missing_ok=True)
    return frames
