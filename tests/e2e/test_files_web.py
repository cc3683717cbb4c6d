"""The Files view in Chromium against `suite serve`: a folder dropped from the desktop (a real
DataTransfer with directory entries) uploads over tus with progress bars; rename, move by dragging,
copy, delete and restore from the trash, restore an earlier version, previews; desktop and phone."""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("suite_e2e_filesfix", Path(__file__).with_name("filesfix.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)
webfix = ff.webfix
web_server = webfix.web_server


async def _until(fn, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await __import__("asyncio").sleep(0.2)


SELECTION_ACTIONS = ("Share", "Rename", "Move", "Copy", "Versions", "Delete")


async def _rows(container) -> int:
    """How many rows the visible controls of `container` are laid out on (distinct tops)."""
    tops = await container.evaluate(
        "el => [...el.querySelectorAll('button, a.button, label.button')]"
        ".filter((b) => b.offsetParent).map((b) => Math.round(b.getBoundingClientRect().top))"
    )
    assert tops, "no controls"
    return len(set(tops))


async def test_drop_folder_upload_rename_move_delete_restore_versions(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    album = tmp_path / "Album <b>"
    (album / "sub").mkdir(parents=True)
    (album / "a.txt").write_text("first a\n")
    (album / "sub" / "b.txt").write_text("bee\n")
    (album / "<img src=x onerror=alert(1)>.txt").write_text("markup in a name\n")
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, watch = await ff.open_files(browser, web_server)
            await page.get_by_text("This folder is empty").wait_for()
            # accessible names the issue lists
            await page.get_by_role("navigation", name="Main").get_by_role("link", name="Files").wait_for()
            assert await page.get_by_label("Upload files").get_attribute("type") == "file"
            await page.screenshot(path=webfix.shot_path("files-empty-desktop"))

            await ff.os_drop(page, ".files", [str(album)])
            # one progress bar per upload and a total, all reaching 100
            total = page.get_by_role("progressbar", name="Total upload progress")
            await total.wait_for()
            bar = page.get_by_role("progressbar", name="Uploading b.txt")
            await bar.wait_for()
            await _until(lambda: _attr_is(total, "aria-valuenow", "100"), "total progress 100")
            assert await bar.get_attribute("aria-valuenow") == "100"
            assert await ff.listing(page, "/") == ["Album <b>"]
            assert await ff.listing(page, "/Album <b>") == ["<img src=x onerror=alert(1)>.txt", "a.txt", "sub"]
            assert await ff.listing(page, "/Album <b>/sub") == ["b.txt"]
            await page.screenshot(path=webfix.shot_path("files-uploaded-desktop"))

            # into the folder: names with markup are text
            await page.get_by_role("link", name="Album <b>", exact=True).click()
            await page.wait_for_url(re.compile(r"/files/Album%20%3Cb%3E$"))
            await page.get_by_role("link", name="<img src=x onerror=alert(1)>.txt").wait_for()
            assert await page.locator("img[src=x]").count() == 0

            # the toolbar holds only what needs no selection, on one row; the selection actions
            # appear in a bar saying how many are selected, which can be cleared (button, Escape)
            toolbar = page.locator(".files-toolbar")
            assert await _rows(toolbar) == 1
            labels = [t.strip() for t in await toolbar.locator("button, .button").all_inner_texts()]
            assert labels == ["Upload files", "Upload a folder", "New folder", "Encrypted link"], labels
            for name in SELECTION_ACTIONS:
                assert await page.get_by_role("button", name=name, exact=True).count() == 0, name
            selbar = page.get_by_role("region", name="Selected items")
            assert await selbar.count() == 0
            rows_before = await page.locator("tr.fitem").evaluate_all(
                "rs => rs.map((r) => r.getBoundingClientRect().y)"
            )
            await page.get_by_label("Select a.txt").check()
            await selbar.get_by_role("status").filter(has_text=re.compile(r"^1 selected$")).wait_for()
            for name in SELECTION_ACTIONS:
                assert await selbar.get_by_role("button", name=name, exact=True).is_enabled(), name
            assert await _rows(selbar) == 1
            # the bar floats: ticking a checkbox does not move the list
            assert (
                await page.locator("tr.fitem").evaluate_all("rs => rs.map((r) => r.getBoundingClientRect().y)")
                == rows_before
            )
            await page.get_by_label("Select sub").check()
            await selbar.get_by_role("status").filter(has_text=re.compile(r"^2 selected$")).wait_for()
            for name in ("Share", "Rename", "Versions"):
                assert await selbar.get_by_role("button", name=name, exact=True).is_disabled(), name
            await page.screenshot(path=webfix.shot_path("files-selection-desktop"))
            await selbar.get_by_role("button", name="Clear selection").click()
            await selbar.wait_for(state="detached")
            # the focus was in the bar, which is gone: it goes to the list (its first checkbox)
            assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == "Select sub"
            assert not await page.get_by_label("Select a.txt").is_checked()
            await page.get_by_label("Select a.txt").check()
            await page.get_by_label("Select a.txt").press("Escape")
            await selbar.wait_for(state="detached")

            # rename a.txt → notes.txt
            await page.get_by_label("Select a.txt").check()
            await page.get_by_role("button", name="Rename").click()
            await page.get_by_label("New name").fill("notes.txt")
            await page.get_by_role("dialog").get_by_role("button", name="Rename").click()
            await page.get_by_role("link", name="notes.txt").wait_for()
            assert "a.txt" not in await ff.listing(page, "/Album <b>")

            # move by dragging onto the folder "sub"
            await page.locator('tr[data-path="/Album <b>/notes.txt"]').drag_to(
                page.locator('tr[data-path="/Album <b>/sub"]')
            )
            await _until(lambda: _has(page, "/Album <b>/sub", "notes.txt"), "notes.txt moved into sub")
            assert "notes.txt" not in await ff.listing(page, "/Album <b>")

            # copy through the dialog
            await page.get_by_label("Select sub").check()
            await page.get_by_role("button", name="Copy", exact=True).click()
            await page.get_by_label("Destination folder").fill("/Backup")
            await page.get_by_role("dialog").get_by_role("button", name="Copy").click()
            await _until(lambda: _has(page, "/Backup/sub", "notes.txt"), "copy of sub in /Backup")

            # delete to trash, restore
            await page.get_by_role("link", name="sub", exact=True).click()
            await page.get_by_label("Select b.txt").check()
            await page.get_by_role("button", name="Delete").click()
            await page.get_by_role("status").filter(has_text="to the trash").wait_for()
            assert await ff.listing(page, "/Album <b>/sub") == ["notes.txt"]
            await page.get_by_role("link", name="Trash").click()
            await page.get_by_role("button", name="Restore b.txt").click()
            await _until(lambda: _has(page, "/Album <b>/sub", "b.txt"), "b.txt restored")
            await page.get_by_text("The trash is empty").wait_for()
            # purge: deleted for good
            assert (await ff.api(page, "/api/files/delete", "POST", {"path": "/Backup"}))["status"] == 200
            await page.reload()
            await page.get_by_role("button", name="Delete forever Backup").click()
            await page.get_by_text("The trash is empty").wait_for()
            assert await ff.listing(page, "/") == ["Album <b>"]

            # versions: upload b.txt again with new content, then restore the first one
            await page.goto("/files/Album%20%3Cb%3E/sub")
            await page.get_by_label("Upload files").set_input_files(
                files=[{"name": "b.txt", "mimeType": "text/plain", "buffer": b"second bee\n"}]
            )
            await _until(lambda: _text_is(page, "/Album <b>/sub/b.txt", "second bee\n"), "b.txt replaced")
            await page.get_by_label("Select b.txt").check()
            await page.get_by_role("button", name="Versions").click()
            dialog = page.get_by_role("dialog", name="Versions of b.txt")
            await dialog.get_by_role("button", name=re.compile("^Restore version")).first.click()
            await _until(lambda: _text_is(page, "/Album <b>/sub/b.txt", "bee\n"), "first version back")
            await dialog.get_by_role("button", name="Close").click()

            # preview of a text file (as text), download link
            await page.get_by_role("link", name="notes.txt").click()
            prev = page.get_by_role("dialog", name="notes.txt")
            await prev.locator("pre").filter(has_text="first a").wait_for()
            assert await prev.get_by_role("link", name="Download").get_attribute("download") == "notes.txt"
            await page.screenshot(path=webfix.shot_path("files-preview-desktop"))
            await prev.get_by_role("button", name="Close").click()

            # previews: an image renders; HTML and SVG sources are shown as text, never run
            await page.get_by_label("Upload files").set_input_files(
                files=[
                    {"name": "pic.png", "mimeType": "image/png", "buffer": _png()},
                    {"name": "page.html", "mimeType": "text/html", "buffer": b"<script>alert(1)</script><h1>hi</h1>"},
                    {"name": "draw.svg", "mimeType": "image/svg+xml", "buffer": b'<svg onload="alert(2)"></svg>'},
                ]
            )
            await page.get_by_role("link", name="draw.svg").wait_for()
            await page.get_by_role("link", name="pic.png").click()
            img = page.get_by_role("dialog", name="pic.png").get_by_role("img", name="pic.png")
            await _until(lambda: img.evaluate("i => i.complete && i.naturalWidth === 1"), "image preview")
            await page.get_by_role("dialog", name="pic.png").get_by_role("button", name="Close").click()
            # a PDF drawn by pdf.js on a canvas (its bytes fetched), with page buttons; never a document of ours
            await page.get_by_label("Upload files").set_input_files(
                files=[{"name": "h.pdf", "mimeType": "application/pdf", "buffer": webfix.small_pdf()}]
            )
            await page.get_by_role("link", name="h.pdf").click()
            pdf = page.get_by_role("dialog", name="h.pdf")
            await webfix.wait_ink(pdf.get_by_role("img", name="Preview of h.pdf, page 1 of 2"))
            await pdf.get_by_role("button", name="Next page").click()
            await webfix.wait_ink(pdf.get_by_role("img", name="Preview of h.pdf, page 2 of 2"))
            await page.screenshot(path=webfix.shot_path("files-pdf-preview-desktop"))
            assert await pdf.locator("iframe, object, embed").count() == 0
            assert watch.file_documents() == [], watch.file_documents()
            r = await page.request.get("/api/files/content/Album%20%3Cb%3E/sub/h.pdf")
            assert r.headers["content-disposition"].startswith("attachment") and (await r.body()) == webfix.small_pdf()
            assert (await page.request.get("/api/files/pdf/Album%20%3Cb%3E/sub/h.pdf")).status == 404
            await pdf.get_by_role("button", name="Close").click()
            for name, src in (("page.html", "<script>alert(1)</script>"), ("draw.svg", '<svg onload="alert(2)">')):
                await page.get_by_role("link", name=name).click()
                dlg = page.get_by_role("dialog", name=name)
                await dlg.locator("pre").filter(has_text=src).wait_for()
                assert await dlg.locator("iframe, object, embed").count() == 0
                await dlg.get_by_role("button", name="Close").click()
            r = await page.request.get("/api/files/content/Album%20%3Cb%3E/sub/page.html?inline=1")
            assert (
                r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
            )

            # grid view, search by name
            await page.get_by_role("button", name="Grid view").click()
            await page.get_by_label("Search by name").fill("note")
            grid = page.get_by_role("listbox", name="Files")
            await grid.get_by_role("option").filter(has_text="notes.txt").wait_for()
            assert await grid.get_by_role("option").count() == 1
            # … and in every folder
            await page.get_by_label("Search by name").fill("b.tx")
            everywhere = page.get_by_role("region", name="Search results in all folders")
            await everywhere.get_by_role("link", name="/Album <b>/sub/b.txt").wait_for()
            await page.get_by_label("Search by name").fill("note")
            await page.screenshot(path=webfix.shot_path("files-grid-desktop"))
            await page.get_by_role("button", name="Grid view").click()

            # the phone layout: no horizontal overflow
            phone, pwatch = await ff.open_files(browser, web_server, webfix.PHONE)
            await phone.goto("/files/Album%20%3Cb%3E")
            await phone.get_by_role("link", name="sub", exact=True).wait_for()
            overflow = await phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            await phone.screenshot(path=webfix.shot_path("files-phone"))
            assert overflow <= 0
            assert await _rows(phone.locator(".files-toolbar")) <= 2
            await phone.get_by_label("Select sub").check()
            pbar = phone.get_by_role("region", name="Selected items")
            await pbar.get_by_role("status").filter(has_text="1 selected").wait_for()
            box = await pbar.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= webfix.PHONE["width"] + 0.5, box
            # above the tab bar, not under it
            tabbar = await phone.get_by_role("navigation", name="Main").bounding_box()
            assert tabbar and box["y"] + box["height"] <= tabbar["y"] + 0.5, (box, tabbar)
            await phone.screenshot(path=webfix.shot_path("files-selection-phone"))
            await pbar.get_by_role("button", name="Clear selection").click()
            await phone.goto("/files/Album%20%3Cb%3E/sub")
            await phone.get_by_role("link", name="h.pdf").click()
            canvas = phone.get_by_role("dialog", name="h.pdf").get_by_role("img", name="Preview of h.pdf, page 1 of 2")
            await webfix.wait_ink(canvas)
            box = await canvas.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= webfix.PHONE["width"], box
            await phone.screenshot(path=webfix.shot_path("files-pdf-preview-phone"))
            assert pwatch.file_documents() == [], pwatch.file_documents()
            assert watch.dialogs == [] and watch.foreign() == [] and pwatch.foreign() == []
            # (401 before signing in and 404s of the test's own polling are expected console lines)
            assert not [e for e in watch.errors if not e.startswith("Failed to load resource")], watch.errors
        finally:
            await browser.close()


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0")) + chunk(b"IEND", b"")
    )


async def _attr_is(loc, name, value):
    return await loc.get_attribute(name) == value


async def _has(page, folder, name):
    return name in await ff.listing(page, folder)


async def _text_is(page, path, text):
    return await ff.text_of(page, path) == text
