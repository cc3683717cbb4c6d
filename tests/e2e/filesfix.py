"""Helpers of the Files browser tests (tests/e2e/test_files_*.py): the web fixtures, a signed-in page,
a real OS-level drop of files or folders (Chromium's Input.dispatchDragEvent: the page gets a genuine
DataTransfer whose items give directory entries), and calls to the files API from the page."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)


async def new_page(browser, server, viewport=None, **kw):
    context = await browser.new_context(base_url=server.base, viewport=viewport or webfix.DESKTOP, **kw)
    page = await context.new_page()
    return page, webfix.PageWatch(page, server.base)


async def open_files(browser, server, viewport=None, **kw):
    page, watch = await new_page(browser, server, viewport, **kw)
    await page.goto("/files")
    await webfix.sign_in(page)
    await page.get_by_role("heading", name="Files", level=1).wait_for()
    return page, watch


async def os_drop(page, target_selector: str, paths: list[str]) -> None:
    """Drop files/folders from "the desktop" onto an element, as the OS would."""
    box = await page.locator(target_selector).first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + min(box["height"] / 2, 200)
    cdp = await page.context.new_cdp_session(page)
    data = {"items": [], "files": paths, "dragOperationsMask": 1}
    for kind in ("dragEnter", "dragOver", "drop"):
        await cdp.send("Input.dispatchDragEvent", {"type": kind, "x": x, "y": y, "data": data})
    await cdp.detach()


async def api(page, path: str, method: str = "GET", body: dict | None = None):
    """A files API call with the page's session (cookie + CSRF token from /api/me)."""
    return await page.evaluate(
        """async ([path, method, body]) => {
            const me = await (await fetch('/api/me')).json();
            const r = await fetch(path, {method, headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                                          body: body === null ? undefined : JSON.stringify(body)});
            return {status: r.status, body: await r.text()};
        }""",
        [path, method, body],
    )


async def listing(page, path: str) -> list[str]:
    from urllib.parse import quote

    r = await api(page, f"/api/files/list/{quote(path.strip('/'))}" if path.strip("/") else "/api/files/list")
    if r["status"] == 404:
        return []
    assert r["status"] == 200, r
    return sorted(c["name"] for c in json.loads(r["body"])["children"])


async def text_of(page, path: str) -> str:
    return await page.evaluate(
        "async (p) => await (await fetch('/api/files/content/' + p.split('/').map(encodeURIComponent).join('/'))).text()",
        path.strip("/"),
    )
