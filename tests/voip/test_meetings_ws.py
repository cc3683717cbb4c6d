"""Meetings end to end over the gateway: create a room, join from the link, lobby, media through
the SFU, mute, remove, end — with aiortc clients and real WebSockets in a private namespace."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from suite.voip.hub import hub_for
from tests.voip.conftest import PW
from tests.voip.test_sfu import pattern, tone


async def login(port: int, address: str) -> httpx.AsyncClient:
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20)
    r = await http.post("/api/login", json={"address": address, "password": PW})
    assert r.status_code == 200, r.text
    me = (await http.get("/api/me")).json()
    http.headers["X-CSRF-Token"] = me["csrf_token"]
    return http


class Attendee:
    """A meeting page, as aiortc: hello, answer the SFU's offer, count decoded frames per sender."""

    def __init__(self, port: int, token: str, cookie: str | None = None) -> None:
        self.port, self.token, self.cookie = port, token, cookie
        self.ws = None
        self.backlog: list[dict] = []
        self.layout: dict[str, str] = {}
        self.frames: Counter[tuple[str, str]] = Counter()
        self.pc = None
        self.peer_id: str | None = None
        self.tasks: list[asyncio.Task] = []

    async def open(self) -> Attendee:
        headers = {"Cookie": f"suite_session={self.cookie}"} if self.cookie else {}
        self.ws = await connect(f"ws://127.0.0.1:{self.port}/ws/meetings/{self.token}", additional_headers=headers)
        return self

    async def send(self, **msg) -> None:
        await self.ws.send(json.dumps(msg))

    async def expect(self, kind: str, timeout: float = 10) -> dict:
        for i, m in enumerate(self.backlog):
            if m["type"] == kind:
                return self.backlog.pop(i)
        while True:
            m = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if m["type"] == "layout":
                self.layout = m["slots"]
            if m["type"] == kind:
                return m
            self.backlog.append(m)

    async def pump(self) -> None:
        """Keep reading (layouts, notices) into the backlog."""
        try:
            while True:
                m = json.loads(await self.ws.recv())
                if m["type"] == "layout":
                    self.layout = m["slots"]
                self.backlog.append(m)
        except ConnectionClosed:
            pass

    async def media(self) -> None:
        from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        offer = await self.expect("offer")
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type="offer"))
        pc.addTrack(tone())
        pc.addTrack(pattern())
        await pc.setLocalDescription(await pc.createAnswer())
        await self.send(type="answer", sdp=pc.localDescription.sdp)
        for tr in pc.getTransceivers()[2:]:
            self.tasks.append(asyncio.create_task(self._count(tr)))
        self.tasks.append(asyncio.create_task(self.pump()))

    async def _count(self, transceiver) -> None:
        track = transceiver.receiver.track
        while True:
            await track.recv()
            owner = self.layout.get(transceiver.mid)
            if owner is not None:
                self.frames[(owner, track.kind)] += 1

    def has(self, kind: str, msg_type: str) -> list[dict]:
        return [m for m in self.backlog if m["type"] == msg_type]

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()


