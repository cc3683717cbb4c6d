"""Webmail in Chromium against `suite serve`, mail delivered over SMTP (smtplib): read, reply, reply
all, forward, drafts, search, move, delete and restore, live updates, hostile mail, the phone layout."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import os
import re
import smtplib
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx

from suite.testing import TEST_DATA

_spec = importlib.util.spec_from_file_location("suite_e2e_webfix", Path(__file__).with_name("webfix.py"))
webfix = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(webfix)
web_server = webfix.web_server
ALICE, BOB, PW = webfix.ALICE, webfix.BOB, webfix.PW
CAROL = webfix.CAROL


def deliver(server, msg: EmailMessage | bytes, to: list[str], sender: str = "sender@outside.test") -> None:
    """Over SMTP to the MX port, as a remote server would."""
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.ehlo("outside.test")
        data = msg if isinstance(msg, bytes) else msg.as_bytes(policy=policy.SMTP)
        s.sendmail(sender, to, data)


def message(
    subject: str, body: str, *, frm: str = "Dora Sender <dora@outside.test>", to: str = ALICE, **headers
) -> EmailMessage:
    m = EmailMessage()
    m["From"] = frm
    m["To"] = to
    m["Subject"] = subject
    for k, v in headers.items():
        m[k.replace("_", "-")] = v
    m.set_content(body)
    return m


async def wait_row(page, subject: str, timeout: float = 20_000):
    row = page.locator(".msg-row", has=page.get_by_text(subject, exact=True))
    await row.first.wait_for(timeout=timeout)
    return row.first


def jmap_session(server, who: str = ALICE) -> tuple[httpx.Client, dict]:
    c = httpx.Client(base_url=server.base, auth=(who, PW), timeout=20)
    return c, c.get("/.well-known/jmap").json()


def jmap_call(server, calls: list, who: str = ALICE) -> dict:
    c, s = jmap_session(server, who)
    acct = s["primaryAccounts"]["urn:ietf:params:jmap:mail"]
    body = {
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:submission"],
        "methodCalls": [[n, {"accountId": acct, **a}, i] for n, a, i in calls],
    }
    r = c.post("/jmap/api", json=body)
    assert r.status_code == 200, r.text
    return {i: a for _, a, i in r.json()["methodResponses"]}


def submissions(server, who: str = ALICE) -> list[dict]:
    """The account's EmailSubmissions as the server has them (RFC 8621 §7)."""
    props = ["emailId", "undoStatus", "envelope"]
    return jmap_call(server, [["EmailSubmission/get", {"ids": None, "properties": props}, "s"]], who)["s"]["list"]


def find_emails(server, who: str, **filt) -> list[dict]:
    r = jmap_call(
        server,
        [
            ["Mailbox/get", {"ids": None, "properties": ["name", "role"]}, "m"],
            ["Email/query", {"filter": filt}, "q"],
            [
                "Email/get",
                {
                    "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                    "properties": ["subject", "mailboxIds", "keywords", "to", "cc", "inReplyTo", "references",
                                   "messageId", "attachments"],
                    "bodyProperties": ["partId", "blobId", "size", "name", "type"],
                },
                "g",
            ],
        ],
        who,
    )  # fmt: skip
    names = {m["id"]: m["role"] or m["name"] for m in r["m"]["list"]}
    for e in r["g"]["list"]:
        e["boxes"] = sorted(names[b] for b in e["mailboxIds"])
    return r["g"]["list"]


