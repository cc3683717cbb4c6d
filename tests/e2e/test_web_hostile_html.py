"""The reader's HTML frame in Chromium with the hostile corpus: no dialog, no script, no request for
another host (every request of the page is recorded), remote images only after "Show images".

The gateway runs in-process with its mail port (``app.state.mail_raw``) reading tests/data/hostile-html
for alice; the full webmail path (JMAP, SMTP delivery) is tested in test_webmail.py.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import httpx
import pytest

from suite.config import Settings
from suite.context import open_context
from suite.gateway import mail_html
from suite.storage import db
from suite.testing import TEST_DATA

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
ALICE, BOB, PW = webfix.ALICE, webfix.BOB, webfix.PW
CORPUS = {p.stem: p for p in sorted((TEST_DATA / "hostile-html").glob("*.eml"))}
SANDBOX = "allow-popups allow-popups-to-escape-sandbox"  # as web/src/views/mail/reader.js


class CorpusSource:
    """The mail port over the corpus files, for one account (every other account has no mail)."""

    def __init__(self, account_id: int) -> None:
        self.account_id = account_id

    async def email_blob(self, account_id: int, email_id: str) -> tuple[str, int] | None:
        p = CORPUS.get(email_id)
        return (email_id, p.stat().st_size) if p is not None and account_id == self.account_id else None

    async def read(self, digest: str) -> bytes:
        return CORPUS[digest].read_bytes()


@pytest.fixture
async def gateway(tmp_path):
    import suite.models  # noqa: F401
    from suite.gateway.service import GatewayService

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 's.db'}",
        bus_backend="memory",
        http_port=0,
    )
    engine = db.make_engine(settings.db_url)
    await db.migrate(engine)
    await engine.dispose()
    ctx = await open_context(settings)
    await ctx.accounts.add_domain("example.test")
    alice = await ctx.accounts.add_account(ALICE, PW)
    await ctx.accounts.add_account(BOB, PW)
    gw = GatewayService(ctx)
    await gw.start()
    mail_html.install_source(gw.app, CorpusSource(alice.id))
    yield f"http://127.0.0.1:{gw.port}"
    await gw.stop()
    await ctx.close()


async def _login(client: httpx.AsyncClient, who: str) -> None:
    r = await client.post("/api/login", json={"address": who, "password": PW})
    assert r.status_code == 200


async def test_route_answers_only_the_owner_with_a_strict_policy(gateway):
    async with httpx.AsyncClient(base_url=gateway) as c:
        assert (await c.get("/api/mail/html/links")).status_code == 401
        await _login(c, BOB)
        assert (await c.get("/api/mail/html/links")).status_code == 404  # alice's message is not bob's
    async with httpx.AsyncClient(base_url=gateway) as c:
        await _login(c, ALICE)
        r = await c.get("/api/mail/html/links")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "sandbox" in csp and "allow-scripts" not in csp
        assert r.headers["x-frame-options"] == "SAMEORIGIN" and r.headers["x-content-type-options"] == "nosniff"
        assert (await c.get("/api/mail/html/links?images=2")).status_code == 400
        assert (await c.get("/api/mail/html/no.such")).status_code == 400
        assert (await c.get("/api/mail/html/nosuch")).status_code == 404
        r = await c.get("/api/mail/html/remote-image")
        assert r.headers["x-blocked-images"] == "1"
        # the reader's hidden measuring copy keeps the origin but runs and loads nothing, and is only
        # ever served to a frame (a browser opening it as a page gets 400)
        r = await c.get("/api/mail/html/remote-image?images=1&measure=1", headers={"Sec-Fetch-Dest": "iframe"})
        csp = r.headers["content-security-policy"]
        assert r.status_code == 200 and csp.endswith("sandbox allow-same-origin") and "img-src data:;" in csp, csp
        assert "allow-scripts" not in csp and "allow-popups" not in csp
        assert "evil.test" not in r.text and "data:image/png" in r.text  # no remote image named; its own inlined
        r = await c.get("/api/mail/html/links?measure=1", headers={"Sec-Fetch-Dest": "document"})
        assert r.status_code == 400


async def test_hostile_corpus_in_the_sandboxed_frame(gateway):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            context = await browser.new_context(base_url=gateway, viewport=webfix.DESKTOP)
            page = await context.new_page()
            watch = webfix.PageWatch(page, gateway)
            await page.goto("/settings")
            await webfix.sign_in(page)
            for name in CORPUS:
                for images in (0, 1):
                    await page.evaluate(
                        """([src, sandbox]) => new Promise((resolve) => {
                            document.querySelectorAll('iframe.test-frame').forEach((f) => f.remove());
                            const f = document.createElement('iframe');
                            f.className = 'test-frame';
                            f.setAttribute('sandbox', sandbox);
                            f.setAttribute('referrerpolicy', 'no-referrer');
                            f.onload = () => resolve();
                            f.src = src;
                            document.body.append(f);
                        })""",
                        [f"/api/mail/html/{name}?images={images}", SANDBOX],
                    )
                    frame = page.frames[-1]
                    assert frame.url.endswith(f"/api/mail/html/{name}?images={images}")
                    # the frame is an opaque origin: it cannot reach the app's DOM, cookies or storage
                    await page.wait_for_timeout(50)  # let any timer/animation a payload set up fire
                    foreign = watch.foreign()
                    if images:  # only the <img src> the sanitised document kept, nothing else
                        doc = await (await page.request.get(f"/api/mail/html/{name}?images=1")).text()
                        allowed = set(re.findall(r'<img[^>]* src="(http[^"]+)"', doc))
                        assert set(foreign) <= allowed, (name, foreign, allowed)
                        if name == "remote-image":
                            assert foreign == ["http://evil.test/track.gif"]
                        watch.requests.clear()
                    else:
                        assert not foreign, (name, images, foreign)
                    assert not watch.dialogs, (name, watch.dialogs)
                    blocked = [e for e in watch.errors if "Blocked script execution" in e]
                    assert not blocked, (name, blocked)  # the sanitiser left no script for the sandbox to stop
            await page.screenshot(path=webfix.shot_path("hostile-last-frame"))
        finally:
            await browser.close()