async def until(check, what, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, what()
        await asyncio.sleep(0.1)


async def record_into_files(server, people, host, member, guest, tmp_path) -> None:
    """Only the host records; everyone sees the notice while it runs; the WebM lands in the
    host's Files ("Recordings") with VP8 video and Opus audio of about the recorded length."""
    from suite.files.service import Files
    from tests.voip.test_recording import probe

    loop = asyncio.get_running_loop()
    await guest.send(type="record", on=True)
    await until(lambda: any(m["code"] == "not_host" for m in guest.has("", "error")), lambda: guest.backlog)
    await host.send(type="record", on=True)
    for a in people:
        await until(lambda a=a: [m["on"] for m in a.has("", "recording")] == [True], lambda a=a: a.backlog)
    started = loop.time()
    seen = member.frames[(host.peer_id, "video")]
    await until(lambda: member.frames[(host.peer_id, "video")] >= seen + 60, lambda: dict(member.frames))
    await host.send(type="record", on=False)
    elapsed = loop.time() - started
    for a in people:
        await until(lambda a=a: [m["on"] for m in a.has("", "recording")][:2] == [True, False], lambda a=a: a.backlog)
    await until(lambda: any(m.get("saved") for m in host.has("", "recording")), lambda: host.backlog, timeout=60)
    saved = next(m["saved"] for m in host.has("", "recording") if m.get("saved"))
    assert saved.startswith("/Recordings/Planning ") and saved.endswith(".webm"), saved
    assert not any(m.get("saved") for a in (member, guest) for m in a.has("", "recording"))
    alice = await server.accounts.get("alice@example.test")
    node = await Files(server).tree.resolve(alice.id, saved)
    assert node is not None and node.media_type == "video/webm" and node.blob is not None
    path = tmp_path / "recording.webm"
    path.write_bytes(await server.blobs.read_bytes(node.blob))
    lengths = probe(path)
    assert set(lengths) == {"video/vp8", "audio/opus"}, lengths
    for kind, seconds in lengths.items():  # about the recorded length (the video starts at a keyframe)
        assert elapsed - 2.0 < seconds < elapsed + 0.5, (kind, seconds, elapsed)


async def test_meeting_with_lobby_guest_media_mute_remove_end(netns, server, tmp_path):
    if not netns:
        return
    port = server.port
    alice = await login(port, "alice@example.test")
    bob = await login(port, "bob@example.test")
    people: list[Attendee] = []
    try:
        r = await alice.post("/api/meetings", json={"title": "Planning", "lobby": True})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        assert r.json()["url"] == f"/m/{token}" and len(token) >= 22
        info = (await httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}").get(f"/api/meetings/{token}")).json()
        assert info == {
            "title": "Planning",
            "lobby": True,
            "password": False,
            "ended": False,
            "signed_in": False,
            "host": False,
            "e2ee": False,
        }

        host = await Attendee(port, token, alice.cookies["suite_session"]).open()
        people.append(host)
        await host.send(type="hello")
        joined = await host.expect("joined")
        assert joined["role"] == "host" and joined["title"] == "Planning"
        host.peer_id = joined["peer_id"]
        await host.media()

        member = await Attendee(port, token, bob.cookies["suite_session"]).open()
        people.append(member)
        await member.send(type="hello")
        member.peer_id = (await member.expect("joined"))["peer_id"]
        await member.media()

        guest = await Attendee(port, token).open()  # from the link, logged out
        people.append(guest)
        await guest.send(type="hello")
        assert (await guest.expect("error"))["code"] == "name_required"
        await guest.send(type="hello", name="Gus <Guest>")
        await guest.expect("waiting")
        await until(lambda: host.has("", "lobby_knock"), lambda: host.backlog)
        knock = host.has("", "lobby_knock")[0]["knocker"]
        assert knock["name"] == "Gus <Guest>"
        await member.send(type="admit", peer_id=knock["peer_id"])  # not the host
        await until(lambda: member.has("", "error"), lambda: member.backlog)
        assert member.has("", "error")[0]["code"] == "not_host"
        await host.send(type="admit", peer_id=knock["peer_id"])
        gj = await guest.expect("joined")
        assert gj["role"] == "guest" and len(gj["participants"]) == 3
        guest.peer_id = gj["peer_id"]
        await guest.media()

        everyone = {a.peer_id: a for a in people}
        for a in people:
            others = [p for p in everyone if p != a.peer_id]
            await until(
                lambda a=a, others=others: all(a.frames[(o, k)] >= 10 for o in others for k in ("audio", "video")),
                lambda a=a: f"{a.peer_id} got {dict(a.frames)} layout {a.layout}",
            )

        await record_into_files(server, people, host, member, guest, tmp_path)

        # The guest's network changes: its page asks for a new media session and stays in the room.
        for t in guest.tasks:
            t.cancel()
        guest.tasks.clear()
        await guest.pc.close()
        await guest.send(type="reconnect")
        await guest.media()
        seen = host.frames[(guest.peer_id, "video")]
        got = {o: guest.frames[(o, "video")] for o in (host.peer_id, member.peer_id)}
        await until(lambda: host.frames[(guest.peer_id, "video")] >= seen + 10, lambda: dict(host.frames))
        await until(
            lambda: all(guest.frames[(o, "video")] >= n + 10 for o, n in got.items()), lambda: dict(guest.frames)
        )
        assert not any(m["peer_id"] == guest.peer_id for m in host.has("", "participant_left"))

        # The host mutes the guest's audio: the guest is told, the SFU stops forwarding it.
        await host.send(type="mute", peer_id=guest.peer_id, kind="audio")
        await until(lambda: guest.has("", "muted"), lambda: guest.backlog)
        await asyncio.sleep(0.3)  # frames already in flight
        before = host.frames[(guest.peer_id, "audio")]
        video_before = host.frames[(guest.peer_id, "video")]
        await until(lambda: host.frames[(guest.peer_id, "video")] >= video_before + 20, lambda: dict(host.frames))
        assert host.frames[(guest.peer_id, "audio")] <= before + 2

        # chat reaches everyone, as text
        await guest.send(type="chat", text="hi <b>all</b>")
        for a in people:
            await until(lambda a=a: a.has("", "chat"), lambda a=a: a.backlog)
            assert a.has("", "chat")[0]["text"] == "hi <b>all</b>"

        # The host removes bob: closed for him, gone for the others, his account stays out.
        await host.send(type="remove", peer_id=member.peer_id)
        await until(lambda: member.has("", "closed"), lambda: member.backlog)
        assert member.has("", "closed")[0]["reason"] == "removed"
        await until(lambda: member.ws.close_code is not None, lambda: "bob's socket still open")
        await until(
            lambda: any(m.get("reason") == "removed" for m in guest.has("", "participant_left")), lambda: guest.backlog
        )
        again = await Attendee(port, token, bob.cookies["suite_session"]).open()
        people.append(again)
        await again.send(type="hello")
        assert (await again.expect("error"))["code"] == "banned"

        # The host ends the meeting: everyone is closed, the link admits nobody any more.
        await host.send(type="end")
        for a in (host, guest):
            await until(lambda a=a: a.has("", "closed"), lambda a=a: a.backlog)
            assert a.has("", "closed")[0]["reason"] == "ended"
        info = (await alice.get(f"/api/meetings/{token}")).json()
        assert info["ended"] is True and info["host"] is True
        late = await Attendee(port, token).open()
        people.append(late)
        assert (await late.expect("error"))["code"] == "ended"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(late.ws.recv(), 5)
        assert late.ws.close_code == 4410
    finally:
        for a in people:
            await a.close()
        await alice.aclose()
        await bob.aclose()


async def test_meeting_edges(netns, server):
    if not netns:
        return
    port = server.port
    anon = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20)
    alice = await login(port, "alice@example.test")
    try:
        assert (await anon.post("/api/meetings", json={})).status_code == 401
        assert (await anon.get("/api/meetings/" + "x" * 24)).status_code == 404
        for bad in ({"title": ""}, {"lobby": "yes"}, {"password": 5}, {"title": "x" * 201}, {"e2ee": 1}):
            r = await alice.post("/api/meetings", json=bad)
            assert r.status_code == 400, (bad, r.text)
        r = await alice.post("/api/meetings", json={"title": "Secret", "password": "open sesame"})
        token = r.json()["token"]
        assert r.json()["password"] is True and r.json()["e2ee"] is False
        r = await alice.post("/api/meetings", json={"title": "Sealed", "e2ee": True})
        assert r.status_code == 201 and r.json()["e2ee"] is True
        assert (await anon.get(r.json()["url"].replace("/m/", "/api/meetings/"))).json()["e2ee"] is True

        # unknown link: 4404
        ws = await connect(f"ws://127.0.0.1:{port}/ws/meetings/{'y' * 24}")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4404
        # cross-site page: refused at the handshake
        with pytest.raises(Exception, match="403"):
            await connect(
                f"ws://127.0.0.1:{port}/ws/meetings/{token}", additional_headers={"Origin": "https://evil.example"}
            )

        guest = await Attendee(port, token).open()
        for frame, code in (
            ("not json", "bad_json"),
            ('{"type": "nope"}', "unknown_type"),
            ('{"type": "hello", "name": 7}', "invalid_message"),
            ("x" * 70000, "too_large"),
            ('{"type": "chat", "text": "hi"}', "not_joined"),
        ):
            await guest.ws.send(frame)
            assert (await guest.expect("error"))["code"] == code, frame
        await guest.send(type="hello", name="Gus")
        assert (await guest.expect("error"))["code"] == "password_required"
        await guest.send(type="hello", name="Gus", password="wrong")
        assert (await guest.expect("error"))["code"] == "password_required"
        await guest.send(type="hello", name="Gus", password="open sesame")
        assert (await guest.expect("joined"))["role"] == "guest"
        offer = await guest.expect("offer")
        assert offer["sdp"].startswith("v=0") and offer["ice_servers"] == []  # no TURN configured here
        await guest.close()

        # a few wrong passwords, then the socket is closed
        brute = await Attendee(port, token).open()
        with pytest.raises(ConnectionClosed):
            for i in range(10):
                await brute.send(type="hello", name="B", password=f"guess{i}")
                await brute.expect("error")
        assert brute.ws.close_code == 4429
    finally:
        await anon.aclose()
        await alice.aclose()