async def poll(fn, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


async def open_app(p, server, viewport=webfix.DESKTOP, who: str = ALICE, path: str = "/mail"):
    browser = await webfix.launch(p)
    context = await browser.new_context(base_url=server.base, viewport=viewport)
    page = await context.new_page()
    watch = webfix.PageWatch(page, server.base)
    await page.goto(path)
    await webfix.sign_in(page, who)
    return browser, page, watch


async def test_read_reply_forward_and_drafts(web_server):
    async_playwright = webfix.require_browser()
    deliver(
        web_server,
        message(
            "Quarterly figures",
            "Hello Alice,\n\nThe figures are at https://example.org/figures?q=1 as promised.\n\n"
            "> Can you send the figures?\n> Thanks\n\nDora",
            to=f"{ALICE}, {CAROL}",
            Message_ID="<figures-1@outside.test>",
        ),
        [ALICE],
    )
    html_msg = message("Newsletter with HTML", "plain part")
    html_msg.add_alternative(
        '<h2>Big news</h2><p>Read <a href="https://example.org/news">the news</a>.</p>'
        '<img src="http://tracker.evil.test/pixel.gif" alt="">',
        subtype="html",
    )
    deliver(web_server, html_msg, [ALICE])
    att = message("Contract attached", "See the attachment.")
    att.add_attachment(
        b"%PDF-1.4 fake pdf bytes\n" * 100, maintype="application", subtype="pdf", filename="contract.pdf"
    )
    deliver(web_server, att, [ALICE])

    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))  # the Inbox, by its JMAP id
            inbox_url = page.url
            for subject in ("Quarterly figures", "Newsletter with HTML", "Contract attached"):
                await wait_row(page, subject)
            inbox_link = page.get_by_role("navigation", name="Mailboxes").get_by_role("link", name=re.compile("Inbox"))
            await inbox_link.get_by_text("3").wait_for()  # unread count
            await page.screenshot(path=webfix.shot_path("mail-list-desktop"))

            # plain text: links and folded quotes
            await (await wait_row(page, "Quarterly figures")).get_by_role("link").click()
            await page.wait_for_url(re.compile(r"/mail/[^/]+/[^/]+$"))
            reader = page.get_by_role("region", name="Reader")
            await reader.get_by_role("heading", name="Quarterly figures").wait_for()
            link = reader.get_by_role("link", name="https://example.org/figures?q=1")
            assert await link.get_attribute("target") == "_blank"
            assert await link.get_attribute("rel") == "noopener noreferrer"
            quote = reader.locator("details.quote")
            assert not await quote.get_attribute("open")
            await reader.get_by_text("Show quoted text").click()
            await reader.get_by_text("Can you send the figures?").wait_for()
            await inbox_link.get_by_text("2").wait_for()  # opened = read
            await page.screenshot(path=webfix.shot_path("mail-reader-desktop"))
            # deep link: a reload opens the same message
            await page.reload()
            await page.get_by_role("region", name="Reader").get_by_role("heading", name="Quarterly figures").wait_for()

            # HTML: in the sandboxed frame, remote image blocked until "Show images"
            await page.goto(inbox_url)
            await (await wait_row(page, "Newsletter with HTML")).get_by_role("link").click()
            frame_el = page.locator("iframe.html-frame")
            await frame_el.wait_for()
            assert await frame_el.get_attribute("sandbox") == "allow-popups allow-popups-to-escape-sandbox"
            frame = page.frame_locator("iframe.html-frame")
            await frame.get_by_role("heading", name="Big news").wait_for()
            news = frame.get_by_role("link", name="the news")
            assert await news.get_attribute("rel") == "noopener noreferrer"
            assert await news.get_attribute("target") == "_blank"
            assert not watch.foreign()
            await page.get_by_role("button", name="Show images").click()
            await poll(lambda: watch.foreign(), "the remote image after Show images")
            assert watch.foreign() == ["http://tracker.evil.test/pixel.gif"]
            watch.requests.clear()
            await page.screenshot(path=webfix.shot_path("mail-html-desktop"))

            # attachment: listed with its size, downloads as an attachment
            await page.goto(inbox_url)
            await (await wait_row(page, "Contract attached")).get_by_role("link").click()
            att_link = page.get_by_role("list", name="Attachments").get_by_role("link", name="contract.pdf")
            await att_link.wait_for()
            await page.get_by_role("list", name="Attachments").get_by_text("2.3 KB").wait_for()
            r = await page.request.get(await att_link.get_attribute("href"))
            assert r.status == 200 and r.headers["content-disposition"].startswith("attachment")
            assert (await r.body()).startswith(b"%PDF-1.4 fake pdf bytes")

            # reply all: To the sender, Cc the other recipient, never me; In-Reply-To/References set
            await page.goto(inbox_url)
            await (await wait_row(page, "Quarterly figures")).get_by_role("link").click()
            await page.get_by_role("button", name="Reply all").click()
            dialog = page.get_by_role("dialog", name="Compose")
            assert await dialog.get_by_label("To", exact=True).input_value() == "Dora Sender <dora@outside.test>"
            assert await dialog.get_by_label("Cc", exact=True).input_value() == CAROL
            assert await dialog.get_by_label("Subject", exact=True).input_value() == "Re: Quarterly figures"
            assert "> Can you send the figures?" in await dialog.get_by_label("Message", exact=True).input_value()
            await dialog.get_by_label("Message", exact=True).press("Control+Home")
            await dialog.get_by_label("Message", exact=True).type("Thanks Dora, got them.")
            await dialog.get_by_text("Draft saved").wait_for()  # saved as you type
            await page.screenshot(path=webfix.shot_path("mail-compose-desktop"))
            drafts = await poll(lambda: find_emails(web_server, ALICE, hasKeyword="$draft"), "the draft")
            assert drafts[0]["subject"] == "Re: Quarterly figures" and drafts[0]["boxes"] == ["drafts"]
            await dialog.get_by_role("button", name="Send").click()
            await page.get_by_role("status").filter(has_text="Sending…").wait_for()
            await page.get_by_role("status").filter(has_text="Message sent").wait_for(timeout=20_000)
            sent = await poll(
                lambda: [e for e in find_emails(web_server, ALICE, text="got them") if e["boxes"] == ["sent"]],
                "the reply in Sent",
            )
            assert sent[0]["inReplyTo"] == ["figures-1@outside.test"]
            assert sent[0]["references"] == ["figures-1@outside.test"]
            assert [a["email"] for a in sent[0]["cc"]] == [CAROL]
            assert not find_emails(web_server, ALICE, hasKeyword="$draft")  # the draft is gone
            # carol is local: the reply reaches her
            await poll(lambda: find_emails(web_server, CAROL, subject="Re: Quarterly figures"), "carol's copy")

            # forward keeps the attachment (same blob, no upload); undo brings the message back
            await page.goto(inbox_url)
            await (await wait_row(page, "Contract attached")).get_by_role("link").click()
            await page.get_by_role("button", name="Forward").click()
            dialog = page.get_by_role("dialog", name="Compose")
            assert await dialog.get_by_label("Subject", exact=True).input_value() == "Fwd: Contract attached"
            await dialog.get_by_role("list", name="Attachments").get_by_text("contract.pdf").wait_for()
            await dialog.get_by_label("To", exact=True).fill(BOB)
            await dialog.get_by_role("button", name="Send").click()
            await page.get_by_role("status").filter(has_text="Sending…").wait_for()
            # undo is the server's: the submission is held (RFC 4865 HOLDFOR) and pending ...
            held = await poll(
                lambda: [s for s in submissions(web_server) if s["undoStatus"] == "pending"], "the held submission"
            )
            assert held[0]["envelope"]["mailFrom"]["parameters"] == {"HOLDFOR": "5"}
            await page.get_by_role("button", name="Undo").click()
            dialog = page.get_by_role("dialog", name="Compose")
            assert await dialog.get_by_label("To", exact=True).input_value() == BOB
            # ... and Undo canceled it there (RFC 8621 §7.5); the message is a draft again
            got = {s["id"]: s for s in submissions(web_server)}
            assert got[held[0]["id"]]["undoStatus"] == "canceled"
            back = find_emails(web_server, ALICE, subject="Fwd: Contract attached")
            assert any(e["boxes"] == ["drafts"] and e["keywords"].get("$draft") for e in back)
            assert not find_emails(web_server, BOB, subject="Fwd: Contract attached")
            await dialog.get_by_role("button", name="Send").click()
            await page.get_by_role("status").filter(has_text="Message sent").wait_for(timeout=20_000)
            got = await poll(lambda: find_emails(web_server, BOB, subject="Fwd: Contract attached"), "bob's copy")
            assert [a["name"] for a in got[0]["attachments"]] == ["contract.pdf"]

            # a draft saved, closed, and reopened from Drafts
            await page.get_by_role("button", name="New message").click()
            dialog = page.get_by_role("dialog", name="Compose")
            await dialog.get_by_label("To", exact=True).fill(BOB)
            await dialog.get_by_label("Subject", exact=True).fill("Half-written thoughts")
            await dialog.get_by_label("Message", exact=True).fill("To be continued")
            await dialog.get_by_text("Draft saved").wait_for()
            await dialog.get_by_role("button", name="Close (keep draft)").click()
            await page.get_by_role("navigation", name="Mailboxes").get_by_role("link", name="Drafts").click()
            await (await wait_row(page, "Half-written thoughts")).get_by_role("link").click()
            await page.get_by_role("button", name="Edit draft").click()
            dialog = page.get_by_role("dialog", name="Compose")
            assert await dialog.get_by_label("Message", exact=True).input_value() == "To be continued"
            assert await dialog.get_by_label("To", exact=True).input_value() == BOB
            await dialog.get_by_role("button", name="Discard").click()
            await poll(lambda: not find_emails(web_server, ALICE, hasKeyword="$draft"), "the discarded draft gone")
            assert not watch.dialogs and not watch.foreign(), (watch.dialogs, watch.foreign())
            assert not [e for e in watch.errors if "Content Security Policy" in e], watch.errors
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-read-reply-forward"))
            print("page errors:", watch.errors)
            print("status texts:", await page.get_by_role("status").all_text_contents())
            raise
        finally:
            await browser.close()


