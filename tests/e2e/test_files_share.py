"""Share links from the Files view, opened logged out in another browser context (a phone): a file
link with password, expiry and download limit (preview page, "Download"), a drop link (upload with
progress), the owner's list of links with download counts, revoke."""

from __future__ import annotations

import importlib.util
import re
import zipfile
from pathlib import Path

_spec = importlib.util.spec_from_file_location("suite_e2e_filesfix", Path(__file__).with_name("filesfix.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)
webfix = ff.webfix
web_server = webfix.web_server


async def _create_link(page, item: str, **opts) -> str:
    await page.get_by_label(f"Select {item}").check()
    await page.get_by_role("button", name="Share", exact=True).click()
    dialog = page.get_by_role("dialog")
    await dialog.wait_for()
    assert not await dialog.get_by_role("checkbox", name="Encrypt").is_checked()
    if "kind" in opts:
        await dialog.get_by_label(opts["kind"]).check()
    if "password" in opts:
        await dialog.get_by_label("Password").fill(opts["password"])
    if "expiry" in opts:
        await dialog.get_by_label("Expiry").select_option(label=opts["expiry"])
    if "limit" in opts:
        await dialog.get_by_label("Download limit").fill(str(opts["limit"]))
    await dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link", exact=True)
    await link.wait_for()
    url = await link.input_value()
    await dialog.get_by_role("button", name="Close").click()
    await page.get_by_label(f"Select {item}").uncheck()
    return url


async def test_share_with_password_expiry_limit_and_drop_link(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, watch = await ff.open_files(browser, web_server)
            await page.get_by_label("Upload files").set_input_files(
                files=[{"name": "report <i>.txt", "mimeType": "text/plain", "buffer": b"quarterly numbers\n"}]
            )
            await page.get_by_role("link", name="report <i>.txt").wait_for()
            assert (await ff.api(page, "/api/files/mkdir", "POST", {"path": "/Inbox"}))["status"] == 201
            await page.reload()
            await page.get_by_role("link", name="Inbox", exact=True).wait_for()

            url = await _create_link(page, "report <i>.txt", password="open sesame", expiry="1 day", limit=3)
            assert re.fullmatch(re.escape(web_server.base) + r"/p/[A-Za-z0-9_-]{32}", url), url

            # logged out, on a phone
            visitor, vwatch = await ff.new_page(browser, web_server, webfix.PHONE, accept_downloads=True)
            await visitor.goto(url)
            await visitor.get_by_label("Password").fill("wrong")
            await visitor.get_by_role("button", name="Open").click()
            await visitor.get_by_role("alert").filter(has_text="Wrong password").wait_for()
            await visitor.get_by_label("Password").fill("open sesame")
            await visitor.get_by_role("button", name="Open").click()
            await visitor.get_by_role("heading", name="report <i>.txt").wait_for()
            await visitor.get_by_text("This link expires").wait_for()
            await visitor.screenshot(path=webfix.shot_path("share-file-phone"))
            async with visitor.expect_download() as dl:
                await visitor.get_by_role("button", name="Download").click()
            download = await dl.value
            assert download.suggested_filename == "report <i>.txt" or download.suggested_filename.startswith("report")
            assert Path(await download.path()).read_bytes() == b"quarterly numbers\n"
            assert vwatch.dialogs == [] and vwatch.foreign() == []
            assert not [u for u in vwatch.requests if "pdf-worker" in u], vwatch.requests

            # a PDF's link: drawn by pdf.js on a canvas with page buttons, never loaded as a document
            await page.get_by_label("Upload files").set_input_files(
                files=[{"name": "plan.pdf", "mimeType": "application/pdf", "buffer": webfix.small_pdf()}]
            )
            await page.get_by_role("link", name="plan.pdf").wait_for()
            pdf_url = await _create_link(page, "plan.pdf")
            for size, shot in ((None, "share-pdf-desktop"), (webfix.PHONE, "share-pdf-phone")):
                reader, rwatch = await ff.new_page(browser, web_server, size)
                await reader.goto(pdf_url)
                await webfix.wait_ink(reader.get_by_role("img", name="Preview of plan.pdf, page 1 of 2"))
                await reader.get_by_role("button", name="Next page").click()
                canvas = reader.get_by_role("img", name="Preview of plan.pdf, page 2 of 2")
                await webfix.wait_ink(canvas)
                box = await canvas.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= reader.viewport_size["width"], box
                await reader.screenshot(path=webfix.shot_path(shot))
                assert rwatch.file_documents() == [] and rwatch.foreign() == [], rwatch.documents
                assert [u for u in rwatch.requests if "/assets/pdf-worker-" in u]
                # the page stays small: pdf.js is a chunk the text file's page never loaded
                chunks = lambda w: {u for u in w.requests if "/assets/chunk-" in u}
                assert chunks(rwatch) - chunks(vwatch), (chunks(rwatch), chunks(vwatch))
                assert not [e for e in rwatch.errors if "Content Security Policy" in e], rwatch.errors
                await reader.close()

            # a drop link into Inbox
            drop = await _create_link(page, "Inbox", kind="Upload only (file drop)")
            dropper, dwatch = await ff.new_page(browser, web_server, webfix.PHONE)
            await dropper.goto(drop)
            await dropper.get_by_text("You cannot see what is already there").wait_for()
            await dropper.get_by_label("Files to upload").set_input_files(
                files=[{"name": "hello.txt", "mimeType": "text/plain", "buffer": b"x" * 300_000}]
            )
            await dropper.get_by_role("progressbar", name="Uploading hello.txt").wait_for()
            await dropper.get_by_text("Uploaded", exact=True).wait_for()
            await dropper.screenshot(path=webfix.shot_path("share-drop-phone"))
            assert await ff.listing(page, "/Inbox") == ["hello.txt"]

            # a folder link: browse into a subfolder, save one file, the whole folder as a ZIP
            assert (await ff.api(page, "/api/files/mkdir", "POST", {"path": "/Pics/2025", "parents": True}))[
                "status"
            ] == 201
            put = await page.evaluate(
                """async () => {
                    const me = await (await fetch('/api/me')).json();
                    const r = await fetch('/api/files/content/Pics/2025/sea.txt', {method: 'PUT', body: 'waves',
                        headers: {'X-CSRF-Token': me.csrf_token}});
                    return r.status;
                }"""
            )
            assert put == 201
            await page.reload()
            folder_link = await _create_link(page, "Pics")
            browse, _ = await ff.new_page(browser, web_server, webfix.PHONE, accept_downloads=True)
            await browse.goto(folder_link)
            await browse.get_by_role("button", name="2025").click()
            await browse.get_by_text("sea.txt").wait_for()
            await browse.screenshot(path=webfix.shot_path("share-folder-phone"))
            async with browse.expect_download() as dl:
                await browse.get_by_role("button", name="Download sea.txt").click()
            assert Path(await (await dl.value).path()).read_bytes() == b"waves"
            async with browse.expect_download() as dl:
                await browse.get_by_role("button", name="Download all (ZIP)").click()
            z = await dl.value
            assert z.suggested_filename == "Pics.zip"
            assert zipfile.ZipFile(await z.path()).read("2025/sea.txt") == b"waves"

            # the share dialog on the owner's phone
            owner_phone, _ = await ff.open_files(browser, web_server, webfix.PHONE)
            await owner_phone.get_by_label("Select report <i>.txt").check()
            await owner_phone.get_by_role("button", name="Share", exact=True).click()
            await owner_phone.get_by_role("dialog").get_by_role("button", name="Create link").wait_for()
            await owner_phone.screenshot(path=webfix.shot_path("files-share-dialog-phone"))
            width = await owner_phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert width <= 0

            # the owner's links: download counts, revoke
            await page.get_by_role("link", name="My links").click()
            table = page.get_by_role("table", name="My links")
            row = table.get_by_role("row").filter(has_text="/report <i>.txt")
            await row.get_by_role("cell", name="1 of 3").wait_for()
            await table.get_by_role("row").filter(has_text="/Inbox").get_by_role("cell", name="File drop").wait_for()
            await page.screenshot(path=webfix.shot_path("files-links-desktop"))
            await row.get_by_role("button", name=re.compile("^Revoke")).click()
            await row.get_by_role("cell", name="Revoked").wait_for()
            late, _ = await ff.new_page(browser, web_server, webfix.PHONE)
            await late.goto(url)
            await late.get_by_role("alert").filter(has_text="does not exist or was revoked").wait_for()
            assert watch.dialogs == [] and watch.foreign() == []
            assert dwatch.dialogs == []
        finally:
            await browser.close()
