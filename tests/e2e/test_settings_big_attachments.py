"""Settings → Mail in Chromium: the user turns on "big attachments from mail programs as links"
(issue 14 §3 for SMTP submission); the server keeps it (/api/settings/mail) across a reload."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import httpx

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
web_server = webfix.web_server
BOB, PW = webfix.BOB, webfix.PW
LABEL = "Send attachments over 10 MB from mail programs as links"


def _server_says(base: str) -> bool:
    with httpx.Client(base_url=base, timeout=20) as c:
        assert c.post("/api/login", json={"address": BOB, "password": PW}).status_code == 200
        return c.get("/api/settings/mail").json()["big_attachment_links"]


async def test_turn_on_big_attachment_links(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            for viewport, name in ((webfix.DESKTOP, "desktop"), (webfix.PHONE, "phone")):
                context = await browser.new_context(base_url=web_server.base, viewport=viewport)
                page = await context.new_page()
                await page.goto("/settings")
                await webfix.sign_in(page, BOB)
                box = page.get_by_label(LABEL)
                await box.wait_for()
                want = name == "desktop"  # on from the desktop, off again from the phone
                assert await box.is_checked() is not want
                await box.set_checked(want)
                await page.get_by_text("Saved.").wait_for()
                assert _server_says(web_server.base) is want
                await page.reload()
                await page.get_by_label(LABEL).wait_for()
                assert await page.get_by_label(LABEL).is_checked() is want
                await page.screenshot(path=webfix.shot_path(f"settings-big-attachments-{name}"), full_page=True)
                await context.close()
        finally:
            await browser.close()