def imap_flag(server, who: str, subject: str) -> None:
    """Another client (IMAP, imaplib) flags a message."""
    import imaplib
    import ssl

    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as imap:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the server's self-signed certificate
        imap.starttls(ctx)
        imap.login(who, PW)
        imap.select("INBOX")
        typ, data = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
        assert typ == "OK" and data[0], data
        typ, _ = imap.uid("STORE", data[0].split()[0].decode(), "+FLAGS", r"(\Flagged)")
        assert typ == "OK"


async def test_search_move_delete_restore_folders_and_live_updates(web_server):
    async_playwright = webfix.require_browser()
    who = BOB
    inv = message("Invoice 2041", "Please pay invoice 2041 by Friday.", frm="Billing <billing@outside.test>", to=who)
    inv.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="invoice.csv")
    deliver(web_server, inv, [who])
    deliver(web_server, message("Lunch on Friday", "Shall we have lunch?", to=who), [who])
    deliver(web_server, message("Old newsletter", "Nothing to see.", to=who), [who])
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server, who=who)
        try:
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            inbox_url = page.url
            mailboxes = page.get_by_role("navigation", name="Mailboxes")
            for s in ("Invoice 2041", "Lunch on Friday", "Old newsletter"):
                await wait_row(page, s)

            # search: operators and free text, results link back into the message
            search = page.get_by_role("searchbox", name="Search")
            await search.fill("from:billing invoice")
            await search.press("Enter")
            await page.wait_for_url(re.compile(r"/mail/search\?q="))
            await (await wait_row(page, "Invoice 2041")).locator("mark").first.wait_for()  # SearchSnippet
            assert await page.locator(".msg-row", has_text="Lunch on Friday").count() == 0
            await search.fill("has:attachment")
            await search.press("Enter")
            await wait_row(page, "Invoice 2041")
            for s in ("Lunch on Friday", "Old newsletter"):
                assert await page.locator(".msg-row", has_text=s).count() == 0
            await search.fill("lunch")
            await search.press("Enter")
            await (await wait_row(page, "Lunch on Friday")).get_by_role("link").click()
            await page.get_by_role("region", name="Reader").get_by_role("heading", name="Lunch on Friday").wait_for()
            await page.screenshot(path=webfix.shot_path("mail-search-desktop"))
            await page.go_back()
            await wait_row(page, "Lunch on Friday")

            # drag a message onto Archive
            await page.goto(inbox_url)
            row = await wait_row(page, "Lunch on Friday")
            await row.drag_to(mailboxes.get_by_role("link", name="Archive"))
            await page.locator(".msg-row", has_text="Lunch on Friday").wait_for(state="detached")
            got = await poll(lambda: find_emails(web_server, who, subject="Lunch on Friday"), "the moved message")
            assert got[0]["boxes"] == ["archive"]
            # the toast's Undo puts it back
            await page.get_by_role("status").get_by_role("button", name="Undo").click()
            await wait_row(page, "Lunch on Friday")
            assert find_emails(web_server, who, subject="Lunch on Friday")[0]["boxes"] == ["inbox"]
            await (await wait_row(page, "Lunch on Friday")).drag_to(mailboxes.get_by_role("link", name="Archive"))
            await page.locator(".msg-row", has_text="Lunch on Friday").wait_for(state="detached")

            # folders: create, nest, rename
            await page.get_by_role("button", name="New folder").click()
            await page.get_by_label("Folder name").fill("Projects")
            await page.get_by_role("button", name="Create").click()
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            await page.get_by_role("heading", name="Projects", level=1).wait_for()
            await page.get_by_role("button", name="New folder").click()
            await page.get_by_label("Folder name").fill("Acme")
            assert await page.get_by_label("Inside").input_value() != ""  # inside the open folder
            await page.get_by_role("button", name="Create").click()
            await mailboxes.locator("li li").get_by_role("link", name="Acme").wait_for()  # nested
            await page.get_by_role("button", name="Rename").click()
            await page.get_by_label("Folder name").fill("Acme Corp")
            await page.get_by_role("button", name="Rename").click()
            await mailboxes.get_by_role("link", name="Acme Corp").wait_for()

            # move with the reader's "Move to…", then delete to Trash, then restore from Trash
            await page.goto(inbox_url)
            await (await wait_row(page, "Invoice 2041")).get_by_role("link").click()
            await page.get_by_label("Move to").select_option(label="Projects")
            await page.get_by_role("status").filter(has_text="Moved to Projects").wait_for()
            assert (await poll(lambda: find_emails(web_server, who, subject="Invoice 2041"), "moved"))[0]["boxes"] == [
                "Projects"
            ]
            await mailboxes.get_by_role("link", name="Projects").click()
            await (await wait_row(page, "Invoice 2041")).get_by_role("link").click()
            await page.get_by_role("toolbar", name="Message actions").get_by_role("button", name="Delete").click()
            await page.get_by_role("status").filter(has_text="Moved 1 message to Trash").wait_for()
            assert (await poll(lambda: find_emails(web_server, who, subject="Invoice 2041"), "trash"))[0]["boxes"] == [
                "trash"
            ]
            await mailboxes.get_by_role("link", name="Trash").click()
            await (await wait_row(page, "Invoice 2041")).get_by_role("link").click()
            await page.get_by_role("button", name="Restore").click()
            await poll(
                lambda: find_emails(web_server, who, subject="Invoice 2041")[0]["boxes"] == ["inbox"],
                "restored to Inbox",
            )

            # select many: mark read, flag, then delete
            await page.goto(inbox_url)
            for s in ("Invoice 2041", "Old newsletter"):
                await (await wait_row(page, s)).get_by_role("checkbox").check()
            bar = page.get_by_role("toolbar", name="Selected messages")
            await bar.get_by_text("2 selected").wait_for()
            await bar.get_by_role("button", name="Mark read").click()
            await bar.get_by_role("button", name="Mark read").wait_for(state="detached")
            await poll(
                lambda: all(
                    e["keywords"].get("$seen")
                    for e in find_emails(web_server, who)
                    if e["subject"] in ("Invoice 2041", "Old newsletter")
                ),
                "both marked read",
            )

            # live: a new delivery shows up without reload; a flag set over IMAP too
            deliver(web_server, message("Fresh off the wire", "Live update.", to=who), [who])
            await wait_row(page, "Fresh off the wire", timeout=20_000)
            imap_flag(web_server, who, "Old newsletter")
            await (await wait_row(page, "Old newsletter")).get_by_label("Flagged").wait_for(timeout=20_000)
            await page.screenshot(path=webfix.shot_path("mail-live-desktop"))

            # the folder with a nested one is deleted (the test confirms the dialog)
            await mailboxes.get_by_role("link", name="Acme Corp").click()
            watch.accept_dialogs = True
            await page.get_by_role("button", name="Delete folder").click()
            await mailboxes.get_by_role("link", name="Acme Corp").wait_for(state="detached")
            assert watch.dialogs == [
                'confirm: Delete the folder "Acme Corp"? Its messages stay in their other folders or go with it.'
            ]
            assert not watch.foreign()
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-search-move"))
            print("page errors:", watch.errors)
            print("status texts:", await page.get_by_role("status").all_text_contents())
            raise
        finally:
            await browser.close()


