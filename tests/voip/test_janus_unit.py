"""The Janus engine's pure parts: rendezvous assignment of rooms to instances, SDP mids, settings,
the local instance's janus.jcfg."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from suite.config import Settings
from suite.voip.janus import _mids, pick_instance
from suite.voip.janus_config import default_event_loops, write_janus_config
from suite.voip.sfu import SfuError

URLS = ["ws://10.0.0.1:8188", "ws://10.0.0.2:8188", "ws://10.0.0.3:8188"]


def test_rooms_spread_and_stay_when_an_instance_goes():
    rooms = [str(i) for i in range(3000)]
    placed = {r: pick_instance(r, URLS) for r in rooms}
    assert placed == {r: pick_instance(r, list(reversed(URLS))) for r in rooms}  # order does not matter
    counts = {u: list(placed.values()).count(u) for u in URLS}
    assert all(800 < c < 1200 for c in counts.values()), counts
    gone = URLS[1]
    after = {r: pick_instance(r, [u for u in URLS if u != gone]) for r in rooms}
    moved = [r for r in rooms if after[r] != placed[r]]
    assert moved and all(placed[r] == gone for r in moved)  # only the gone instance's rooms move
    grown = {r: pick_instance(r, [*URLS, "ws://10.0.0.4:8188"]) for r in rooms}
    assert all(grown[r] in (placed[r], "ws://10.0.0.4:8188") for r in rooms)
    with pytest.raises(SfuError):
        pick_instance("1", [])


def test_mids_by_kind():
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:v1\r\n"
    assert _mids(sdp) == {"audio": "a0", "video": "v1"}


def test_janus_engine_needs_instances(tmp_path):
    with pytest.raises(ValidationError, match="janus_urls"):
        Settings(data_dir=tmp_path, sfu_engine="janus")
    assert Settings(data_dir=tmp_path, sfu_engine="janus", janus_urls=URLS[:1]).janus_urls == URLS[:1]


async def test_unreachable_janus_is_a_media_error():
    import socket

    from suite.voip.janus import JanusRoom

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    room = JanusRoom(f"ws://127.0.0.1:{port}", 1, send=lambda _p, _m: None, ice=lambda _p: ())
    with pytest.raises(SfuError, match="unreachable"):
        await room.join("p1")
    await room.close()


def _general(cfg: str) -> dict[str, str]:
    block = re.search(r"general: \{(.*?)\n\}", cfg, re.S)
    assert block is not None
    return dict(re.findall(r"^\s*(\w+) = (.+)$", block.group(1), re.M))


def test_janus_event_loops_default_to_half_the_cores(tmp_path):
    assert [default_event_loops(n) for n in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 8]
    general = _general(write_janus_config(tmp_path / "a").read_text())
    assert general["event_loops"] == str(default_event_loops())
    assert general["debug_level"] == "3"  # warnings only: nothing logged per packet
    general = _general(write_janus_config(tmp_path / "b", event_loops=3).read_text())
    assert general["event_loops"] == "3"