async def test_a_call_becomes_a_meeting_by_adding_a_person(netns, server):
    """alice calls bob, bob accepts, alice adds carol: both move to one room (alice hosts), carol
    rings with an invitation to it, accepts, and the room has all three."""
    if not netns:
        return
    from tests.voip.test_ws_calls import Client

    port = server.port
    alice, bob, carol = [await Client(port, f"{n}@example.test").login() for n in ("alice", "bob", "carol")]
    people: list[Attendee] = []
    try:
        for c in (alice, bob, carol):
            await c.open()
        await alice.send(type="invite", call_id="call-00000001", to="bob@example.test", media="video")
        await bob.expect("incoming")
        await bob.send(type="accept", call_id="call-00000001")
        await alice.expect("accepted")
        await bob.expect("accepted")
        await alice.send(type="add_person", call_id="call-00000001", to="carol@example.test")
        moves = [await alice.expect("move_to_meeting"), await bob.expect("move_to_meeting")]
        assert moves[0] == moves[1] and moves[0]["call_id"] == "call-00000001"
        token = moves[0]["token"]
        assert moves[0]["url"] == f"/m/{token}" and len(token) >= 22  # ≥128 bits
        ring = await carol.expect("incoming")
        assert (ring["caller"], ring["meeting"]) == ("alice@example.test", token)
        await carol.send(type="accept", call_id=ring["call_id"])  # within the fixture's 2 s ring
        assert (await carol.expect("move_to_meeting"))["token"] == token
        # the 1:1 call is over: its peer connection has nothing left to relay
        await bob.send(type="offer", call_id="call-00000001", sdp="v=0\r\n")
        assert (await bob.expect("error"))["code"] == "unknown_call"

        async def enter(client: Client) -> dict:
            a = await Attendee(port, token, client.http.cookies["suite_session"]).open()
            people.append(a)
            await a.send(type="hello")
            return await a.expect("joined")

        assert (await enter(alice))["role"] == "host"  # the caller hosts
        assert (await enter(bob))["role"] == "member"
        joined = await enter(carol)
        roles = {p["name"]: p["role"] for p in joined["participants"]}
        # members under their account's display name (alice has one), else the address
        assert roles == {"Alice Liddell": "host", "bob@example.test": "member", "carol@example.test": "member"}
        await hub_for(server).flush()
        rows = (await carol.http.get("/api/calls/history")).json()["calls"]
        assert [(r["peer"], r["outcome"]) for r in rows] == [("alice@example.test", "answered")]
    finally:
        for a in people:
            await a.close()
        for c in (alice, bob, carol):
            await c.close()
