"""PushSubscription/get|set (RFC 8620 §7.2): verification, StateChange pushes, URL allow-list."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

from suite.mail.store import MailStore
from suite.storage.bus import MemoryBus
from tests.mail.jmap.conftest import message


class Receiver:
    """An HTTP endpoint on loopback that keeps the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.bodies.append(json.loads(await reader.readexactly(length)))
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def wait(self, n: int, timeout: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return self.bodies


@pytest.fixture
async def receiver(ctx):
    r = Receiver()
    await r.start()
    ctx.settings.jmap_push_allowed_urls = [f"http://127.0.0.1:{r.port}/"]
    yield r
    r.server.close()


async def test_push_verification_and_state_change(jmap, store, accounts, receiver):
    url = f"http://127.0.0.1:{receiver.port}/push/1"
    out = await jmap.request(
        [["PushSubscription/set", {"create": {"p": {"deviceClientId": "dev1", "url": url, "types": ["Email"]}}}, "0"]]
    )
    created = out["methodResponses"][0][1]["created"]["p"]
    sid = created["id"]
    # RFC 8620 §7.2.2: the PushVerification arrives at the URL
    (verification,) = await receiver.wait(1)
    assert verification["@type"] == "PushVerification" and verification["pushSubscriptionId"] == sid
    got = (await jmap.request([["PushSubscription/get", {"ids": None}, "0"]]))["methodResponses"][0][1]
    assert got["list"][0]["verificationCode"] is None and "url" not in got["list"][0]
    # nothing is pushed before verification
    await store.deliver(accounts[0].id, "INBOX", message(msgid="p1@x"))
    await asyncio.sleep(0.5)
    assert len(receiver.bodies) == 1
    out = await jmap.request([["PushSubscription/set", {"update": {sid: {"verificationCode": "wrong"}}}, "0"]])
    assert out["methodResponses"][0][1]["notUpdated"][sid]["type"] == "invalidProperties"
    out = await jmap.request(
        [["PushSubscription/set", {"update": {sid: {"verificationCode": verification["verificationCode"]}}}, "0"]]
    )
    assert sid in out["methodResponses"][0][1]["updated"]
    await store.deliver(accounts[0].id, "INBOX", message(msgid="p2@x"))
    bodies = await receiver.wait(2)
    change = bodies[-1]
    assert change["@type"] == "StateChange" and list(change["changed"][jmap.account_id]) == ["Email"]
    out = await jmap.request([["PushSubscription/set", {"destroy": [sid]}, "0"]])
    assert out["methodResponses"][0][1]["destroyed"] == [sid]


async def test_push_url_must_be_allowed(jmap, receiver):
    out = await jmap.request(
        [["PushSubscription/set", {"create": {"p": {"deviceClientId": "d", "url": "https://evil.example/x"}}}, "0"]]
    )
    assert out["methodResponses"][0][1]["notCreated"]["p"]["type"] == "forbidden"


async def test_a_state_change_missed_by_the_bus_is_pushed_after_the_resync(ctx, jmap, accounts, receiver):
    """A delivery whose event the push sender never heard (another process published it while this
    one's bus was down) is pushed when the bus reconnects and resyncs (PostgresBus/RedisBus do on
    their reconnect; here the in-process bus is told the same)."""
    url = f"http://127.0.0.1:{receiver.port}/push/2"
    create = {"p": {"deviceClientId": "dev2", "url": url, "types": ["Email"]}}
    out = await jmap.request([["PushSubscription/set", {"create": create}, "0"]])
    sid = out["methodResponses"][0][1]["created"]["p"]["id"]
    code = (await receiver.wait(1))[0]["verificationCode"]
    await jmap.request([["PushSubscription/set", {"update": {sid: {"verificationCode": code}}}, "0"]])
    unheard = MailStore(dataclasses.replace(ctx, bus=MemoryBus()))
    await unheard.deliver(accounts[0].id, "INBOX", message(msgid="p3@x"))
    ctx.bus._resync()
    change = (await receiver.wait(2))[-1]
    assert change["@type"] == "StateChange" and list(change["changed"][jmap.account_id]) == ["Email"]
