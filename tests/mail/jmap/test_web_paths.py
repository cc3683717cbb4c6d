"""The web app's hot paths over real HTTP: the reader's HTML made once per message for its three
requests (suite.gateway.mail_html.RenderCache), and a search's total kept per Email state (RFC 8620
§5.5 calculateTotal) yet always true after a change."""

from __future__ import annotations

import asyncio

import httpx

from suite.gateway import mail_html

from .conftest import PW, message

HTML = (
    b"From: Carol <carol@example.net>\r\nTo: alice@example.test\r\nSubject: Poster\r\nMessage-ID: <h1@x>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>Hello <img src="https://remote.example/a.png"></p>\r\n'
)


async def test_reader_html_rendered_once_and_only_for_the_owner(jmap, store, accounts, base_url, monkeypatch):
    await store.deliver(accounts[0].id, "INBOX", HTML)
    (eid,) = (await jmap.ok("Email/query", {}))["ids"]
    renders = []
    real = mail_html.render_message

    def counting(raw: bytes, *, images: bool = False):
        renders.append(images)
        return real(raw, images=images)

    monkeypatch.setattr(mail_html, "render_message", counting)
    async with httpx.AsyncClient(base_url=base_url) as c:
        assert (await c.post("/api/login", json={"address": "alice@example.test", "password": PW})).status_code == 200
        url = f"/api/mail/html/{eid}?images=0"
        # what the reader asks at once: the HEAD (image count, height hint), the frame, the measuring frame
        head, page, probe = await asyncio.gather(
            c.head(url), c.get(url), c.get(url + "&measure=1", headers={"Sec-Fetch-Dest": "iframe"})
        )
        assert head.status_code == page.status_code == probe.status_code == 200
        assert head.headers["x-blocked-images"] == page.headers["x-blocked-images"] == "1"
        assert "remote.example" not in page.text and page.text == probe.text
        assert renders == [False]
        shown = await c.get(f"/api/mail/html/{eid}?images=1")
        assert "https://remote.example/a.png" in shown.text and renders == [False, True]
        await jmap.ok("Email/set", {"destroy": [eid]})
        assert (await c.get(url)).status_code == 404  # cached, but no longer the account's Email
    async with httpx.AsyncClient(base_url=base_url) as c:
        assert (await c.post("/api/login", json={"address": "bob@example.test", "password": PW})).status_code == 200
        assert (await c.get(url)).status_code == 404


async def test_search_total_follows_new_mail(jmap, store, accounts):
    a = accounts[0].id
    for n in range(3):
        await store.deliver(a, "INBOX", message(f"Lantern {n}", msgid=f"l{n}@x"))
    await store.deliver(a, "INBOX", message("Other", msgid="o@x"))
    q = {"filter": {"text": "lantern"}, "collapseThreads": True, "calculateTotal": True, "limit": 1}
    assert (await jmap.ok("Email/query", q))["total"] == 3
    assert (await jmap.ok("Email/query", {**q, "position": 1}))["total"] == 3  # the next page: same state
    await store.deliver(a, "INBOX", message("Lantern again", msgid="l9@x"))
    assert (await jmap.ok("Email/query", q))["total"] == 4
    ids = (await jmap.ok("Email/query", {**q, "limit": 10}))["ids"]
    await jmap.ok("Email/set", {"destroy": ids[:2]})
    assert (await jmap.ok("Email/query", q))["total"] == 2
    assert (await jmap.ok("Email/query", {**q, "filter": {"text": "other"}}))["total"] == 1
