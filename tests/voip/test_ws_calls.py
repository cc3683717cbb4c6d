"""Signalling through the real gateway: two (or more) WebSocket clients, cookie sessions, history."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from suite.gateway.service import GatewayService
from suite.testing import async_wait_until
from suite.voip.hub import CallHub, hub_for
from suite.voip.store import SqlCallHistory

PW = "correct horse battery"
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


async def start_gateway(ctx, hub: CallHub | None = None) -> GatewayService:
    ctx.settings.http_port = 0
    svc = GatewayService(ctx)
    if hub is not None:
        svc.app.state.call_hub = hub
    await svc.start()
    return svc


@pytest.fixture
async def accounts(ctx):
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_domain("other.test")
    for name in ("alice", "bob", "carol"):
        await ctx.accounts.add_account(f"{name}@example.test", PW, display_name=name.title())
    await ctx.accounts.add_account("zed@other.test", PW)
    return ctx


@pytest.fixture
async def gw(accounts):
    accounts.settings.call_ring_timeout = 1.0
    accounts.settings.voicemail_enabled = False
    svc = await start_gateway(accounts)
    yield svc
    await svc.stop()
    await hub_for(accounts).stop()


class Client:
    def __init__(self, port: int, address: str) -> None:
        self.port, self.address = port, address
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20)
        self.ws = None

    async def login(self) -> Client:
        r = await self.http.post("/api/login", json={"address": self.address, "password": PW})
        assert r.status_code == 200, r.text
        return self

    async def open(self):
        cookie = f"suite_session={self.http.cookies['suite_session']}"
        self.ws = await connect(
            f"ws://127.0.0.1:{self.port}/ws/calls",
            additional_headers={"Cookie": cookie},
            origin=f"http://127.0.0.1:{self.port}",
        )
        return self.ws

    async def send(self, **msg) -> None:
        await self.ws.send(json.dumps(msg))

    async def recv(self, timeout: float = 5.0) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def expect(self, kind: str, timeout: float = 5.0) -> dict:
        msg = await self.recv(timeout)
        assert msg["type"] == kind, msg
        return msg

    async def quiet(self) -> None:
        """Nothing is queued for this client: a probe's answer is the very next message (the socket
        keeps order), so there is no window to wait out."""
        await self.send(type="hangup", call_id="call-99999998")
        msg = await self.recv()
        assert (msg["type"], msg.get("code"), msg.get("call_id")) == ("error", "unknown_call", "call-99999998"), msg

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        await self.http.aclose()


@pytest.fixture
async def clients(gw):
    made: list[Client] = []

    async def make(name: str, port: int | None = None) -> Client:
        c = await Client(port or gw.port, f"{name}@example.test").login()
        await c.open()
        made.append(c)
        return c

    yield make
    for c in made:
        await c.close()


async def test_refuses_unauthenticated_and_cross_site(gw):
    ws = await connect(f"ws://127.0.0.1:{gw.port}/ws/calls")
    with pytest.raises(ConnectionClosed) as exc:
        await asyncio.wait_for(ws.recv(), 5)
    assert exc.value.rcvd.code == 4401
    # a forged/expired cookie is no better
    ws = await connect(f"ws://127.0.0.1:{gw.port}/ws/calls", additional_headers={"Cookie": "suite_session=nope"})
    with pytest.raises(ConnectionClosed) as exc:
        await asyncio.wait_for(ws.recv(), 5)
    assert exc.value.rcvd.code == 4401
    # a page of another site must not ride on our cookie
    c = await Client(gw.port, "alice@example.test").login()
    cookie = f"suite_session={c.http.cookies['suite_session']}"
    with pytest.raises(InvalidStatus) as bad:
        await connect(
            f"ws://127.0.0.1:{gw.port}/ws/calls", additional_headers={"Cookie": cookie}, origin="https://evil.example"
        )
    assert bad.value.response.status_code == 403
    await c.close()


async def test_call_answered_relayed_and_hung_up(gw, clients):
    alice, bob = await clients("alice"), await clients("bob")
    bob2 = await clients("bob")  # a second device of bob rings too
    await alice.send(type="invite", call_id="call-00000001", to="bob@example.test", media="video")
    for dev in (bob, bob2):
        inc = await dev.expect("incoming")
        assert inc == {
            "type": "incoming",
            "call_id": "call-00000001",
            "caller": "alice@example.test",
            "media": "video",
            "meeting": None,  # a plain call, not an invitation to a meeting
        }
    await bob.send(type="ringing", call_id="call-00000001")
    await alice.expect("ringing")
    await bob.send(type="accept", call_id="call-00000001")
    assert (await alice.expect("accepted"))["peer"] == "bob@example.test"
    assert (await bob.expect("accepted"))["peer"] == "alice@example.test"
    assert (await bob2.expect("stop_ringing"))["reason"] == "answered_elsewhere"
    # presence: both in a call, seen by carol
    carol = await clients("carol")
    contacts = (await carol.http.get("/api/contacts")).json()["contacts"]
    pres = {c["address"]: c["presence"] for c in contacts}
    assert pres == {"alice@example.test": "in_call", "bob@example.test": "in_call"}  # not zed@other.test
    # SDP and ICE go only between the bound sessions
    await alice.send(type="offer", call_id="call-00000001", sdp=SDP)
    got = await bob.expect("offer")
    assert got["sdp"] == SDP and got["sender"] == "alice@example.test"
    cand = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    await bob.send(type="ice", call_id="call-00000001", candidate=cand)
    assert (await alice.expect("ice"))["candidate"]["candidate"] == cand["candidate"]
    await bob2.send(type="offer", call_id="call-00000001", sdp=SDP)
    assert (await bob2.expect("error"))["code"] == "not_allowed"
    await carol.send(type="hangup", call_id="call-00000001")
    assert (await carol.expect("error"))["code"] == "unknown_call"
    await alice.quiet()
    await alice.send(type="hangup", call_id="call-00000001")
    assert (await alice.expect("call_ended"))["reason"] == "hangup"
    assert (await bob.expect("call_ended"))["reason"] == "hangup"
    await hub_for(gw.ctx).flush()
    for who, direction, peer in ((alice, "outgoing", "bob@example.test"), (bob, "incoming", "alice@example.test")):
        rows = (await who.http.get("/api/calls/history")).json()["calls"]
        assert len(rows) == 1
        row = rows[0]
        assert (row["direction"], row["peer"], row["outcome"], row["missed"]) == (direction, peer, "answered", False)
        assert row["answered_at"] is not None and row["ended_at"] >= row["answered_at"] >= row["started_at"]
        assert row["duration"] == round(row["ended_at"] - row["answered_at"], 1)
    assert (await carol.http.get("/api/calls/history")).json()["calls"] == []


async def test_timeout_is_a_missed_call_and_offline_is_unavailable(gw, clients):
    alice, bob = await clients("alice"), await clients("bob")
    await alice.send(type="invite", call_id="call-00000002", to="bob@example.test")
    await bob.expect("incoming")
    # nobody answers: the hub's timer (from next_deadline) ends it after call_ring_timeout = 1 s
    assert (await bob.expect("stop_ringing", timeout=4))["reason"] == "timeout"
    assert (await alice.expect("call_ended"))["reason"] == "timeout"
    # carol has no session open: unavailable at once
    await alice.send(type="invite", call_id="call-00000003", to="carol@example.test")
    assert (await alice.expect("call_ended"))["reason"] == "unavailable"
    await hub_for(gw.ctx).flush()
    rows = (await bob.http.get("/api/calls/history")).json()["calls"]
    assert [(r["call_id"], r["outcome"], r["missed"]) for r in rows] == [("call-00000002", "missed", True)]
    rows = (await alice.http.get("/api/calls/history")).json()["calls"]
    assert [(r["call_id"], r["missed"]) for r in rows] == [("call-00000003", False), ("call-00000002", False)]
    # presence follows the sessions
    contacts = {c["address"]: c["presence"] for c in (await alice.http.get("/api/contacts")).json()["contacts"]}
    assert contacts == {"bob@example.test": "online", "carol@example.test": "offline"}
    await bob.ws.close()

    async def bob_offline() -> bool:
        contacts = (await alice.http.get("/api/contacts")).json()["contacts"]
        return {c["address"]: c["presence"] for c in contacts}["bob@example.test"] == "offline"

    await async_wait_until(bob_offline, what="bob offline once his socket closed")


async def test_edge_checks_callee_and_rate(gw, clients):
    alice = await clients("alice")
    await alice.send(type="invite", call_id="call-00000010", to="nobody@example.test")
    err = await alice.expect("error")
    assert (err["code"], err["call_id"]) == ("invalid_message", "call-00000010")
    await alice.ws.send("{not json")
    assert (await alice.expect("error"))["code"] == "bad_json"
    await alice.ws.send(b"\x00binary")
    assert (await alice.expect("error"))["code"] == "bad_json"
    await alice.send(type="invite", call_id="call-00000011", to="bob@example.test", sdp="x")
    assert (await alice.expect("error"))["code"] == "invalid_message"
    await alice.ws.send(json.dumps({"type": "offer", "call_id": "call-00000012", "sdp": "v=0\n" + "a" * 70000}))
    assert (await alice.expect("error"))["code"] == "too_large"
    # invites are limited per session (attempts count, the one to nobody too): the 11th within a
    # minute is refused before the switch
    codes = []
    for i in range(10):
        await alice.send(type="invite", call_id=f"call-1000{i:04d}", to="carol@example.test")
        codes.append((await alice.recv())["type"])
    assert codes == ["call_ended"] * 9 + ["error"]
    # the socket is still usable
    await alice.send(type="hangup", call_id="call-99999999")
    assert (await alice.expect("error"))["code"] == "unknown_call"


async def test_mesh_room_of_three(gw, clients):
    alice, bob, carol = await clients("alice"), await clients("bob"), await clients("carol")
    await alice.send(type="room_create", room_id="room-0000001", invite=["bob@example.test", "carol@example.test"])
    joined = await alice.expect("room_joined")
    assert joined["peers"] == []
    for c in (bob, carol):
        assert (await c.expect("room_invite"))["inviter"] == "alice@example.test"
    await bob.send(type="room_join", room_id="room-0000001")
    bj = await bob.expect("room_joined")
    assert [p["account"] for p in bj["peers"]] == ["alice@example.test"]
    assert (await alice.expect("room_peer_joined"))["peer"]["account"] == "bob@example.test"
    await bob.send(type="room_offer", room_id="room-0000001", to=joined["peer_id"], sdp=SDP)
    got = await alice.expect("room_offer")
    assert got["sender"] == bj["peer_id"]
    await carol.send(type="room_join", room_id="room-0000001")
    cj = await carol.expect("room_joined")
    assert sorted(p["account"] for p in cj["peers"]) == ["alice@example.test", "bob@example.test"]
    for c in (alice, bob):
        assert (await c.expect("room_peer_joined"))["peer"]["peer_id"] == cj["peer_id"]
    await carol.ws.close()
    assert (await alice.expect("room_peer_left"))["peer_id"] == cj["peer_id"]
    assert (await bob.expect("room_peer_left"))["peer_id"] == cj["peer_id"]


async def test_two_processes_share_one_switch(accounts):
    """Gateway B forwards its sessions to the owner hub of gateway A over the bus (CallSignal)."""
    ctx = accounts
    ctx.settings.voicemail_enabled = False
    a = await start_gateway(ctx, CallHub(history=SqlCallHistory(ctx.sessions), bus=ctx.bus, owner=True))
    b = await start_gateway(ctx, CallHub(history=SqlCallHistory(ctx.sessions), bus=ctx.bus, owner=False))
    alice = await Client(a.port, "alice@example.test").login()
    bob = await Client(b.port, "bob@example.test").login()
    try:
        await alice.open()
        await bob.open()

        async def bob_online() -> bool:  # B's session reached the owner over the bus
            contacts = (await alice.http.get("/api/contacts")).json()["contacts"]
            return {c["address"]: c["presence"] for c in contacts}["bob@example.test"] == "online"

        await async_wait_until(bob_online, what="bob's session on B known to the owner")
        await alice.send(type="invite", call_id="call-00000020", to="bob@example.test")
        assert (await bob.expect("incoming"))["caller"] == "alice@example.test"
        await bob.send(type="accept", call_id="call-00000020")
        await alice.expect("accepted")
        await bob.expect("accepted")
        await bob.send(type="offer", call_id="call-00000020", sdp=SDP)
        assert (await alice.expect("offer"))["sender"] == "bob@example.test"
        # presence on B comes from what the owner published
        pres = {c["address"]: c["presence"] for c in (await bob.http.get("/api/contacts")).json()["contacts"]}
        assert pres["alice@example.test"] == "in_call"
        await bob.ws.close()  # B's session closes: the owner ends the call
        assert (await alice.expect("call_ended"))["reason"] == "disconnected"
        await a.app.state.call_hub.flush()
        rows = (await alice.http.get("/api/calls/history")).json()["calls"]
        assert [(r["call_id"], r["outcome"], r["end_reason"]) for r in rows] == [
            ("call-00000020", "answered", "disconnected")
        ]
    finally:
        await alice.close()
        await bob.close()
        for g in (a, b):
            await g.stop()
            await g.app.state.call_hub.stop()


class _Flaky:
    """One process's end of a shared bus whose connection goes down and comes back (a PostgreSQL or
    Redis restart): while down, what it publishes is lost and it hears nothing; back, its
    subscriptions are told to resync, as the networked buses do on a reconnect."""

    def __init__(self, bus) -> None:
        self.bus = bus
        self.down = False
        self.subs: list = []

    def subscribe(self, *kinds):
        sub = self.bus.subscribe(*kinds)
        offer = sub._offer
        sub._offer = lambda ev: None if self.down else offer(ev)
        self.subs.append(sub)
        return sub

    async def publish(self, event) -> None:
        if not self.down:
            await self.bus.publish(event)

    def back(self) -> None:
        self.down = False
        for sub in self.subs:
            sub._resync()


async def test_sessions_and_presence_come_back_after_a_bus_reconnect(accounts):
    """Gateway B's bus is down while Bob opens his socket there (the owner never hears of it) and
    Carol comes online on the owner A (B never hears of it); after the reconnect B re-announces its
    sessions and the owner answers with its presence map, so Bob can be called and B sees Carol."""
    ctx = accounts
    ctx.settings.voicemail_enabled = False
    flaky = _Flaky(ctx.bus)
    a = await start_gateway(ctx, CallHub(history=SqlCallHistory(ctx.sessions), bus=ctx.bus, owner=True))
    b = await start_gateway(ctx, CallHub(history=SqlCallHistory(ctx.sessions), bus=flaky, owner=False))
    alice = await Client(a.port, "alice@example.test").login()
    carol = await Client(a.port, "carol@example.test").login()
    bob = await Client(b.port, "bob@example.test").login()

    async def presence(c: Client, address: str) -> str:
        contacts = (await c.http.get("/api/contacts")).json()["contacts"]
        return {x["address"]: x["presence"] for x in contacts}[address]

    try:
        await alice.open()
        flaky.down = True
        await bob.open()
        await carol.open()
        hub_b = b.app.state.call_hub

        async def opened() -> bool:
            return bool(hub_b._sinks) and await presence(alice, "carol@example.test") == "online"

        await async_wait_until(opened, what="bob's socket open on B, carol's on A")
        assert await presence(alice, "bob@example.test") == "offline"  # bob's open was lost
        assert await presence(bob, "carol@example.test") == "offline"  # carol's presence was lost
        flaky.back()

        async def both_known() -> bool:
            return (
                await presence(alice, "bob@example.test") == "online"
                and await presence(bob, "carol@example.test") == "online"
            )

        await async_wait_until(both_known, what="bob's session at the owner, carol's presence on B")
        await alice.send(type="invite", call_id="call-00000021", to="bob@example.test")
        assert (await bob.expect("incoming"))["caller"] == "alice@example.test"
    finally:
        for c in (alice, bob, carol):
            await c.close()
        for g in (a, b):
            await g.stop()
            await g.app.state.call_hub.stop()
