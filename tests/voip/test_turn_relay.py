"""TURN through a real coturn (Debian's turnserver) started by ``VoipService`` on loopback, inside a
private network namespace: a relay-only call with a fresh credential from /api/calls/ice, and
refusal of an expired credential."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from suite.testing import free_port, require_tool


@pytest.fixture
async def turn_server(netns, tmp_path, request):
    if not netns:
        yield None
        return
    require_tool("turnserver", "coturn")
    import suite.models  # noqa: F401
    from suite.config import Settings
    from suite.context import open_context
    from suite.gateway.service import GatewayService
    from suite.storage import db
    from suite.voip.hub import hub_for
    from suite.voip.service import VoipService

    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}",
        bus_backend="memory",
        http_port=0,
        coturn_enabled=True,
        coturn_port=port,
        coturn_min_port=50100,
        coturn_max_port=50140,
        turn_ttl=120,
    )
    engine = db.make_engine(settings.db_url)
    await db.migrate(engine)
    await engine.dispose()
    ctx = await open_context(settings)
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account("alice@example.test", "correct horse battery")
    gw, voip = GatewayService(ctx), VoipService(ctx)
    await gw.start()
    await voip.start()
    ctx.port = gw.port
    yield ctx
    await voip.stop()
    assert voip.coturn.returncode is not None  # stopped with the service
    await gw.stop()
    await hub_for(ctx).stop()
    await ctx.close()


async def _ice_from_api(port: int) -> dict:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        r = await http.post("/api/login", json={"address": "alice@example.test", "password": "correct horse battery"})
        assert r.status_code == 200
        r = await http.get("/api/calls/ice")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        return r.json()


async def _gather_relay(port: int, username: str, password: str) -> list:
    from aioice import Connection, TransportPolicy

    conn = Connection(
        ice_controlling=True,
        turn_server=("127.0.0.1", port),
        turn_username=username,
        turn_password=password,
        transport_policy=TransportPolicy.RELAY,
    )
    try:
        try:
            await asyncio.wait_for(conn.gather_candidates(), 15)
        except (TimeoutError, ConnectionError, OSError):
            return []
        return [c for c in conn.local_candidates if c.type == "relay"]
    finally:
        await conn.close()


async def test_relay_only_call_through_coturn(netns, turn_server):
    if not netns:
        return
    from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    from suite.voip.agent import PcmTrack, tone_pcm

    body = await _ice_from_api(turn_server.port)
    (server,) = body["iceServers"]
    port = turn_server.settings.coturn_port
    assert server["urls"] == [f"turn:127.0.0.1:{port}?transport=udp"] and body["ttl"] == 120
    expiry, account = server["username"].split(":", 1)
    assert account == "alice@example.test" and 0 < int(expiry) - time.time() <= 120

    def pc():
        return RTCPeerConnection(
            RTCConfiguration(
                iceServers=[
                    RTCIceServer(urls=server["urls"], username=server["username"], credential=server["credential"])
                ],
                iceTransportPolicy=RTCIceTransportPolicy.RELAY,
            )
        )

    a, b = pc(), pc()
    got: asyncio.Queue = asyncio.Queue()
    b.on("track", got.put_nowait)
    try:
        a.addTrack(PcmTrack(tone_pcm(1.0, (440.0,)), loop=True))
        await a.setLocalDescription(await a.createOffer())
        offer = a.localDescription.sdp
        cands = [ln for ln in offer.splitlines() if ln.startswith("a=candidate:")]
        assert cands and all(" typ relay " in ln for ln in cands), cands
        await b.setRemoteDescription(a.localDescription)
        b.addTrack(PcmTrack(tone_pcm(1.0, (660.0,)), loop=True))
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        track = await asyncio.wait_for(got.get(), 10)
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(25)]
        assert len(frames) == 25
        assert a.connectionState == "connected"
        pair = a.getTransceivers()[0].sender.transport.transport.iceGatherer._connection._nominated[1]
        assert pair.local_candidate.type == "relay" and pair.remote_candidate.type == "relay"
    finally:
        await a.close()
        await b.close()


async def test_expired_credential_is_refused(netns, turn_server):
    if not netns:
        return
    from suite.voip.ice import ice_config
    from suite.voip.turn import turn_credential

    port = turn_server.settings.coturn_port
    secret = ice_config(turn_server.settings).turn_secret
    fresh = turn_credential(secret, "alice@example.test", time.time(), ttl=60)
    assert len(await _gather_relay(port, fresh.username, fresh.password)) == 1
    expired = turn_credential(secret, "alice@example.test", time.time() - 120, ttl=60)
    assert await _gather_relay(port, expired.username, expired.password) == []
    forged = turn_credential("another-secret-of-sixteen+", "alice@example.test", time.time(), ttl=60)
    assert await _gather_relay(port, forged.username, forged.password) == []
