"""A tus upload from the Files view survives a reload: the upload is slowed (Chromium's network
emulation), the page is reloaded mid-way, the page lists the unfinished upload, and the same file
picked again continues from the server's offset (HEAD, then PATCH from there: no new upload is created)
and ends with the same bytes. Also pause and resume within the page."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("suite_e2e_filesfix", Path(__file__).with_name("filesfix.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)
webfix = ff.webfix
web_server = webfix.web_server

SIZE = 24 * 1024 * 1024
RATE = 2 * 1024 * 1024  # bytes per second while throttled


async def _percent(bar) -> int:
    v = await bar.get_attribute("aria-valuenow")
    return int(v) if v else 0


async def _wait_percent(bar, at_least: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while (pct := await _percent(bar)) < at_least:
        assert time.monotonic() < deadline, f"progress stuck at {pct}%"
        await asyncio.sleep(0.1)
    return pct


async def test_reload_mid_upload_then_resume(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(SIZE))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, _ = await ff.open_files(browser, web_server)
            cdp = await page.context.new_cdp_session(page)
            await cdp.send("Network.enable")
            await cdp.send(
                "Network.emulateNetworkConditions",
                {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": RATE},
            )
            requests: list[tuple[str, str]] = []
            page.on("request", lambda r: requests.append((r.method, r.url)))
            await page.get_by_label("Upload files").set_input_files(str(big))
            bar = page.get_by_role("progressbar", name="Uploading big.bin")
            # pause and resume within the page
            await _wait_percent(bar, 5)
            await page.get_by_role("button", name="Pause big.bin").click()
            await page.get_by_role("button", name="Resume big.bin").click()
            before = await _wait_percent(bar, 20)
            assert before < 100
            await page.screenshot(path=webfix.shot_path("files-uploading-desktop"))
            assert sum(1 for m, u in requests if m == "POST" and u.endswith("/api/tus/")) == 1

            await page.reload()
            await page.get_by_role("heading", name="Files", level=1).wait_for()
            left = page.get_by_role("status").filter(has_text="Unfinished uploads")
            await left.wait_for()
            assert await left.get_by_text("big.bin").is_visible()
            await page.screenshot(path=webfix.shot_path("files-unfinished-desktop"))

            await cdp.send(
                "Network.emulateNetworkConditions",
                {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
            )
            requests.clear()
            heads = []
            page.on(
                "response",
                lambda r: (
                    heads.append(int(r.headers.get("upload-offset", "0"))) if r.request.method == "HEAD" else None
                ),
            )
            await page.get_by_label("Upload files").set_input_files(str(big))
            await _wait_percent(bar, 100)
            assert [m for m, u in requests if "/api/tus" in u and m == "POST"] == [], requests
            assert heads and heads[0] > 0, heads  # continued from what the server had
            await page.get_by_role("link", name="big.bin").wait_for()
            got = await page.evaluate(
                """async () => {
                    const b = await (await fetch('/api/files/content/big.bin')).arrayBuffer();
                    const h = await crypto.subtle.digest('SHA-256', b);
                    return [...new Uint8Array(h)].map((x) => x.toString(16).padStart(2, '0')).join('');
                }"""
            )
            assert got == digest
        finally:
            await browser.close()
