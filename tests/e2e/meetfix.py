"""Helpers of the meeting browser tests (E2EE, Janus): Chromium launched once per test with fake
devices, a meeting made from the New meeting form. The page helpers (_context, _join,
_receives_from) are the ones of test_meeting_browser.py."""

from __future__ import annotations

import importlib.util
import os
from contextlib import asynccontextmanager
from pathlib import Path

from suite.testing import missing, require_tool

_spec = importlib.util.spec_from_file_location("suite_e2e_meeting", Path(__file__).with_name("test_meeting_browser.py"))
mb = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mb)

context, join, receives_from = mb._context, mb._join, mb._receives_from
PREVIEW_READY = "() => document.querySelector('video') && document.querySelector('video').readyState >= 2"


def screenshots() -> str | None:
    return os.environ.get("SUITE_E2E_SCREENSHOTS")


@asynccontextmanager
async def chromium(server):
    """(browser, base URL) for a test inside the namespace; skips without chromium/playwright."""
    if not mb._shell_has_meetings():
        missing("the web app shell with the meeting view is not in this tree (web/src/app.js)")
    require_tool("chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        missing("playwright not installed (pip install playwright; the browser is Debian's chromium)")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path="/usr/bin/chromium", args=mb.CHROMIUM_ARGS)
        try:
            yield browser, f"http://127.0.0.1:{server.port}"
        finally:
            await browser.close()


async def create_meeting(page, title: str, *, lobby: bool = True, e2ee: bool = False) -> str:
    """Fill New meeting (/m), create, wait for the camera preview; returns the link."""
    await page.goto("/m")
    await page.get_by_label("Title").fill(title)
    if not lobby:
        await page.get_by_label("Guests wait in a lobby until I admit them").uncheck()
    if e2ee:
        await page.get_by_label("End-to-end encrypted").check()
    await page.get_by_role("button", name="Create meeting").click()
    await page.wait_for_url("**/m/*")
    await page.wait_for_function(PREVIEW_READY)
    return page.url


async def guest_through_lobby(page, link: str, name: str, *, host) -> str:
    """A guest opens the link, gives a name, waits in the lobby; the host admits. Returns its id."""
    await page.goto(link)
    await page.get_by_label("Your name").fill(name)
    await page.wait_for_function(PREVIEW_READY)
    await page.get_by_role("button", name="Join meeting").click()
    await page.locator("#meeting-waiting").wait_for()
    await host.get_by_role("button", name="Participants (1 waiting)").click()
    await host.get_by_role("button", name=f"Admit {name}").click()
    await page.get_by_role("navigation", name="Meeting controls").wait_for()
    return await page.evaluate("window.suiteMeeting.state().me")