async def test_hostile_mail_delivered_over_smtp(web_server):
    """The corpus arrives over SMTP and is opened in the real reader: no dialog, no script, no request
    for another host; markup in From/Subject/file names is shown as text."""
    async_playwright = webfix.require_browser()
    who = CAROL
    corpus = sorted((TEST_DATA / "hostile-html").glob("*.eml"))
    for path in corpus:
        deliver(web_server, path.read_bytes(), [who], sender="attacker@evil.test")
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server, who=who)
        try:
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            inbox_url = page.url
            subjects = [f"Hostile HTML: {p.stem}" for p in corpus if p.stem != "markup-headers"]
            for s in subjects:
                await (await wait_row(page, s)).get_by_role("link").click()
                await page.get_by_role("region", name="Reader").get_by_role("heading", name=s).wait_for()
                await page.locator("iframe.html-frame").wait_for()
                await page.wait_for_timeout(100)  # let anything a payload scheduled fire
                assert not watch.dialogs, (s, watch.dialogs)
                assert not watch.foreign(), (s, watch.foreign())
                assert not [e for e in watch.errors if "Blocked script execution" in e], (s, watch.errors)
                await page.goto(inbox_url)
            # markup in headers: text everywhere (list, reader, attachment name), never markup
            subject = "<script>alert('subject')</script><b>bold?</b>"
            row = await wait_row(page, subject)
            assert await row.locator(".from").text_content() == "<img src=x onerror=alert('from')>"
            await row.get_by_role("link").click()
            reader = page.get_by_role("region", name="Reader")
            await reader.get_by_role("heading", name=subject).wait_for()
            await reader.get_by_role("link", name="<img src=x onerror=alert('file')>.html").wait_for()
            assert await page.locator("b", has_text="bold?").count() == 0
            assert await page.locator("img[src='x']").count() == 0
            await page.screenshot(path=webfix.shot_path("mail-hostile-headers-desktop"))
            assert not watch.dialogs and not watch.foreign(), (watch.dialogs, watch.foreign())
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-hostile"))
            print("page errors:", watch.errors)
            raise
        finally:
            await browser.close()


async def test_phone_mail(web_server):
    async_playwright = webfix.require_browser()
    deliver(web_server, message("Phone check", "Reading this on a small screen.\n\n> quoted\n", to=ALICE), [ALICE])
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server, viewport=webfix.PHONE)
        try:
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            row = await wait_row(page, "Phone check")
            # one pane at a time: the list, no reader, no folders
            assert not await page.get_by_role("region", name="Reader").is_visible()
            assert not await page.get_by_role("navigation", name="Mailboxes").is_visible()
            await page.screenshot(path=webfix.shot_path("mail-list-phone"))
            await row.get_by_role("link").click()
            reader = page.get_by_role("region", name="Reader")
            await reader.get_by_role("heading", name="Phone check").wait_for()
            assert not await page.get_by_role("region", name="Messages").is_visible()
            await page.screenshot(path=webfix.shot_path("mail-reader-phone"))
            width = await page.evaluate(
                "Math.max(...[...document.querySelectorAll('main *')].filter((e) => e.offsetParent)"
                ".map((e) => e.getBoundingClientRect().right))"
            )
            assert width <= webfix.PHONE["width"] + 0.5, width
            await reader.get_by_role("link", name="Back to the list").click()
            await wait_row(page, "Phone check")
            await page.get_by_role("button", name="Folders").click()
            await page.get_by_role("navigation", name="Mailboxes").get_by_role("link", name="Sent").wait_for()
            await page.screenshot(path=webfix.shot_path("mail-folders-phone"))
            await page.get_by_role("button", name="New message").click()
            dialog = page.get_by_role("dialog", name="Compose")
            for label in ("To", "Cc", "Subject", "Message"):
                if label == "Cc":
                    await dialog.get_by_role("button", name="Cc/Bcc").click()
                box = await dialog.get_by_label(label, exact=True).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= webfix.PHONE["width"] + 0.5, (label, box)
            await dialog.get_by_role("button", name="Send").wait_for()
            await page.screenshot(path=webfix.shot_path("mail-compose-phone"))
            assert not watch.foreign()
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-phone"))
            print("page errors:", watch.errors)
            raise
        finally:
            await browser.close()


