"""EventSource push (RFC 8620 §7.3) read with httpx: StateChange on changes, ping, closeafter=state."""

from __future__ import annotations

import asyncio
import json

import httpx

from suite.mail.store import MailStore
from tests.mail.jmap.conftest import PW, message


async def _events(lines, n: int, timeout: float = 20) -> list[tuple[str, dict]]:
    """The next ``n`` events from an ``aiter_lines()`` iterator."""
    out: list[tuple[str, dict]] = []
    name = ""

    async def read():
        nonlocal name
        async for line in lines:
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                out.append((name, json.loads(line.split(":", 1)[1])))
                if len(out) >= n:
                    return

    await asyncio.wait_for(read(), timeout)
    return out


def _url(jmap, types="*", closeafter="no", ping=0) -> str:
    return (
        jmap.session["eventSourceUrl"]
        .replace("{types}", types)
        .replace("{closeafter}", closeafter)
        .replace("{ping}", str(ping))
    )


async def test_state_change_pushed(jmap, store, accounts):
    async with jmap.http.stream("GET", _url(jmap, types="Email,Mailbox")) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        first = await _events(lines, 1)
        assert first[0][0] == "state" and first[0][1]["@type"] == "StateChange"
        before = first[0][1]["changed"][jmap.account_id]
        assert set(before) == {"Email", "Mailbox"}
        await store.deliver(accounts[0].id, "INBOX", message())
        ev = await _events(lines, 1)
        changed = ev[0][1]["changed"][jmap.account_id]
        assert changed["Email"] != before["Email"] and changed["Mailbox"] != before["Mailbox"]


async def test_closeafter_state(jmap, store, accounts):
    # closeafter=state: the response ends after the first state event
    async with jmap.http.stream("GET", _url(jmap, closeafter="state")) as resp:

        async def deliver_soon():
            await asyncio.sleep(0.3)
            await store.deliver(accounts[0].id, "INBOX", message())

        task = asyncio.create_task(deliver_soon())
        body = await asyncio.wait_for(resp.aread(), 20)
        await task
    assert body.count(b"event: state") == 1


async def test_ping(jmap):
    # ping=N: a ping event every N seconds (at least 10 s; interval reported)
    async with jmap.http.stream("GET", _url(jmap, ping=10)) as resp:
        evs = await _events(resp.aiter_lines(), 2, timeout=30)
    assert evs[1][0] == "ping" and evs[1][1]["interval"] == 10


async def test_eventsource_needs_auth(base_url):
    import httpx

    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await http.get("/jmap/eventsource?types=*&closeafter=no&ping=0")
        assert r.status_code == 401


async def test_gateway_stop_ends_streams(ctx, accounts):
    # an open EventSource does not hold the gateway's shutdown (it ends the stream)
    import httpx

    from suite.gateway.service import GatewayService
    from tests.mail.jmap.conftest import PW

    ctx.settings.http_port = 0
    svc = GatewayService(ctx)
    await svc.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.port}", auth=("alice@example.test", PW)) as http:
        async with http.stream("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0") as resp:
            lines = resp.aiter_lines()
            await _events(lines, 1)
            stopping = asyncio.create_task(svc.stop())

            async def drain() -> None:
                async for _ in lines:
                    pass

            # the server ends the stream itself (deadline only against a hang; uvicorn would wait 20 s)
            await asyncio.wait_for(drain(), 15)
            await stopping


async def test_revoked_app_password_ends_the_stream(ctx, base_url, accounts):
    """Issue 16: revoking the app password an EventSource stream signed in with ends the stream
    within 2 s (the deadline is the test); a stream on another credential goes on."""
    info, secret = await ctx.accounts.add_app_password("alice@example.test", "push", ["jmap"])
    async with (
        httpx.AsyncClient(base_url=base_url, auth=("alice@example.test", secret), timeout=30) as http,
        httpx.AsyncClient(base_url=base_url, auth=("alice@example.test", PW), timeout=30) as other,
    ):
        url = "/jmap/eventsource?types=*&closeafter=no&ping=0"
        async with http.stream("GET", url) as resp, other.stream("GET", url) as resp2:
            lines = resp.aiter_lines()
            await _events(lines, 1)
            lines2 = resp2.aiter_lines()
            await _events(lines2, 1)
            await ctx.accounts.revoke_app_password("alice@example.test", info.id)

            async def drain():
                async for _ in lines:
                    pass

            await asyncio.wait_for(drain(), 2.0)  # the response ended
            await ctx.accounts.set_quota("alice@example.test", 60_000_000)
            store = MailStore(ctx)
            await store.deliver(accounts[0].id, "INBOX", message())
            assert (await _events(lines2, 1))[0][0] == "state"  # the password's stream still runs
