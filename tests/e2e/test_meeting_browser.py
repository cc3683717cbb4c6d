"""Meetings in Chromium (fake camera and microphone) in a private network namespace: the host
creates a meeting from the Calls view, a member joins signed in, a guest joins from the link in a
logged-out context through the lobby; each browser decodes the other two's audio and video
(getStats); members show under their display name (else the address), the participants panel
opens beside the stage, a shared screen takes the stage and gives it back; the host mutes the
guest and removes the member. Screenshots desktop + 375 px (ten tiles: test_meeting_layout.py)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from suite.testing import async_wait_until, missing, require_tool

CHROMIUM_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
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
ROOT = Path(__file__).resolve().parents[2]


def _shell_has_meetings() -> bool:
    app = ROOT / "web" / "src" / "app.js"
    return app.is_file() and "views/meeting.js" in app.read_text()


async def _context(browser, base: str, address: str | None, viewport=None):
    context = await browser.new_context(base_url=base, viewport=viewport or {"width": 1280, "height": 800})
    if address:
        r = await context.request.post("/api/login", data={"address": address, "password": PW})
        assert r.status == 200
    page = await context.new_page()
    page.on("console", lambda m: print(address or "guest", "console:", m.text))
    page.on("pageerror", lambda e: print(address or "guest", "pageerror:", e))
    return page


async def _receives_from(page, peers: list[str], timeout: float = 45) -> dict:
    async def ok():
        s = await page.evaluate("window.suiteMeeting.stats()")
        if not s or s["connectionState"] != "connected":
            return None
        got = s["peers"]
        if all(got.get(p, {}).get("video", 0) > 5 and got.get(p, {}).get("audio", 0) > 0 for p in peers):
            return s
        return None

    return await async_wait_until(ok, timeout, interval=0.5, what=f"media from {peers}")


async def _join(page) -> str:
    await page.get_by_role("button", name="Join meeting").click()
    await page.get_by_role("navigation", name="Meeting controls").wait_for()
    return await page.evaluate("window.suiteMeeting.state().me")


async def test_meeting_three_browsers_lobby_mute_remove(netns, server):
    if not netns:
        return
    if not _shell_has_meetings():
        missing("the web app shell with the meeting view is not in this tree (web/src/app.js)")
    require_tool("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright not installed (pip install playwright; the browser is Debian's chromium)")
    base = f"http://127.0.0.1:{server.port}"
    shots = os.environ.get("SUITE_E2E_SCREENSHOTS")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            alice = await _context(browser, base, "alice@example.test")
            alice_errors: list[str] = []  # the Calls view once kept polling into a DOM that was gone
            alice.on("pageerror", lambda e: alice_errors.append(str(e)))
            alice.on("console", lambda m: alice_errors.append(m.text) if m.type == "error" else None)
            await alice.goto("/calls")
            await alice.wait_for_function("() => window.suiteCalls && !window.suiteCalls.state.stopped")
            await alice.get_by_role("link", name="New meeting").click()
            await alice.get_by_label("Title").fill("Weekly <sync>")
            await alice.get_by_role("button", name="Create meeting").click()
            await alice.wait_for_url("**/m/*")
            link = alice.url
            # leaving the shell stopped the calls engine: no contact polling left behind
            assert await alice.evaluate(
                "window.suiteCalls.state.stopped && window.suiteCalls.state.intervals.length === 0"
            )
            # pre-join: preview, devices, level meter
            await alice.get_by_label("Your camera preview").wait_for()
            await alice.get_by_label("Microphone level").wait_for()
            await alice.wait_for_function("() => document.querySelector('video').readyState >= 2")
            if shots:
                await alice.screenshot(path=f"{shots}/meeting-prejoin.png")
            a_id = await _join(alice)

            bob = await _context(browser, base, "bob@example.test")
            await bob.goto(link)
            b_id = await _join(bob)

            guest = await _context(browser, base, None, viewport={"width": 375, "height": 740})
            await guest.goto(link)
            await guest.get_by_label("Your name").fill("Gus Guest")
            await guest.get_by_role("button", name="Join meeting").click()
            await guest.locator("#meeting-waiting").wait_for()
            await alice.get_by_role("button", name="Participants (1 waiting)").click()
            await alice.get_by_role("button", name="Admit Gus Guest").click()
            await guest.get_by_role("navigation", name="Meeting controls").wait_for()
            g_id = await guest.evaluate("window.suiteMeeting.state().me")

            await _receives_from(alice, [b_id, g_id])
            await _receives_from(bob, [a_id, g_id])
            await _receives_from(guest, [a_id, b_id])
            await alice.wait_for_function("() => document.querySelectorAll('.tile video').length === 3")
            # the host copies the meeting's link to invite someone: what lands on the clipboard is
            # the link the guest used
            # (Chromium's grantPermissions refuses every permission it does not list: camera and
            # microphone are listed again, or alice's tracks end)
            perms = ["clipboard-read", "clipboard-write", "camera", "microphone"]
            await alice.context.grant_permissions(perms, origin=base)
            await alice.get_by_role("button", name="Copy meeting link").click()
            await alice.get_by_role("status").filter(has_text="Link copied").wait_for()
            assert await alice.evaluate("navigator.clipboard.readText()") == link
            own = f"document.querySelector('.tile[data-peer=\"{a_id}\"] video').srcObject.getTracks()"
            assert await alice.evaluate(f"{own}.length > 0 && {own}.every((t) => t.readyState === 'live')")
            # members under their account's display name (alice has one; bob has none: his
            # address), the guest under the name it typed, marked guest in the participants list
            for page in (alice, bob, guest):
                await page.locator(f'.tile[data-peer="{a_id}"] .name', has_text="Alice Liddell").wait_for()
                await page.locator(f'.tile[data-peer="{b_id}"] .name', has_text="bob@example.test").wait_for()
                await page.locator(f'.tile[data-peer="{g_id}"] .name', has_text="Gus Guest").wait_for()
            assert await alice.locator(f'.tile[data-peer="{a_id}"] .name').text_content() == "Alice Liddell (you)"
            people = alice.get_by_role("region", name="Participants")
            await people.locator(f'li[data-peer="{g_id}"]', has_text="guest").wait_for()
            await people.locator(f'li[data-peer="{a_id}"]', has_text="Alice Liddell").wait_for()
            # desktop: the panel opens beside the stage (to its right), the tiles stay in the window
            side = await alice.locator(".m-side").bounding_box()
            stage = await alice.locator(".m-stage").bounding_box()
            assert side["x"] >= stage["x"] + stage["width"] - 1 and side["y"] < stage["y"] + stage["height"] / 2
            controls = await alice.locator("nav.controls").bounding_box()
            for tile in await alice.locator(".tile").all():
                box = await tile.bounding_box()
                assert box["x"] + box["width"] <= side["x"] and box["y"] + box["height"] <= controls["y"] + 0.5, box
            if shots:
                await alice.screenshot(path=f"{shots}/meeting-desktop.png")
                await guest.screenshot(path=f"{shots}/meeting-375.png", full_page=True)

            # the phone's controls: one row of the main ones and "More actions" with the rest
            # (desktop: all on the row, no "More actions")
            bar = guest.get_by_role("navigation", name="Meeting controls")
            names = await bar.get_by_role("button").evaluate_all(
                "bs => bs.map((b) => b.getAttribute('aria-label') || b.textContent.trim())"
            )
            assert names == ["Mute", "Camera off", "Chat", "Participants", "More actions", "Leave"], names
            tops = await bar.get_by_role("button").evaluate_all(
                "bs => bs.map((b) => Math.round(b.getBoundingClientRect().top))"
            )
            assert len(set(tops)) == 1, tops
            cut = await bar.locator(".ctl-label").evaluate_all(
                "ls => ls.filter((l) => l.scrollWidth > l.clientWidth + 1).map((l) => l.textContent)"
            )
            assert cut == [], cut  # the short labels are shown whole at 375 px
            assert await guest.get_by_role("button", name="Raise hand").count() == 0
            assert await alice.get_by_role("button", name="More actions").count() == 0
            await alice.get_by_role("button", name="Speaker view").wait_for()
            # keyboard: Enter opens (focus on its first control), Escape closes, focus back on the button
            more = guest.get_by_role("button", name="More actions")
            await more.focus()
            await guest.keyboard.press("Enter")
            menu = guest.get_by_role("group", name="More actions")
            await menu.wait_for()
            assert await more.get_attribute("aria-expanded") == "true"
            await guest.wait_for_function("document.activeElement.textContent === 'Share screen'", timeout=5000)
            await guest.keyboard.press("ArrowDown")
            assert await guest.evaluate("document.activeElement.textContent") == "Raise hand"
            if shots:
                await guest.screenshot(path=f"{shots}/meeting-more-375.png")
            await guest.keyboard.press("Escape")
            await menu.wait_for(state="detached")
            assert await guest.evaluate("document.activeElement.getAttribute('aria-label')") == "More actions"

            # chat and raised hand reach the others
            await more.click()
            await menu.get_by_role("button", name="Raise hand").click()
            await menu.wait_for(state="detached")
            await bob.get_by_role("button", name="Chat").click()
            await bob.get_by_label("Chat message").fill("hello <b>there</b>")
            await bob.get_by_role("button", name="Send").click()
            await guest.get_by_role("button", name="Chat").click()
            await guest.locator(".chat .messages li", has_text="hello <b>there</b>").wait_for()
            await alice.locator(f'.tile[data-peer="{g_id}"] .hand').wait_for()

            # the host records: every page shows the notice while it runs; the host is told where
            # the file went in Files (its content: tests/voip/test_meetings_ws.py)
            await alice.get_by_role("button", name="Record", exact=True).click()
            for page in (alice, bob, guest):
                await page.locator("#meeting-recording").wait_for()
            if shots:
                await guest.screenshot(path=f"{shots}/meeting-recording-375.png", full_page=True)
            await alice.get_by_role("button", name="Stop recording").click()
            await alice.locator("#meeting-recording-saved", has_text="/Recordings/").wait_for(timeout=60_000)
            await guest.locator("#meeting-recording").wait_for(state="detached")

            # the server finds the active speaker from the audio levels in the packets (Chromium's
            # fake microphone beeps): the pages mark it; the speaker view puts it first and large
            await alice.locator(".tile.m-speaking").first.wait_for(timeout=30_000)
            await guest.get_by_role("button", name="More actions").click()
            await guest.get_by_role("button", name="Speaker view").click()
            await guest.locator(".grid.m-speaker-view .tile.m-speaking").wait_for()
            if shots:
                await guest.screenshot(path=f"{shots}/meeting-speaker-375.png", full_page=True)

            # the connection-quality indicator is computed from getStats() (loss, round trip)
            await alice.locator(
                "#meeting-connection", has_text=re.compile(r"Connection: (good|fair|poor) \(\d+ ms")
            ).wait_for()

            # bob shares his screen (Chromium's fake display capture, replaceTrack on his video
            # sender): the others keep decoding his video, now at the screen's size
            before = (await alice.evaluate("window.suiteMeeting.stats()"))["peers"][b_id]
            await bob.get_by_role("button", name="Share screen").click()
            await bob.get_by_role("button", name="Stop sharing").wait_for()

            async def screen_arrives():
                now = (await alice.evaluate("window.suiteMeeting.stats()"))["peers"].get(b_id, {})
                return now.get("width") not in (None, 0, before["width"]) and now["video"] > before["video"] + 10

            await async_wait_until(screen_arrives, 30, interval=0.5, what="bob's screen at alice")
            # the shared screen takes the stage: speaker view, bob's tile the largest, shown whole
            await alice.locator(f'.grid.m-speaker-view .tile.m-main.m-screen[data-peer="{b_id}"]').wait_for()
            await guest.locator(f'.tile.m-main.m-screen[data-peer="{b_id}"]').wait_for()
            areas = {}
            for tile in await alice.locator(".tile").all():
                box = await tile.bounding_box()
                areas[await tile.get_attribute("data-peer")] = box["width"] * box["height"]
            assert max(areas, key=areas.get) == b_id and all(areas[b_id] > 2 * a for p, a in areas.items() if p != b_id)
            assert (
                await alice.locator(f'.tile[data-peer="{b_id}"] video').evaluate("v => getComputedStyle(v).objectFit")
                == "contain"
            )
            if shots:
                await alice.screenshot(path=f"{shots}/meeting-screen-share.png")
                await guest.screenshot(path=f"{shots}/meeting-screen-share-375.png", full_page=True)
            await bob.get_by_role("button", name="Stop sharing").click()
            await bob.get_by_role("button", name="Share screen").wait_for()
            # when it ends, each page goes back to its layout: alice's grid, the guest's speaker view
            await alice.locator(".grid:not(.m-speaker-view)").wait_for()
            await alice.locator(".tile.m-screen").wait_for(state="detached")
            await guest.locator(".grid.m-speaker-view").wait_for()

            # the host mutes the guest: the guest's page says so and shows Unmute
            await alice.get_by_role("button", name="Mute Gus Guest").click()
            await guest.get_by_role("status").filter(has_text="muted your microphone").wait_for()
            await guest.get_by_role("button", name="Unmute").wait_for()
            await alice.locator(f'.tile[data-peer="{g_id}"] .badge', has_text="muted").wait_for()

            # the host removes bob
            await alice.get_by_role("button", name="Remove bob@example.test").click()
            await bob.locator("#meeting-closed", has_text="removed").wait_for()
            await alice.wait_for_function("() => document.querySelectorAll('.tile video').length === 2")
            if shots:
                await alice.screenshot(path=f"{shots}/meeting-host-panel.png")

            # the host ends the meeting for everyone
            await alice.get_by_role("button", name="End meeting").click()
            await guest.locator("#meeting-closed", has_text="ended").wait_for()
            # the meeting ran far longer than the Calls view's 5 s contact poll
            assert not [e for e in alice_errors if "replaceChildren" in e or "of null" in e], alice_errors
        finally:
            await browser.close()