async def test_compose_with_uploaded_attachment(web_server, tmp_path):
    async_playwright = webfix.require_browser()
    data = bytes(range(256)) * 1200  # 300 KiB
    f = tmp_path / "figures.bin"
    f.write_bytes(data)
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            await page.get_by_role("button", name="New message").click()
            dialog = page.get_by_role("dialog", name="Compose")
            await dialog.get_by_label("To", exact=True).fill(f"Bob <{BOB}>")
            await dialog.get_by_label("Subject", exact=True).fill("Numbers inside")
            await dialog.get_by_label("Message", exact=True).fill("The file is attached.")
            await dialog.get_by_label("Attach files").set_input_files(str(f))
            item = dialog.get_by_role("list", name="Attachments").get_by_role("listitem").filter(has_text="figures.bin")
            await item.wait_for()
            await item.get_by_role("progressbar").wait_for(state="detached")  # uploaded
            await item.get_by_text("300 KB").wait_for()
            await dialog.get_by_role("button", name="Send").click()
            await page.get_by_role("status").filter(has_text="Message sent").wait_for(timeout=20_000)
            got = await poll(lambda: find_emails(web_server, BOB, subject="Numbers inside"), "bob's copy")
            (att,) = got[0]["attachments"]
            assert att["name"] == "figures.bin" and att["size"] == len(data)
            c, s = jmap_session(web_server, BOB)
            url = (
                s["downloadUrl"]
                .replace("{accountId}", s["primaryAccounts"]["urn:ietf:params:jmap:mail"])
                .replace("{blobId}", att["blobId"])
                .replace("{name}", "x")
                .replace("{type}", "application/octet-stream")
            )
            assert c.get(url).content == data
            assert not watch.foreign()
        finally:
            await browser.close()


async def test_big_mailbox_is_windowed_and_paged(web_server):
    """Only the rows on screen are in the page and only their pages are fetched; scrolling loads more."""
    async_playwright = webfix.require_browser()
    who = "dave@example.test"
    web_server.cli("user", "add", who, "--password-stdin", stdin=PW + "\n")
    n = 160
    with smtplib.SMTP("127.0.0.1", web_server.ports["smtp"], timeout=60) as s:
        s.ehlo("outside.test")
        for i in range(n):
            m = message(f"Bulk {i:03d}", f"Message number {i}.", to=who)
            s.sendmail("bulk@outside.test", [who], m.as_bytes(policy=policy.SMTP))
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        page = await (await browser.new_context(base_url=web_server.base, viewport=webfix.DESKTOP)).new_page()
        watch = webfix.PageWatch(page, web_server.base)
        queries = []  # every JMAP request of the page, from the first
        page.on(
            "request", lambda r: queries.append(r.post_data) if r.url.endswith("/jmap/api") and r.post_data else None
        )
        await page.goto("/mail")
        await webfix.sign_in(page, who)
        try:
            await page.get_by_text(f"{n} conversations").wait_for()
            await wait_row(page, f"Bulk {n - 1:03d}")  # newest first
            rows = await page.locator(".msg-row").count()
            assert rows < 40, rows  # a window, not the mailbox
            positions = {m.group(1) for q in queries for m in [re.search(r'"position":(\d+)', q)] if m}
            assert positions == {"0"}, positions  # only the first page so far
            await page.locator(".list-scroll").evaluate("(el) => { el.scrollTop = el.scrollHeight; }")
            await wait_row(page, "Bulk 000")  # the oldest, at the bottom
            assert await page.locator(".msg-row").count() < 40
            positions = {m.group(1) for q in queries for m in [re.search(r'"position":(\d+)', q)] if m}
            assert "150" in positions and "50" not in positions, positions  # jumped to the last page only
            # keyboard: j/k walk the list in the reader, u goes back to it
            reader = page.get_by_role("region", name="Reader")
            await page.locator("body").press("j")
            await reader.get_by_role("heading", name=f"Bulk {n - 1:03d}").wait_for()
            await page.locator("body").press("j")
            await reader.get_by_role("heading", name=f"Bulk {n - 2:03d}").wait_for()
            await page.locator("body").press("k")
            await reader.get_by_role("heading", name=f"Bulk {n - 1:03d}").wait_for()
            await page.locator("body").press("u")
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            # by message instead of by conversation (Settings)
            await page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
            await page.get_by_label("Message list").select_option(label="Show every message")
            await page.get_by_role("navigation", name="Main").get_by_role("link", name="Mail").click()
            await page.get_by_text(f"{n} messages").wait_for()
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-windowed"))
            print("page errors:", watch.errors)
            raise
        finally:
            await browser.close()


