"""Settings → "Export my data" and Admin → Users → Export (issue 18 item 4 on the web): the zip
`suite export --user` writes, streamed as a download. Mail arrives over SMTP (smtplib), a file is
uploaded through the files API; the downloaded zip's mbox (read by ``mailbox``) holds the messages
byte for byte and the file comes back with the same SHA-256. Chromium: the button is there at
desktop and 375 px and clicking it starts a download."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import mailbox
import secrets
import smtplib
import zipfile
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
web_server = webfix.web_server
ALICE, BOB, CAROL, PW = webfix.ALICE, webfix.BOB, webfix.CAROL, webfix.PW
FILE_NAME = "report ü.bin"


def _login(base: str, address: str) -> tuple[httpx.Client, dict]:
    c = httpx.Client(base_url=base, timeout=30)
    r = c.post("/api/login", json={"address": address, "password": PW})
    assert r.status_code == 200, r.text
    return c, {"X-CSRF-Token": r.json()["csrf_token"]}


@pytest.fixture(scope="module")
def carol_data(web_server) -> tuple[list[bytes], bytes]:
    """Two messages delivered to carol over SMTP and one file uploaded through the files API."""
    sent = []
    with smtplib.SMTP("127.0.0.1", web_server.ports["smtp"], timeout=30) as s:
        for i in range(2):
            m = EmailMessage()
            m["From"] = "sender@remote.test"
            m["To"] = CAROL
            m["Subject"] = f"export {i}"
            m["Message-ID"] = f"<export-{i}-{secrets.token_hex(4)}@remote.test>"
            m.set_content(f"line {i}\nFrom the start of a line\n" + "z" * 300 + "\n")
            raw = m.as_bytes(policy=policy.SMTP)
            s.sendmail("sender@remote.test", [CAROL], raw)
            sent.append(raw)
    content = secrets.token_bytes(300_000)
    c, csrf = _login(web_server.base, CAROL)
    r = c.put(f"/api/files/content/{FILE_NAME}", content=content, headers=csrf)
    assert r.status_code in (200, 201), r.text
    c.close()
    return sent, content


def _download(c: httpx.Client, csrf: dict, start: str) -> httpx.Response:
    r = c.post(start, headers=csrf)
    assert r.status_code == 200, r.text
    got = c.get(r.json()["url"])
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert got.headers["content-disposition"].startswith("attachment;")
    assert got.headers["x-content-type-options"] == "nosniff"
    return got


def _check_zip(body: bytes, sent: list[bytes], content: bytes, tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert "mail/INBOX.mbox" in names, names
        (tmp_path / "INBOX.mbox").write_bytes(zf.read("mail/INBOX.mbox"))
        assert hashlib.sha256(zf.read(f"files/{FILE_NAME}")).hexdigest() == hashlib.sha256(content).hexdigest()
    box = mailbox.mbox(tmp_path / "INBOX.mbox", create=False)
    got = {}
    for key, msg in box.items():
        head, _, body = box.get_bytes(key).partition(b"\n\n")
        # the export's flag headers are not the message's; "From " lines are quoted in an mbox (mboxo)
        lines = [h for h in head.split(b"\n") if not h.startswith((b"Status:", b"X-Status:", b"X-Keywords:"))]
        got[msg["Message-ID"]] = b"\n".join(lines) + b"\n\n" + body.replace(b"\n>From ", b"\nFrom ")
    box.close()
    for raw in sent:
        mid = next(line for line in raw.split(b"\r\n") if line.startswith(b"Message-ID:")).split(b": ", 1)[1].decode()
        want = raw.replace(b"\r\n", b"\n")
        stored = got[mid]
        # the server prepends its trace (Received, Authentication-Results); what the sender wrote follows byte for byte
        assert stored.endswith(want), (stored[:400], want[:200])


def test_user_downloads_own_export(web_server, carol_data, tmp_path):
    sent, content = carol_data
    c, csrf = _login(web_server.base, CAROL)
    # the POST needs the CSRF token; the GET needs this session's ticket
    assert c.post("/api/settings/export").status_code == 403
    assert c.get("/api/settings/export/download?expires=9999999999&ticket=00").status_code == 403
    _check_zip(_download(c, csrf, "/api/settings/export").content, sent, content, tmp_path)
    # a ticket is bound to the session that asked for it
    url = c.post("/api/settings/export", headers=csrf).json()["url"]
    other, _ = _login(web_server.base, CAROL)
    assert other.get(url).status_code == 403
    other.close()
    c.close()


def test_admin_exports_a_user_and_non_admins_get_403(web_server, carol_data, tmp_path):
    sent, content = carol_data
    bob, bob_csrf = _login(web_server.base, BOB)
    r = bob.post(f"/api/admin/users/{CAROL}/export", headers=bob_csrf)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert bob.get(f"/api/admin/users/{CAROL}/export/download").status_code == 403
    bob.close()
    admin, csrf = _login(web_server.base, ALICE)
    _check_zip(_download(admin, csrf, f"/api/admin/users/{CAROL}/export").content, sent, content, tmp_path)
    assert admin.post("/api/admin/users/nobody@example.test/export", headers=csrf).status_code == 404
    admin.close()


async def test_export_button_starts_a_download(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            for viewport, name in ((webfix.DESKTOP, "desktop"), (webfix.PHONE, "phone")):
                context, page, watch = await webfix.new_page(browser, web_server.base, viewport, accept_downloads=True)
                await page.goto("/settings")
                await webfix.sign_in(page, BOB)
                watch.errors.clear()  # the signed-out /api/me (401) before signing in
                button = page.get_by_role("button", name="Export my data")
                await button.scroll_into_view_if_needed()
                await page.screenshot(path=webfix.shot_path(f"settings-export-{name}"))
                async with page.expect_download() as info:
                    await button.click()
                download = await info.value
                assert download.suggested_filename.startswith(
                    "suite-export-bob"
                ) and download.suggested_filename.endswith(".zip")
                target = tmp_path / f"{name}.zip"
                await download.save_as(target)
                with zipfile.ZipFile(target) as zf:
                    assert "mail/INBOX.mbox" in zf.namelist()
                assert not watch.errors and not watch.foreign(), (watch.errors, watch.foreign())
                await context.close()
        finally:
            await browser.close()


async def test_admin_export_button_starts_a_download(web_server, carol_data):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            context, page, watch = await webfix.new_page(browser, web_server.base, accept_downloads=True)
            await page.goto("/admin")
            await webfix.sign_in(page, ALICE)
            button = page.get_by_role("button", name=f"Export {CAROL}")
            async with page.expect_download() as info:
                await button.click()
            download = await info.value
            assert download.suggested_filename.startswith("suite-export-carol")
            await page.screenshot(path=webfix.shot_path("admin-users-export"))
            await context.close()
        finally:
            await browser.close()
