"""Two Chromium pages (alice, bob) call each other through the call page, in a private network
namespace: ring, accept, ICE connected, media both ways (getStats), hang up, history on both sides."""

from __future__ import annotations

import os

from suite.testing import async_wait_until, missing, require_tool

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PW = "correct horse battery"


async def _open(browser, base: str, address: str):
    context = await browser.new_context(base_url=base)
    r = await context.request.post("/api/login", data={"address": address, "password": PW})
    assert r.status == 200
    page = await context.new_page()
    page.on("console", lambda m: print(address, "console:", m.text))
    await page.goto("/calls")
    await page.locator("#calls-status").wait_for()  # the app shell renders the Calls view after /api/me
    await page.wait_for_function("() => document.getElementById('calls-status').textContent === 'Ready'")
    return page


async def _wait_media(page, timeout: float = 30) -> dict:
    async def flowing() -> dict | None:
        s = await page.evaluate("window.suiteCalls.stats()")
        ok = s and s["connectionState"] == "connected" and s["inbound"].get("audio", 0) > 0
        return s if ok and s["inbound"].get("video", 0) > 0 else None

    return await async_wait_until(flowing, timeout, interval=0.25, what="media both ways")


async def test_call_between_two_browsers(netns, server):
    if not netns:
        return
    require_tool("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright not installed (pip install playwright; the browser is Debian's chromium)")
    base = f"http://127.0.0.1:{server.port}"
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            alice = await _open(browser, base, "alice@example.test")
            bob = await _open(browser, base, "bob@example.test")
            row = alice.locator('#contacts li[data-address="bob@example.test"]')
            await row.locator(".presence.online").wait_for()
            await row.locator("button.call-video").click()
            await bob.locator("#incoming").wait_for(state="visible")
            assert await bob.locator("#incoming-caller").text_content() == "alice@example.test"
            await alice.wait_for_function("() => document.getElementById('incall-state').textContent === 'Ringing…'")
            await bob.locator("#btn-accept").click()
            await _wait_media(alice), await _wait_media(bob)

            # both receive; each side's own send counters lag behind on a loaded machine: poll them
            async def sending() -> tuple | None:
                sa = await alice.evaluate("window.suiteCalls.stats()")
                sb = await bob.evaluate("window.suiteCalls.stats()")
                ok = sa["outbound"].get("video", 0) > 0 and sb["outbound"].get("audio", 0) > 0
                return (sa, sb) if ok else None

            await async_wait_until(sending, 30, interval=0.25, what="alice sends video and bob audio")
            await alice.wait_for_function("() => document.getElementById('incall-timer').textContent !== '00:00'")
            shots = os.environ.get("SUITE_E2E_SCREENSHOTS")
            if shots:
                await alice.screenshot(path=f"{shots}/calls-in-call.png", full_page=True)
            await alice.locator("#btn-hangup").click()
            await bob.locator("#incall").wait_for(state="hidden")
            assert (await bob.locator("#calls-status").text_content()) == "Call ended"
            for page, direction in ((alice, "→"), (bob, "←")):
                li = page.locator("#history li").first
                await li.wait_for()
                assert await li.get_attribute("data-outcome") == "answered"
                assert await li.locator(".dir").text_content() == direction
            # a call bob declines shows up for both, not as missed
            await bob.locator('#contacts li[data-address="alice@example.test"] button.call-audio').click()
            await alice.locator("#incoming").wait_for(state="visible")
            await alice.locator("#btn-decline").click()
            await bob.wait_for_function("() => document.getElementById('calls-status').textContent === 'Declined'")
            await alice.locator('#history li[data-outcome="declined"]').wait_for()

            # alice calls bob again and adds carol: the call becomes a meeting; alice and bob move to
            # the room, carol's invitation rings and opens it (room membership: tests/voip/test_meetings_ws.py)
            carol = await _open(browser, base, "carol@example.test")
            await row.locator("button.call-audio").click()
            await bob.locator("#btn-accept").click()
            await alice.wait_for_function("() => document.getElementById('incall-state').textContent !== 'Ringing…'")
            await alice.get_by_role("button", name="Add person").click()
            await alice.get_by_label("Person to add").fill("carol@example.test")
            if shots:
                await alice.set_viewport_size({"width": 375, "height": 740})
                await alice.screenshot(path=f"{shots}/calls-add-person-375.png", full_page=True)
            await alice.get_by_role("button", name="Add", exact=True).click()
            await carol.locator("#incoming").wait_for(state="visible")
            assert await carol.locator("#incoming-media").text_content() == "meeting"
            await carol.locator("#btn-accept").click()
            for page in (alice, bob, carol):
                await page.wait_for_url("**/m/*")
                await page.get_by_role("button", name="Join meeting").wait_for()
            assert alice.url == bob.url == carol.url
        finally:
            await browser.close()