async def compose_big_attachment(page, subject: str, text: str, path: Path, ready: str, encrypt: bool = False):
    """Compose to Bob with ``path`` attached — too big to mail, so it becomes a link (encrypted in the
    browser with ``encrypt``) — and wait until its list item says ``ready``; returns the dialog."""
    await page.get_by_role("button", name="New message").click()
    dialog = page.get_by_role("dialog", name="Compose")
    await dialog.get_by_label("To", exact=True).fill(BOB)
    await dialog.get_by_label("Subject", exact=True).fill(subject)
    await dialog.get_by_label("Message", exact=True).fill(text)
    if encrypt:
        await dialog.get_by_role("checkbox", name="Encrypt").check()
    await dialog.get_by_label("Attach files").set_input_files(str(path))
    item = dialog.get_by_role("list", name="Attachments").get_by_role("listitem").filter(has_text=path.name)
    await item.get_by_text(ready).wait_for(timeout=60_000)
    return dialog


async def send_and_wait(page, dialog) -> None:
    await dialog.get_by_role("button", name="Send").click()
    await page.get_by_role("status").filter(has_text="Message sent").wait_for(timeout=30_000)


async def bobs_text_without_attachments(server, subject: str) -> str:
    """The text of Bob's copy, once delivered; it must carry no attachment (the file went as a link)."""
    got = await poll(lambda: find_emails(server, BOB, subject=subject), "bob's copy")
    assert got[0]["attachments"] == []
    r = jmap_call(
        server,
        [
            [
                "Email/get",
                {"ids": [got[0]["id"]], "properties": ["bodyValues", "textBody"], "fetchTextBodyValues": True},
                "g",
            ]
        ],
        BOB,
    )
    return "".join(v["value"] for v in r["g"]["list"][0]["bodyValues"].values())


async def test_big_attachment_becomes_a_share_link(web_server, tmp_path):
    """A 30 MB file goes into the sender's Files and the message carries a link that downloads the
    same bytes logged out."""
    async_playwright = webfix.require_browser()
    data = (bytes(range(256)) * 4096) * 30  # 30 MiB
    f = tmp_path / "video.raw"
    f.write_bytes(data)
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            dialog = await compose_big_attachment(
                page, "The big file", "Too big to attach, so here is a link.", f, "link until"
            )
            await send_and_wait(page, dialog)
        finally:
            await browser.close()
    text = await bobs_text_without_attachments(web_server, "The big file")  # no 30 MB in the mail
    assert "video.raw (30 MB, until " in text, text
    url = re.search(r"(http://\S+/p/\S+)", text).group(1)  # the public page of the link
    with httpx.Client(timeout=60) as anonymous:  # logged out; a script following the link gets the bytes
        r = anonymous.get(url, follow_redirects=True)
        assert r.status_code == 200 and r.content == data
    # the file is in alice's Files, folder "Mail attachments"
    c = httpx.Client(base_url=web_server.base, timeout=20)
    assert c.post("/api/login", json={"address": ALICE, "password": PW}).status_code == 200
    listing = c.get("/api/files/list/Mail%20attachments").json()
    assert len(listing["children"]) >= 1 and listing["children"][0]["type"] == "folder"


async def test_big_attachment_encrypted_link(web_server, tmp_path):
    """ "Encrypt" in compose: a file too big to mail is encrypted in the browser (the encrypted-link
    format), the blob store holds no 4 KiB window of its plaintext, the key is only in the link's
    fragment in the message, and the recipient's browser, logged out, saves the same SHA-256."""
    async_playwright = webfix.require_browser()
    marker = b"PLAINTEXT-MARKER"  # every 256 bytes: any 4 KiB window of the plaintext holds it
    block = bytearray(os.urandom(12 * 1024 * 1024))
    for off in range(0, len(block), 256):
        block[off : off + 16] = marker
    data = bytes(block)
    f = tmp_path / "scan.tiff"
    f.write_bytes(data)
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            dialog = await compose_big_attachment(
                page,
                "The encrypted scan",
                "Encrypted, the key is in the link.",
                f,
                "encrypted link until",
                encrypt=True,
            )
            await page.screenshot(path=webfix.shot_path("mail-compose-encrypted-link"))
            await send_and_wait(page, dialog)
            text = await bobs_text_without_attachments(web_server, "The encrypted scan")
            assert "scan.tiff (12 MB, end-to-end encrypted, until " in text, text
            url = re.search(r"(http://\S+/p/[A-Za-z0-9_-]+#k1\.[A-Za-z0-9_-]{43})", text).group(1)
            key_text = url.rsplit("#", 1)[1]
            assert not any(key_text in u for u in watch.requests)  # the key never went to the server as a URL
            blobs = Path(web_server.env["SUITE_DATA_DIR"]) / "blobs"
            for b in blobs.rglob("*"):
                if b.is_file():
                    assert marker not in b.read_bytes(), f"plaintext in the blob store: {b}"
            # the recipient, logged out, in a new context
            visitor = await (
                await browser.new_context(base_url=web_server.base, viewport=webfix.PHONE, accept_downloads=True)
            ).new_page()
            await visitor.goto(url)
            await visitor.get_by_role("heading", name="scan.tiff").wait_for(timeout=60_000)
            async with visitor.expect_download(timeout=120_000) as dl:
                await visitor.get_by_role("button", name="Download").click()
            path = await (await dl.value).path()
            assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
            await visitor.get_by_role("status").filter(has_text="Decrypted and saved").wait_for()
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-compose-encrypted"))
            print("page errors:", watch.errors)
            raise
        finally:
            await browser.close()


