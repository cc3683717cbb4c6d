"""Fixtures for the media tests: a private network namespace, loopback ICE, a Suite server, phones.

**Every WebRTC test runs in its own network namespace with nothing but ``lo``**: the ``netns``
fixture re-runs the test with ``unshare -n`` (root, as in CI) and asserts that it passed there;
inside, ICE can only ever see 127.0.0.1. aioice leaves 127.0.0.1 out of its host candidates, so
``loopback_ice`` hands it that address (test-side patch, not product code).
"""

from __future__ import annotations

import array
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from suite.config import Settings
from suite.context import open_context
from suite.storage import db
from suite.testing import missing

ROOT = Path(__file__).resolve().parents[2]
PW = "correct horse battery"
NETNS_ENV = "SUITE_IN_NETNS"


def inside_netns() -> bool:
    return os.environ.get(NETNS_ENV) == "1"


@pytest.fixture
def netns(request) -> bool:
    """True inside the namespace (run the test); False outside, after the inner run passed."""
    if inside_netns():
        return True
    if os.geteuid() != 0:
        missing("WebRTC tests need root to create a private network namespace (unshare -n)")
    for tool, pkg in (("unshare", "util-linux"), ("ip", "iproute2")):
        if shutil.which(tool) is None:
            missing(f"{tool} not installed (Debian package {pkg})")
    cmd = [
        "unshare",
        "-n",
        "sh",
        "-c",
        'ip link set lo up && exec "$0" "$@"',
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        # CPython 3.11.7 can raise "SystemError: AST constructor recursion depth mismatch" when pytest
        # rewrites hypothesis's modules at the end of the run (the plugin imports them in its terminal
        # summary, after aiortc's deep call stacks): the test had passed, the process exits 1. The
        # WebRTC tests run in the namespace use no hypothesis, so its plugin stays out of that run.
        "-p",
        "no:hypothesispytest",
        "-rs",
        request.node.nodeid,
    ]
    env = {**os.environ, NETNS_ENV: "1"}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = r.stdout[-6000:] + r.stderr[-3000:]
    if r.returncode == 0 and " skipped" in r.stdout and " passed" not in r.stdout:
        missing("inside the namespace: " + r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0, out
    return False


@pytest.fixture
def loopback_ice(monkeypatch):
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


@pytest.fixture
def server_settings() -> dict:
    """Extra Settings of the ``server`` fixture (a module overrides this fixture, e.g. the Janus engine)."""
    return {}


@pytest.fixture
async def server(netns, tmp_path, request):
    """Gateway + voip service on SQLite, accounts alice ("Alice Liddell")/bob/carol@example.test (None outside the
    namespace: the test itself runs inside)."""
    if not netns:
        yield None
        return
    request.getfixturevalue("loopback_ice")
    import suite.models  # noqa: F401
    from suite.gateway.service import GatewayService
    from suite.voip.hub import hub_for
    from suite.voip.service import VoipService
    from suite.wiring import ports

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}",
        bus_backend="memory",
        http_port=0,
        call_ring_timeout=2.0,
        voicemail_max_seconds=3,
        **request.getfixturevalue("server_settings"),
    )
    engine = db.make_engine(settings.db_url)
    await db.migrate(engine)
    await engine.dispose()
    ctx = await open_context(settings)
    await ctx.accounts.add_domain("example.test")
    # alice has a display name (meetings show it), bob and carol none (meetings show the address)
    for name, display in (("alice", "Alice Liddell"), ("bob", ""), ("carol", "")):
        await ctx.accounts.add_account(f"{name}@example.test", PW, display_name=display)
    gw, voip = GatewayService(ctx, **ports("gateway", ctx)), VoipService(ctx)  # wired as `suite serve` does
    await gw.start()
    await voip.start()
    ctx.port = gw.port
    yield ctx
    await voip.stop()
    await gw.stop()
    await hub_for(ctx).stop()
    await ctx.close()


def rms(frame) -> float:
    """RMS of an s16 audio frame (any layout)."""
    a = array.array("h")
    data = bytes(frame.planes[0])
    a.frombytes(data[: len(data) // 2 * 2])
    return math.sqrt(sum(x * x for x in a) / max(1, len(a)))


async def loud_frames(track, *, want: int = 10, threshold: float = 500.0, limit: int = 400) -> int:
    """Receive up to ``limit`` frames; return once ``want`` of them were loud (or the count)."""
    loud = 0
    for _ in range(limit):
        frame = await asyncio.wait_for(track.recv(), 10)
        if rms(frame) > threshold:
            loud += 1
            if loud >= want:
                break
    return loud


class Phone:
    """An aiortc client behind our signalling WebSocket, as the page does it."""

    def __init__(self, port: int, address: str) -> None:
        self.port, self.address = port, address
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20)
        self.ws = None
        self.pc = None
        self.tracks: asyncio.Queue = asyncio.Queue()
        self.backlog: list[dict] = []

    async def login(self) -> Phone:
        r = await self.http.post("/api/login", json={"address": self.address, "password": PW})
        assert r.status_code == 200, r.text
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws/calls",
            additional_headers={"Cookie": f"suite_session={self.http.cookies['suite_session']}"},
        )
        return self

    async def send(self, **msg) -> None:
        await self.ws.send(json.dumps(msg))

    async def expect(self, kind: str, timeout: float = 10) -> dict:
        for i, m in enumerate(self.backlog):
            if m["type"] == kind:
                return self.backlog.pop(i)
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if m["type"] == kind:
                return m
            if m["type"] == "error":
                raise AssertionError(m)
            self.backlog.append(m)

    def new_pc(self, ice_servers=(), policy: str = "all"):
        from aiortc import RTCConfiguration, RTCPeerConnection
        from aiortc.rtcconfiguration import RTCIceTransportPolicy

        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=list(ice_servers), iceTransportPolicy=RTCIceTransportPolicy(policy))
        )
        self.pc.on("track", self.tracks.put_nowait)
        return self.pc

    async def offer(self, call_id: str, *tracks) -> None:
        from aiortc import RTCSessionDescription

        pc = self.new_pc()
        for t in tracks:
            pc.addTrack(t)
        await pc.setLocalDescription(await pc.createOffer())
        await self.send(type="offer", call_id=call_id, sdp=pc.localDescription.sdp)
        ans = await self.expect("answer")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=ans["sdp"], type="answer"))

    async def answer(self, call_id: str, *tracks) -> None:
        from aiortc import RTCSessionDescription

        off = await self.expect("offer")
        pc = self.new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=off["sdp"], type="offer"))
        for t in tracks:
            pc.addTrack(t)
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send(type="answer", call_id=call_id, sdp=pc.localDescription.sdp)

    async def track(self, kind: str, timeout: float = 10):
        while True:
            t = await asyncio.wait_for(self.tracks.get(), timeout)
            if t.kind == kind:
                return t

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()


@pytest.fixture
def phone_class():
    return Phone


@pytest.fixture
def loud():
    return loud_frames
