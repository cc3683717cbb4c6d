"""Settings → Filters, Out of office and Set up a mail app in Chromium against `suite serve` (issue 16
items 3 and 5), checked as the mail they describe arrives: a rule built in the browser files mail
delivered over SMTP (read back with imaplib); the out-of-office reply built in the browser goes out
once per outside sender to a loopback MX (a DNS stub names it); the mail-app page shows each client,
the phone QR code, and a profile without a password. Screenshots desktop and 375 px."""

from __future__ import annotations

import asyncio
import email
import imaplib
import importlib.util
import plistlib
import smtplib
import ssl
import sys
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from suite.testing import async_wait_until

_here = Path(__file__).resolve()
_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", _here.with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
web_server = webfix.web_server
ALICE, BOB, CAROL, PW = webfix.ALICE, webfix.BOB, webfix.CAROL, webfix.PW

# the DNS stub and the recording remote MX of the SMTP tests
_smtp = _here.parents[1] / "mail" / "smtp"
_spec = importlib.util.spec_from_file_location("suite_e2e_smtp_conftest", _smtp / "conftest.py")
smtp_conftest = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = smtp_conftest  # its dataclasses look their module up
_spec.loader.exec_module(smtp_conftest)

WIDER_THAN_SCREEN = webfix.WIDER_THAN_SCREEN
# what a subject condition may hold: quotes, a backslash, a try at closing the Sieve string
HOSTILE = 'Invoice "Q3" \\ paid"; discard; #'
FOLDER = "Invoices/2026"


async def _signed_in(browser, server, path: str, who: str, viewport=webfix.DESKTOP):
    """(context, page, watch) of a fresh context, signed in as ``who`` on ``path``."""
    context, page, watch = await webfix.new_page(browser, server.base, viewport, accept_downloads=True)
    await page.goto(path)
    await webfix.sign_in(page, who)
    return context, page, watch


def _clean(watch) -> None:
    """Nothing went wrong on the page but the signed-out /api/me before the sign-in (401)."""
    assert all("401" in e for e in watch.errors), watch.errors
    assert not watch.dialogs and not watch.foreign(), (watch.dialogs, watch.foreign())


def _deliver(port: int, subject: str, to: str, frm: str = "sender@remote.test") -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = frm, to, subject
    m.set_content("Hello.\n")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.send_message(m, from_addr=frm, to_addrs=[to])  # 250 = stored (filtered) already


def _subjects(server, user: str, mailbox: str) -> list[str]:
    """The subjects in a mailbox, read with imaplib over TLS (the server's own certificate trusted)."""
    tls = ssl.create_default_context(cafile=str(Path(server.env["SUITE_DATA_DIR"]) / "tls" / "cert.pem"))
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=tls)
    try:
        m.login(user, PW)
        typ, _ = m.select(f'"{mailbox}"', readonly=True)
        assert typ == "OK", mailbox
        _, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [
            str(email.message_from_bytes(x[1], policy=default_policy)["Subject"]) for x in data if isinstance(x, tuple)
        ]
    finally:
        m.logout()


