"""Encrypted share links end to end in Chromium: the owner's browser encrypts a large file before the tus
upload, the server stores only ciphertext (no 4 KiB window of the plaintext anywhere in the data dir)
and never sees the key (not in its log, not in its database), the recipient's browser decrypts while
downloading to the same SHA-256, Python's reference (suite.files.e2ee_format) reads the browser's
ciphertext, and a wrong key, a missing key, a wrong password or a changed byte give a clear message."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import mmap
import os
import re
from pathlib import Path

import httpx

from suite.files import e2ee_format as fmt

_spec = importlib.util.spec_from_file_location("suite_e2e_filesfix", Path(__file__).with_name("filesfix.py"))
ff = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ff)
webfix = ff.webfix
web_server = webfix.web_server

#: Size of the large encrypted upload (MiB); CI runs the issue's 200 MB.
E2EE_MB = int(os.environ.get("SUITE_E2E_E2EE_MB", "200"))
#: Every 256 bytes of the plaintext start with this marker (then a counter and random bytes): any
#: 4 KiB window of the plaintext contains it many times, so a data dir without it holds no such window.
MARKER = b"PLAINTEXT-MARKER"
#: The record size the browser writes (2^this plaintext bytes: web/src/lib/crypto-format.js DEFAULT_RECORD_EXP;
#: the header carries it, so the reference decrypts any): the ciphertext's size depends on it.
BROWSER_RECORD_EXP = 18


def _plaintext(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "wb") as f:
        done = 0
        while done < size:
            n = min(8 << 20, size - done)
            block = bytearray(os.urandom(n))
            for off in range(0, n, 256):
                block[off : off + 32] = MARKER + f"{(done + off) // 256:016d}".encode()
            block = block[:n]
            f.write(block)
            h.update(block)
            done += n
    return h.hexdigest()


def _files_under(root: Path):
    for p in root.rglob("*"):
        if p.is_file() and p.stat().st_size:
            yield p


def _contains(path: Path, needle: bytes) -> bool:
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:  # emptied by the running server since it was listed
            return False
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
            return m.find(needle) != -1


async def _make_link(page, file: Path, password: str | None = None) -> str:
    await page.get_by_role("button", name="Encrypted link").click()
    dialog = page.get_by_role("dialog", name="New encrypted link")
    assert await dialog.get_by_role("checkbox", name="Encrypt").is_checked()
    await dialog.get_by_label("File to encrypt").set_input_files(str(file))
    if password:
        await dialog.get_by_label("Password").fill(password)
    await dialog.get_by_role("button", name="Create link").click()
    link = dialog.get_by_label("Link", exact=True)
    await link.wait_for(timeout=600_000)
    url = await link.input_value()
    await dialog.get_by_role("button", name="Close").click()
    return url


async def _download(browser, server, url: str, password: str | None = None, viewport=None):
    page, watch = await ff.new_page(browser, server, viewport or webfix.PHONE, accept_downloads=True)
    await page.goto(url)
    if password:
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Open").click()
    await page.get_by_text("End-to-end encrypted").wait_for(timeout=60_000)
    return page, watch


async def test_encrypted_link_end_to_end(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    data_dir = Path(web_server.env["SUITE_DATA_DIR"])
    db = Path(web_server.env["SUITE_DATABASE_URL"].split("///", 1)[1])
    log = data_dir.parent / "serve.log"
    big = tmp_path / "holiday <video>.bin"
    digest = _plaintext(big, E2EE_MB * 1024 * 1024)
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, watch = await ff.open_files(browser, web_server)
            url = await _make_link(page, big)
            m = re.fullmatch(re.escape(web_server.base) + r"/p/([A-Za-z0-9_-]+)#(k1\.([A-Za-z0-9_-]{43}))", url)
            assert m, url
            token, frag, key_text = m.group(1), m.group(2), m.group(3)
            key = fmt.key_from_fragment(frag)
            await page.get_by_role(
                "progressbar", name=re.compile(r"^Uploading holiday <video>\.bin\..*\.e2ee$")
            ).wait_for()
            await page.screenshot(path=webfix.shot_path("files-encrypted-link-desktop"))

            # the server has ciphertext only, and never the key
            files = list(_files_under(data_dir))
            assert files
            leaks = [str(f) for f in files if _contains(f, MARKER)]
            assert leaks == [], leaks
            for f in [log, db, *db.parent.glob(db.name + "-*")]:
                if f.exists():
                    assert not _contains(f, key_text.encode()), f"the key is in {f}"
                    assert not _contains(f, key), f"the raw key is in {f}"
            assert not any(key_text in r for r in watch.requests)

            # Python's reference reads what the browser wrote
            cipher = tmp_path / "cipher.bin"
            with httpx.stream("GET", f"{web_server.base}/s/{token}", timeout=120) as r, open(cipher, "wb") as out:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith(fmt.MEDIA_TYPE)
                for chunk in r.iter_bytes():
                    out.write(chunk)
            with open(cipher, "rb") as f:
                head, recs = fmt.decrypt_stream(f, key)
                h = hashlib.sha256()
                for rec in recs:
                    h.update(rec)
            assert head.meta["name"] == big.name and head.meta["size"] == big.stat().st_size
            assert h.hexdigest() == digest

            # the recipient decrypts while downloading: same SHA-256
            visitor, vwatch = await _download(browser, web_server, url)
            await visitor.get_by_role("heading", name=big.name).wait_for()
            await visitor.screenshot(path=webfix.shot_path("share-encrypted-phone"))
            async with visitor.expect_download(timeout=600_000) as dl:
                await visitor.get_by_role("button", name="Download").click()
            download = await dl.value
            assert "/p/_dl/" in download.url  # streamed by the page's Service Worker, not gathered in memory
            assert download.suggested_filename == re.sub(r"[<>]", "_", big.name)  # Chromium makes it a safe file name
            got = hashlib.sha256()
            with open(await download.path(), "rb") as f:
                while chunk := f.read(8 << 20):
                    got.update(chunk)
            assert got.hexdigest() == digest
            await visitor.get_by_role("status").filter(has_text="Decrypted and saved").wait_for()
            assert not any(key_text in r for r in vwatch.requests)
            assert vwatch.dialogs == [] and vwatch.foreign() == []

            # a wrong key, a missing key: clear messages
            wrong = url[:-2] + ("AA" if not url.endswith("AA") else "BB")
            bad, _ = await ff.new_page(browser, web_server, webfix.PHONE)
            await bad.goto(wrong)
            await bad.get_by_role("alert").filter(has_text="Wrong or missing key").wait_for()
            await bad.goto(url.split("#")[0])
            await bad.get_by_role("alert").filter(has_text="the key is missing").wait_for()

            # a changed byte in the stored ciphertext: refused, nothing saved
            blob = next(f for f in _files_under(data_dir) if f.name == hashlib.sha256(cipher.read_bytes()).hexdigest())
            os.chmod(blob, 0o600)
            with open(blob, "r+b") as f:
                f.seek(blob.stat().st_size // 2)
                b = f.read(1)
                f.seek(-1, 1)
                f.write(bytes([b[0] ^ 0x01]))
            tampered, twatch = await _download(browser, web_server, url)
            downloads = []
            tampered.on("download", lambda d: downloads.append(d))
            await tampered.get_by_role("button", name="Download").click()
            await (
                tampered.get_by_role("alert")
                .filter(has_text="changed after it was encrypted")
                .wait_for(timeout=600_000)
            )
            await tampered.screenshot(path=webfix.shot_path("share-encrypted-tampered-phone"))
            # the Service Worker stream had started a download: the refused record failed it (nothing kept)
            for d in downloads:
                assert await d.failure() is not None, "a download of a tampered file completed"
            with open(blob, "rb") as f:
                _, recs = fmt.decrypt_stream(f, key)
                try:
                    for _rec in recs:
                        pass
                    raise AssertionError("the reference decrypted a changed file")
                except fmt.Tampered:
                    pass
        finally:
            await browser.close()


async def test_encrypted_link_with_password(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    small = tmp_path / "contract.pdf"
    small.write_bytes(b"%PDF-1.4\n" + os.urandom(300_000))
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, _ = await ff.open_files(browser, web_server)
            url = await _make_link(page, small, password="pässword")
            frag = url.split("#", 1)[1]
            assert frag.startswith("p1.")
            with open(next(_server_blob(web_server, small.stat().st_size)), "rb") as f:
                _, recs = fmt.decrypt_stream(f, fmt.key_from_fragment(frag, "pässword"))
                assert b"".join(recs) == small.read_bytes()
            # the server checks a value derived from the password: without it, no ciphertext either
            assert httpx.get(url.split("#")[0].replace("/p/", "/s/"), timeout=30).status_code == 401

            visitor = (await ff.new_page(browser, web_server, webfix.PHONE, accept_downloads=True))[0]
            await visitor.goto(url)
            await visitor.get_by_label("Password").fill("password")
            await visitor.get_by_role("button", name="Open").click()
            await visitor.get_by_role("alert").filter(has_text="Wrong password").wait_for()
            await visitor.get_by_label("Password").fill("pässword")
            await visitor.get_by_role("button", name="Open").click()
            await visitor.get_by_role("heading", name="contract.pdf").wait_for()
            async with visitor.expect_download() as dl:
                await visitor.get_by_role("button", name="Download").click()
            assert Path(await (await dl.value).path()).read_bytes() == small.read_bytes()
        finally:
            await browser.close()


def _server_blob(server, plain_size: int):
    """Blob files whose size is the ciphertext size of a ``plain_size`` file."""
    root = Path(server.env["SUITE_DATA_DIR"])
    want = fmt.FIXED_LEN + 256 + 16 + plain_size + 16 * fmt.record_count(plain_size, BROWSER_RECORD_EXP)
    return (f for f in _files_under(root) if f.stat().st_size == want and "tus" not in f.parts)


async def test_blob_fallback_refuses_a_big_file_before_downloading(web_server):
    """Without a Service Worker (blocked, as in a private window) and without the File System Access
    API (as in Firefox), the only sink left holds the whole file in memory: a file above its limit
    (256 MiB, docs/ENCRYPTED-LINKS.md) is refused with a clear message before any ciphertext is fetched.
    The file's header (made by Python's reference) claims 300 MiB; nothing past it is ever read."""
    async_playwright = webfix.require_browser()
    key = os.urandom(32)
    head, _keys = fmt.header(key, "huge.iso", "application/octet-stream", 300 * 1024 * 1024)
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            page, _ = await ff.open_files(browser, web_server)
            put = await page.evaluate(
                """async (b64) => {
                    const me = await (await fetch('/api/me')).json();
                    const body = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                    const r = await fetch('/api/files/content/huge.iso.e2ee', {method: 'PUT', body,
                        headers: {'X-CSRF-Token': me.csrf_token, 'Content-Type': 'application/vnd.suite.e2ee'}});
                    return r.status;
                }""",
                base64.b64encode(head + os.urandom(4096)).decode(),
            )
            assert put == 201
            r = await ff.api(page, "/api/files/shares", "POST", {"path": "/huge.iso.e2ee"})
            assert r["status"] == 201, r
            token = json.loads(r["body"])["token"]
            visitor, watch = await ff.new_page(browser, web_server, webfix.PHONE, service_workers="block")
            await visitor.add_init_script(
                "delete window.showSaveFilePicker; delete Window.prototype.showSaveFilePicker;"
            )
            await visitor.goto(f"/p/{token}#{fmt.fragment(key)}")
            await visitor.get_by_role("heading", name="huge.iso").wait_for(timeout=60_000)
            before = len(watch.requests)
            await visitor.get_by_role("button", name="Download").click()
            await visitor.get_by_role("alert").filter(has_text="cannot save a file this big").wait_for()
            assert not [u for u in watch.requests[before:] if f"/s/{token}" in u]  # not one byte fetched
            await visitor.screenshot(path=webfix.shot_path("share-encrypted-too-big-phone"))
        finally:
            await browser.close()
