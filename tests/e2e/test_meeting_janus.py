"""Meetings on the Janus engine (``sfu_engine = "janus"``): Debian's janus started by the test inside
the private network namespace (VideoRoom + WebSocket API on loopback, media on a veth of the
namespace, config in a temp dir); three Chromium browsers join one room through our signalling
(the host, a member, a guest through the lobby) into an end-to-end encrypted room, and each
decrypts and decodes the other two's audio and video (getStats); each page gets the simulcast
layer its tile needs (a tile made small switches to the half-size layer); the host mutes
the guest through Janus; a participant leaves and the others' receiving connections follow; the
media address goes away and comes back and the pages restart ICE on the same connections."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
from pathlib import Path

import pytest

from suite.testing import async_wait_until, require_tool

_spec = importlib.util.spec_from_file_location("suite_e2e_meetfix", Path(__file__).with_name("meetfix.py"))
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)


JANUS_ADDRESS = "10.99.0.1/32"
"""add_dummy_interface's address: Janus's media (and the pages' host candidates) in the namespace."""


@pytest.fixture
def janus_url(netns, tmp_path):
    if not netns:
        yield None
        return
    require_tool("janus")
    from suite.voip.janus_config import LocalJanus, add_dummy_interface

    folder = tmp_path / "janus"
    folder.mkdir()
    # Janus gathers no loopback candidates: a dummy interface of the namespace carries the media.
    with LocalJanus(folder, interface=add_dummy_interface()) as url:
        yield url


@pytest.fixture
def server_settings(janus_url):
    return {"sfu_engine": "janus", "janus_urls": [janus_url]} if janus_url else {}


async def test_janus_room_three_browsers(netns, server):
    if not netns:
        return
    async with mf.chromium(server) as (browser, base):
        alice = await mf.context(browser, base, "alice@example.test")
        link = await mf.create_meeting(alice, "On Janus", e2ee=True)
        a_id = await mf.join(alice)

        bob = await mf.context(browser, base, "bob@example.test")
        await bob.goto(link)
        await bob.wait_for_function(mf.PREVIEW_READY)
        b_id = await mf.join(bob)

        guest = await mf.context(browser, base, None, viewport={"width": 375, "height": 740})
        g_id = await mf.guest_through_lobby(guest, link, "Gus Guest", host=alice)

        await mf.receives_from(alice, [b_id, g_id])
        await mf.receives_from(bob, [a_id, g_id])
        s = await mf.receives_from(guest, [a_id, b_id])
        assert s["e2ee"]["decrypted"] > 0 and s["e2ee"]["encrypted"] > 0, s
        await alice.wait_for_function("() => document.querySelectorAll('.tile video').length === 3")
        if mf.screenshots():
            await alice.screenshot(path=f"{mf.screenshots()}/meeting-janus.png")

        # simulcast: a large tile gets bob's full layer (360 lines), a tile made small the half one
        async def height(page, peer, ok):
            s = await page.evaluate("window.suiteMeeting.stats()")
            h = s["peers"].get(peer, {}).get("height", 0)
            return h if ok(h) else None

        await async_wait_until(lambda: height(alice, b_id, lambda h: h >= 360), 30, what="bob's full layer")
        await alice.evaluate(f"document.querySelector('.tile[data-peer=\"{b_id}\"]').style.height = '90px'")
        await async_wait_until(lambda: height(alice, b_id, lambda h: 0 < h <= 180), 30, what="bob's half layer")
        assert await height(alice, g_id, lambda h: h >= 360), "the guest's tile kept its full layer"

        # the host mutes the guest: Janus stops relaying the guest's audio to the others
        await alice.get_by_role("button", name="Mute Gus Guest").click()
        await guest.get_by_role("status").filter(has_text="muted your microphone").wait_for()

        async def guest_audio_stopped():
            first = (await alice.evaluate("window.suiteMeeting.stats()"))["peers"][g_id]["audioPackets"]
            await asyncio.sleep(1)
            return (await alice.evaluate("window.suiteMeeting.stats()"))["peers"][g_id]["audioPackets"] == first

        await async_wait_until(guest_audio_stopped, 20, interval=0.2, what="Janus to stop relaying the muted guest")

        # bob leaves: alice's and the guest's subscriptions drop him and keep the rest
        await bob.get_by_role("button", name="Leave").click()
        await alice.wait_for_function("() => document.querySelectorAll('.tile video').length === 2")
        before = (await alice.evaluate("window.suiteMeeting.stats()"))["peers"][g_id]["video"]
        s = await mf.receives_from(alice, [g_id])
        assert s["peers"][g_id]["video"] >= before
        await mf.receives_from(guest, [a_id])

        # the network changes under alice and the guest (the media address goes away, then comes
        # back): the pages restart ICE on the same connections, Janus answers; nobody leaves
        ufrag = (await alice.evaluate("window.suiteMeeting.stats()"))["receiveUfrag"]
        subprocess.run(["ip", "addr", "del", JANUS_ADDRESS, "dev", "janus0"], check=True)
        try:
            await async_wait_until(
                lambda: restarted(alice), 30, interval=0.3, what="alice's page to restart ICE (publish and receive)"
            )
        finally:
            subprocess.run(["ip", "addr", "add", JANUS_ADDRESS, "dev", "janus0"], check=True)

        async def connected_again():
            s = await alice.evaluate("window.suiteMeeting.stats()")
            return s["connectionState"] == "connected" and s["publishState"] == "connected"

        await async_wait_until(connected_again, 40, interval=0.3, what="alice's connections back")
        s = await alice.evaluate("window.suiteMeeting.stats()")
        assert s["receiveUfrag"] != ufrag and s["iceRestarts"] >= 1, s
        before = s["peers"][g_id]["video"]  # the same connection: its counters go on

        async def more_video(page, peer, than):
            s = await page.evaluate("window.suiteMeeting.stats()")
            return s if s["peers"].get(peer, {}).get("video", 0) > than + 10 else None

        await async_wait_until(lambda: more_video(alice, g_id, before), 30, what="the guest's video after the restart")
        g = (await guest.evaluate("window.suiteMeeting.stats()"))["peers"][a_id]["video"]
        await async_wait_until(lambda: more_video(guest, a_id, g), 30, what="alice's video at the guest")


async def restarted(page) -> bool:
    s = await page.evaluate("window.suiteMeeting.stats()")
    return s["iceRestarts"] >= 1 and s["receiveUfrag"] is not None