async def test_desktop_notification_on_new_mail(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser = await webfix.launch(p)
        try:
            context = await browser.new_context(base_url=web_server.base, viewport=webfix.DESKTOP)
            await context.grant_permissions(["notifications"], origin=web_server.base)
            # record the page's notifications (an init script is the test's, not subject to the page's CSP)
            await context.add_init_script(
                "window.__notes = []; window.Notification = class extends Notification {"
                " constructor(t, o) { super(t, o); window.__notes.push([t, o && o.body]); } };"
            )
            page = await context.new_page()
            await page.goto("/settings")
            await webfix.sign_in(page, ALICE)
            await page.get_by_label("Desktop notifications for new mail").check()
            await page.get_by_role("navigation", name="Main").get_by_role("link", name="Mail").click()
            await page.get_by_role("navigation", name="Mailboxes").wait_for()
            deliver(web_server, message("Ping for the desktop", "hello", frm="Eve <eve@outside.test>"), [ALICE])
            await page.wait_for_function("() => window.__notes.length > 0", timeout=20_000)
            notes = await page.evaluate("window.__notes")
            assert ["Eve", "Ping for the desktop"] in notes, notes
        finally:
            await browser.close()


async def test_rich_text_message(web_server):
    async_playwright = webfix.require_browser()
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            await page.get_by_role("button", name="New message").click()
            dialog = page.get_by_role("dialog", name="Compose")
            await dialog.get_by_label("To", exact=True).fill(BOB)
            await dialog.get_by_label("Subject", exact=True).fill("Formatted")
            await dialog.get_by_role("button", name="Rich text").click()
            editor = dialog.get_by_role("textbox", name="Message")
            await editor.click()
            await page.keyboard.type("Plain and ")
            await dialog.get_by_role("button", name="Bold").click()
            await page.keyboard.type("bold")
            # a paste of markup goes in as text
            await editor.evaluate(
                "(el) => { const dt = new DataTransfer(); dt.setData('text/plain', ' <img src=x onerror=alert(1)>');"
                " dt.setData('text/html', '<img src=x onerror=alert(1)>');"
                " el.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true})); }"
            )
            await page.screenshot(path=webfix.shot_path("mail-compose-rich-desktop"))
            await dialog.get_by_role("button", name="Send").click()
            await page.get_by_role("status").filter(has_text="Message sent").wait_for(timeout=20_000)
            got = await poll(lambda: find_emails(web_server, BOB, subject="Formatted"), "bob's copy")
            r = jmap_call(
                web_server,
                [
                    [
                        "Email/get",
                        {"ids": [got[0]["id"]], "properties": ["bodyValues", "htmlBody", "textBody"],
                         "fetchAllBodyValues": True},
                        "g",
                    ]
                ],
                BOB,
            )  # fmt: skip
            e = r["g"]["list"][0]
            htmlpart = e["bodyValues"][e["htmlBody"][0]["partId"]]["value"]
            textpart = e["bodyValues"][e["textBody"][0]["partId"]]["value"]
            assert re.search(r"<b>bold|<strong>bold", htmlpart), htmlpart
            assert "<img" not in htmlpart and "&lt;img src=x onerror=alert(1)&gt;" in htmlpart, htmlpart
            assert "Plain and bold <img src=x onerror=alert(1)>" in textpart, textpart
            assert not watch.dialogs
        finally:
            await browser.close()


LONG_HTML = (
    "".join(
        f"<h2>Section {i}</h2><p>{'A paragraph of the long newsletter that wraps over several lines. ' * (3 + i % 4)}</p>"
        + (f"<table><tr><td>cell {i}a</td><td>cell {i}b</td></tr></table>" if i % 5 == 0 else "")
        for i in range(1, 61)
    )
    + "<p>THE END of the long newsletter</p>"
)


async def check_html_height(page, shot: str) -> None:
    """The frame is as tall as its body: the last line is inside the frame, and the frame does not scroll."""
    frame_el = page.locator("iframe.html-frame")
    await page.locator("iframe.html-frame[data-measured='yes']").wait_for()
    end = page.frame_locator("iframe.html-frame").get_by_text("THE END of the long newsletter")
    frame_box, end_box = await frame_el.bounding_box(), await end.bounding_box()
    assert frame_box and end_box
    assert end_box["y"] + end_box["height"] <= frame_box["y"] + frame_box["height"], (frame_box, end_box)
    assert frame_box["height"] > 2000, frame_box  # really long: no 75vh cap with a scrolling frame
    # the document inside fits the frame: nothing to scroll there (no second scrollbar)
    inner = (
        await page.frame_locator("iframe.html-frame")
        .locator("html")
        .evaluate("(e) => [e.scrollHeight, e.clientHeight]")
    )
    assert inner[0] <= inner[1], inner
    await end.scroll_into_view_if_needed()  # the reader scrolls to the last line
    await page.screenshot(path=webfix.shot_path(shot))


async def test_pdf_preview_and_html_height(web_server):
    """Issue 14 §2: a PDF attachment is previewed (pdf.js, loaded on first use, worker from our origin)
    and still downloads as an attachment; an HTML body gets a frame as tall as it is, desktop and phone."""
    async_playwright = webfix.require_browser()
    pdf = message("Report as PDF", "The report is attached.")
    pdf.add_attachment(webfix.small_pdf(), maintype="application", subtype="pdf", filename="report.pdf")
    deliver(web_server, pdf, [ALICE])
    long = message("Long newsletter", "plain version")
    long.add_alternative(f"<html><body>{LONG_HTML}</body></html>", subtype="html")
    deliver(web_server, long, [ALICE])
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            inbox_url = page.url
            await (await wait_row(page, "Long newsletter")).get_by_role("link").click()
            await check_html_height(page, "mail-long-html-end-desktop")
            assert not [u for u in watch.requests if "pdf-worker" in u], "pdf.js is loaded only when used"

            await page.goto(inbox_url)
            await (await wait_row(page, "Report as PDF")).get_by_role("link").click()
            preview = page.get_by_role("img", name="Preview of report.pdf, page 1 of 2")
            await preview.wait_for()
            await webfix.wait_ink(preview)
            await page.screenshot(path=webfix.shot_path("mail-pdf-desktop"))
            await page.get_by_role("button", name="Next page").click()
            await page.get_by_role("img", name="Preview of report.pdf, page 2 of 2").wait_for()
            assert [u for u in watch.requests if "/assets/pdf-worker-" in u and u.startswith(web_server.base)]
            href = (
                await page.get_by_role("list", name="Attachments")
                .get_by_role("link", name="report.pdf")
                .get_attribute("href")
            )
            r = await page.request.get(href)
            assert r.status == 200 and r.headers["content-disposition"].startswith("attachment")
            assert r.headers["x-content-type-options"] == "nosniff"
            assert (await r.body()) == webfix.small_pdf()
            assert not watch.foreign() and not watch.dialogs
            assert not [e for e in watch.errors if "Content Security Policy" in e], watch.errors

            await page.set_viewport_size(webfix.PHONE)
            await page.goto(inbox_url)
            await (await wait_row(page, "Long newsletter")).get_by_role("link").click()
            await check_html_height(page, "mail-long-html-end-phone")
            await page.goto(inbox_url)
            await (await wait_row(page, "Report as PDF")).get_by_role("link").click()
            preview = page.get_by_role("img", name="Preview of report.pdf, page 1 of 2")
            await preview.wait_for()
            box = await preview.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= webfix.PHONE["width"], box
            await page.screenshot(path=webfix.shot_path("mail-pdf-phone"))
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-pdf-html"))
            print("page errors:", watch.errors)
            raise
        finally:
            await browser.close()


async def test_junk_unread_images_per_sender_identities_completion_and_other_tab(web_server):
    """The rest of issue 14 §2-§5 a person meets: mark as junk and back, mark unread, remote images
    "Always for this sender", From among the identities (an alias), completion of a second recipient,
    and a flag set in another tab showing in this one."""
    async_playwright = webfix.require_browser()
    web_server.cli("alias", "add", "sales@example.test", ALICE)
    for n in ("one", "two"):
        m = message(f"Promo {n}", "plain", frm="Eve Promo <eve@promo.test>")
        m.add_alternative(f'<p>Promo {n}</p><img src="http://tracker.evil.test/{n}.gif" alt="">', subtype="html")
        deliver(web_server, m, [ALICE])
    deliver(web_server, message("Cheap pills offer", "buy now", frm="spam@junk.test"), [ALICE])
    async with async_playwright() as p:
        browser, page, watch = await open_app(p, web_server)
        try:
            await page.wait_for_url(re.compile(r"/mail/[^/]+$"))
            inbox_url = page.url
            reader = page.get_by_role("region", name="Reader")
            # remote images: allowed once for the sender, then shown for the sender's next message
            await (await wait_row(page, "Promo one")).get_by_role("link").click()
            await page.get_by_role("button", name="Always for this sender").click()
            await poll(lambda: "http://tracker.evil.test/one.gif" in watch.foreign(), "image one")
            await page.goto(inbox_url)
            await (await wait_row(page, "Promo two")).get_by_role("link").click()
            await page.frame_locator("iframe.html-frame").get_by_text("Promo two").wait_for()
            await poll(lambda: "http://tracker.evil.test/two.gif" in watch.foreign(), "image two, without asking")
            assert not await page.get_by_role("button", name="Show images").count()

            # junk, and back from Junk with "Not junk"
            await page.goto(inbox_url)
            await (await wait_row(page, "Cheap pills offer")).get_by_role("link").click()
            await reader.get_by_role("button", name="Junk").click()
            await page.wait_for_url(inbox_url)
            await poll(lambda: find_emails(web_server, ALICE, subject="Cheap pills")[0]["boxes"] == ["junk"], "in Junk")
            await page.get_by_role("navigation", name="Mailboxes").get_by_role("link", name=re.compile("Junk")).click()
            await (await wait_row(page, "Cheap pills offer")).get_by_role("link").click()
            await reader.get_by_role("button", name="Not junk").click()
            await poll(lambda: find_emails(web_server, ALICE, subject="Cheap pills")[0]["boxes"] == ["inbox"], "back")

            # mark unread: the row is bold again
            await page.goto(inbox_url)
            await (await wait_row(page, "Cheap pills offer")).get_by_role("link").click()
            await reader.get_by_role("heading", name="Cheap pills offer").wait_for()
            await reader.get_by_role("button", name="Mark unread").click()
            await page.locator(".msg-row.unread", has=page.get_by_text("Cheap pills offer", exact=True)).wait_for()

            # another tab flags it: this tab's row shows the flag without a reload
            other = await page.context.new_page()
            await other.goto(inbox_url)
            await (await wait_row(other, "Cheap pills offer")).get_by_role("link").click()
            await other.get_by_role("region", name="Reader").get_by_role("button", name="Flag").click()
            row = await wait_row(page, "Cheap pills offer")
            await row.get_by_label("Flagged").wait_for()
            await other.close()

            # compose: From offers the alias; the second recipient completes from past correspondents
            await page.get_by_role("button", name="New message").click()
            dialog = page.get_by_role("dialog", name="Compose")
            labels = await dialog.get_by_label("From").locator("option").all_inner_texts()
            assert len(labels) == 2 and ALICE in labels[0], labels
            await dialog.get_by_label("From").select_option(label=next(x for x in labels if "sales@example.test" in x))
            to = dialog.get_by_label("To", exact=True)
            await to.fill(f"{BOB}, eve@pro")
            options = await page.locator("datalist#c-people-to option").evaluate_all("(os) => os.map((o) => o.value)")
            assert options == [f"{BOB}, Eve Promo <eve@promo.test>"], options
            await to.fill(f"{BOB}, ")
            options = await page.locator("datalist#c-people-to option").evaluate_all("(os) => os.map((o) => o.value)")
            assert f"{BOB}, Eve Promo <eve@promo.test>" in options and not [o for o in options if o.count(BOB) > 1]
            await to.fill(f"{BOB}")
            await dialog.get_by_label("Subject", exact=True).fill("From the sales address")
            await dialog.get_by_label("Message", exact=True).fill("Hello from sales.")
            await dialog.get_by_role("button", name="Send").click()
            got = await poll(lambda: find_emails(web_server, BOB, subject="From the sales address"), "bob's copy")
            r = jmap_call(web_server, [["Email/get", {"ids": [got[0]["id"]], "properties": ["from"]}, "g"]], BOB)
            assert r["g"]["list"][0]["from"][0]["email"] == "sales@example.test"
            await page.screenshot(path=webfix.shot_path("mail-after-audit-desktop"))
            assert not watch.dialogs
        except BaseException:
            await page.screenshot(path=webfix.shot_path("failed-audit"))
            print("page errors:", watch.errors)
            raise
        finally:
            await browser.close()
