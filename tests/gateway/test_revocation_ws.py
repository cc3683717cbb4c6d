"""Revocation is immediate for the gateway's live streams (issue 16 item 2): ending a web session
(sign-out elsewhere, a password change, the account disabled) closes its calls WebSocket within
2 s, and only that session's."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from suite.gateway.service import GatewayService
from suite.testing import async_wait_until
from suite.voip.hub import hub_for

PW = "correct horse battery"
DEADLINE = 2.0


@pytest.fixture
async def gw(ctx):
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account("alice@example.test", PW)
    ctx.settings.http_port = 0
    ctx.settings.voicemail_enabled = False
    svc = GatewayService(ctx)
    await svc.start()
    yield svc
    await svc.stop()
    await hub_for(ctx).stop()


async def _session(port: int):
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20)
    r = await http.post("/api/login", json={"address": "alice@example.test", "password": PW})
    assert r.status_code == 200, r.text
    ws = await connect(
        f"ws://127.0.0.1:{port}/ws/calls",
        additional_headers={"Cookie": f"suite_session={http.cookies['suite_session']}"},
        origin=f"http://127.0.0.1:{port}",
    )
    return http, r.json()["csrf_token"], ws


async def _closed_within(ws, seconds: float = DEADLINE) -> int:
    """Read until the server closes; the close code. Fails when the deadline passes first."""
    async with asyncio.timeout(seconds):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None, "closed without a close frame"
            return exc.rcvd.code


async def _open(ws) -> None:
    """Still open: a probe gets its answer."""
    await ws.send('{"type": "hangup", "call_id": "call-99999998"}')
    await asyncio.wait_for(ws.recv(), 5)


async def test_logout_closes_that_sessions_websocket_only(gw):
    http1, csrf1, ws1 = await _session(gw.port)
    http2, _, ws2 = await _session(gw.port)
    try:
        r = await http1.post("/api/logout", headers={"X-CSRF-Token": csrf1})
        assert r.status_code == 200
        assert await _closed_within(ws1) == 4401
        await _open(ws2)
    finally:
        for ws in (ws1, ws2):
            await ws.close()
        await http1.aclose()
        await http2.aclose()


async def test_password_change_and_disable_close_websockets(gw, ctx):
    http1, _, ws1 = await _session(gw.port)
    http2, _, ws2 = await _session(gw.port)
    try:
        await ctx.accounts.set_password("alice@example.test", "another long passphrase")
        assert await _closed_within(ws1) == 4401
        assert await _closed_within(ws2) == 4401
        await async_wait_until(lambda: len(gw.app.state.live) == 0, what="the streams unregistered")
    finally:
        for ws in (ws1, ws2):
            await ws.close()
        await http1.aclose()
        await http2.aclose()


async def test_meeting_websocket_is_listed_and_closed_on_sign_out(gw, ctx):
    """A member's meeting socket is one of the account's live connections: listed, and closed with
    4401 when its web session ends."""
    http, csrf, calls_ws = await _session(gw.port)
    await calls_ws.close()
    await async_wait_until(lambda: len(gw.app.state.live) == 0, what="the calls socket unregistered")
    r = await http.post("/api/meetings", json={"title": "standup"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.text
    ws = await connect(
        f"ws://127.0.0.1:{gw.port}/ws/meetings/{r.json()['token']}",
        additional_headers={"Cookie": f"suite_session={http.cookies['suite_session']}"},
        origin=f"http://127.0.0.1:{gw.port}",
    )
    try:
        account_id = (await ctx.accounts.require("alice@example.test")).id

        async def only_the_meeting() -> bool:  # the rows are written (and the calls one deleted) after the fact
            return [c.service for c in await ctx.accounts.security.connections(account_id)] == ["meeting"]

        await async_wait_until(only_the_meeting, what="the meeting socket listed")
        r = await http.post("/api/logout", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        assert await _closed_within(ws) == 4401
        await async_wait_until(lambda: len(gw.app.state.live) == 0, what="the meeting socket unregistered")
    finally:
        await ws.close()
        await http.aclose()