async def test_filter_rule_from_the_browser_files_smtp_mail(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            context, page, watch = await _signed_in(browser, web_server, "/settings/filters", BOB)
            await page.get_by_role("heading", name="Filters").wait_for()
            await page.get_by_role("button", name="Add rule").click()
            await page.get_by_label("Rule name").fill("Invoices")
            await page.get_by_label("Condition 1 field").select_option("subject")
            await page.get_by_label("Condition 1 test").select_option("contains")
            await page.get_by_label("Condition 1 value").fill(HOSTILE)
            await page.get_by_label("Action 1", exact=True).select_option("move")
            await page.get_by_label("Action 1 folder").fill(FOLDER)
            await page.screenshot(path=webfix.shot_path("settings-filters-editor-desktop"), full_page=True)
            await page.get_by_role("button", name="Save rule").click()
            await page.get_by_role("status").filter(has_text="Rule saved.").wait_for()

            # a second rule; moved above the first, turned off and on, then deleted
            await page.get_by_role("button", name="Add rule").click()
            await page.get_by_label("Rule name").fill("Big mail")
            await page.get_by_label("Condition 1 field").select_option("size")
            await page.get_by_label("Condition 1 size in KB").fill("5000")
            await page.get_by_label("Action 1", exact=True).select_option("flag")
            await page.get_by_role("button", name="Save rule").click()
            rules = page.get_by_role("list", name="Rules").locator(":scope > li")
            await rules.nth(1).filter(has_text="Big mail").wait_for()
            await page.get_by_role("button", name="Move Big mail up").click()
            await rules.nth(0).filter(has_text="Big mail").wait_for()
            await rules.nth(1).filter(has_text="Invoices").wait_for()
            await page.get_by_role("button", name="Turn off Big mail").click()
            await page.get_by_role("button", name="Turn on Big mail").wait_for()

            # the script, read-only: the value is one quoted string, the folder a fileinto
            await page.get_by_text("Sieve script", exact=False).first.click()
            raw = await page.get_by_label("Sieve script").inner_text()
            assert 'fileinto :create "Invoices/2026";' in raw
            assert 'header :contains "subject" "Invoice \\"Q3\\" \\\\ paid\\"; discard; #"' in raw
            assert "discard;" not in raw.replace('paid\\"; discard; #', "")
            await page.screenshot(path=webfix.shot_path("settings-filters-desktop"), full_page=True)
            await page.get_by_role("button", name="Delete Big mail").click()
            await page.get_by_role("button", name="Delete Big mail").wait_for(state="detached")
            assert await rules.count() == 1
            _clean(watch)
            await context.close()

            # mail over SMTP: the matching one lands in the folder, the other in INBOX
            ports = web_server.ports
            await asyncio.to_thread(_deliver, ports["smtp"], f"Re: {HOSTILE} (March)", BOB)
            await asyncio.to_thread(_deliver, ports["smtp"], "Lunch?", BOB)
            assert await asyncio.to_thread(_subjects, web_server, BOB, FOLDER) == [f"Re: {HOSTILE} (March)"]
            assert await asyncio.to_thread(_subjects, web_server, BOB, "INBOX") == ["Lunch?"]

            # the phone: the list and the editor fit 375 px
            context, page, watch = await _signed_in(browser, web_server, "/settings/filters", BOB, webfix.PHONE)
            await page.get_by_role("button", name="Edit Invoices").click()
            await page.get_by_label("Condition 1 value").wait_for()
            assert await page.get_by_label("Condition 1 value").input_value() == HOSTILE
            assert await page.evaluate(WIDER_THAN_SCREEN) <= 1
            await page.screenshot(path=webfix.shot_path("settings-filters-phone"), full_page=True)
            await context.close()
        finally:
            await browser.close()


async def test_out_of_office_from_the_browser_replies_once_per_sender(web_server):
    async_playwright = webfix.require_browser()
    ports = web_server.ports
    loop = asyncio.get_running_loop()
    transport, dns = await loop.create_datagram_endpoint(smtp_conftest.DnsStub, local_addr=("127.0.0.1", ports["dns"]))
    dns.add("remote.test", "MX", "10 mx.remote.test.")
    dns.add("mx.remote.test", "A", "127.0.0.1")
    from aiosmtpd.controller import Controller

    received: list[tuple[str, list[str], bytes]] = []

    class Remote:
        async def handle_DATA(self, server, session, envelope):
            received.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
            return "250 2.0.0 OK"

    remote = Controller(Remote(), hostname="127.0.0.1", port=ports["outbound"])
    remote.start()
    try:
        async with async_playwright() as p:
            browser = await webfix.launch(p)
            try:
                context, page, watch = await _signed_in(browser, web_server, "/settings/out-of-office", CAROL)
                await page.get_by_role("heading", name="Out of office").wait_for()
                await page.get_by_label("Send automatic replies").check()
                await page.get_by_label("Subject").fill("Away until Monday")
                await page.get_by_label("Message").fill("I am away; back on Monday.")
                await page.screenshot(path=webfix.shot_path("settings-vacation-desktop"), full_page=True)
                await page.get_by_role("button", name="Save").click()
                await page.get_by_role("status").filter(has_text="Automatic replies are on.").wait_for()
                await page.reload()
                await page.get_by_label("Subject").wait_for()
                assert await page.get_by_label("Send automatic replies").is_checked()
                assert await page.get_by_label("Message").input_value() == "I am away; back on Monday."
                _clean(watch)
                await context.close()

                context, page, watch = await _signed_in(
                    browser, web_server, "/settings/out-of-office", CAROL, webfix.PHONE
                )
                await page.get_by_label("Message").wait_for()
                assert await page.evaluate(WIDER_THAN_SCREEN) <= 1
                await page.screenshot(path=webfix.shot_path("settings-vacation-phone"), full_page=True)
                await context.close()
            finally:
                await browser.close()

        for subject, frm in (("one", "ann@remote.test"), ("two", "ann@remote.test"), ("three", "ben@remote.test")):
            await asyncio.to_thread(_deliver, ports["smtp"], subject, CAROL, frm)

        def queue_empty() -> bool:  # then a second reply to the same sender would have gone out too
            return web_server.cli("queue", "list").stdout.strip() == "queue is empty"

        await async_wait_until(lambda: len(received) >= 2, timeout=30, what="two replies at the loopback MX")
        await async_wait_until(lambda: asyncio.to_thread(queue_empty), timeout=30, interval=0.5, what="queue drained")
        assert sorted(r[1][0] for r in received) == ["ann@remote.test", "ben@remote.test"]  # once per sender
        for mail_from, _, data in received:
            reply = email.message_from_bytes(data, policy=default_policy)
            assert mail_from == "<>" and reply["Auto-Submitted"] == "auto-replied"  # RFC 3834
            assert reply["Subject"] == "Away until Monday" and "back on Monday" in reply.get_content()
        assert len(await asyncio.to_thread(_subjects, web_server, CAROL, "INBOX")) == 3  # all kept
    finally:
        remote.stop()
        transport.close()


async def test_set_up_a_mail_app_page(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            for viewport, name in ((webfix.DESKTOP, "desktop"), (webfix.PHONE, "phone")):
                context, page, watch = await _signed_in(browser, web_server, "/settings", ALICE, viewport)
                await (
                    page.get_by_role("navigation", name="Settings")
                    .get_by_role("link", name="Set up a mail app")
                    .click()
                )
                tabs = page.get_by_role("tablist", name="Mail apps")
                for client in (
                    "Thunderbird",
                    "iPhone and iPad",
                    "Apple Mail on a Mac",
                    "Android",
                    "Outlook",
                    "Other apps",
                ):
                    await tabs.get_by_role("tab", name=client).wait_for()
                await page.get_by_role("link", name="Create an app password").wait_for()
                await tabs.get_by_role("tab", name="iPhone and iPad").click()
                qr = page.get_by_role("img", name="QR code for the iPhone profile").locator("svg")
                await qr.wait_for()
                assert (await qr.bounding_box())["width"] >= 150
                await page.screenshot(path=webfix.shot_path(f"settings-mailapps-ios-{name}"), full_page=True)
                assert await page.evaluate(WIDER_THAN_SCREEN) <= 1
                await tabs.get_by_role("tab", name="Apple Mail on a Mac").click()
                async with page.expect_download() as info:
                    await page.get_by_role("link", name="Download the profile").click()
                download = await info.value
                body = Path(await download.path()).read_bytes()
                profile = plistlib.loads(body)
                assert profile["PayloadContent"][0]["EmailAddress"] == ALICE
                assert PW.encode() not in body and b"<key>Password</key>" not in body
                await tabs.get_by_role("tab", name="Other apps").click()
                table = page.get_by_role("table", name="Server settings")
                await table.get_by_role("cell", name=str(web_server.ports["imaps"]), exact=True).wait_for()
                await page.screenshot(path=webfix.shot_path(f"settings-mailapps-other-{name}"), full_page=True)
                assert await page.evaluate(WIDER_THAN_SCREEN) <= 1
                _clean(watch)
                await context.close()
        finally:
            await browser.close()
