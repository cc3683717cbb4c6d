"""SmtpService as the MX (port 25 semantics): local recipients only, trace headers, exact bytes."""

# ruff: noqa: F811  (pytest fixtures imported from smtp_service_helpers are used as parameters)

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import subprocess
import sys
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from smtp_service_helpers import (  # noqa: F401
    ALICE,
    BOB,
    DOMAIN,
    MX_HOST,
    PASSWORD,
    parse,
    remote_port,
    settings,
    suite_smtp,
    tls_files,
)

ORIGINAL = (
    b"From: Carol <carol@sender.test>\r\n"
    b"To: Bob <bob@example.test>\r\n"
    b"Subject: exact bytes\r\n"
    b"Message-ID: <exact-1@sender.test>\r\n"
    b"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe,\r\n"
    b"..a line that starts with a dot (stuffed on the wire)\r\n"
    b"   trailing spaces kept   \r\n"
    b"\r\n"
    b"-- \r\n"
    b"Carol\r\n"
)


def _send_raw(port: int, mail_from: str, rcpts: list[str], data: bytes, **kw):
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        return s.sendmail(mail_from, rcpts, data, **kw)
    finally:
        s.quit()


async def test_delivered_bytes_are_original_plus_trace_headers(suite_smtp):
    await asyncio.to_thread(_send_raw, suite_smtp.port("smtp"), "carol@sender.test", [BOB], ORIGINAL)
    [stored] = await suite_smtp.inbox(suite_smtp.bob_id)
    assert stored.endswith(ORIGINAL)
    prefix = stored[: -len(ORIGINAL)]
    names = [k for k, _ in BytesHeaderParser().parsebytes(prefix + b"\r\n").items()]
    assert names == ["Authentication-Results", "Received"]  # RFC 8601 §5 on top, RFC 5321 §4.4 trace
    headers = parse(stored)
    assert headers["Authentication-Results"].startswith(MX_HOST)
    assert "from" in headers["Received"] and f"by {MX_HOST}" in headers["Received"]


async def test_relay_attempt_from_a_stranger_is_refused(suite_smtp):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        await asyncio.to_thread(
            _send_raw, suite_smtp.port("smtp"), ALICE, ["victim@elsewhere.test"], b"Subject: relay?\r\n\r\nx\r\n"
        )
    code, text = e.value.recipients["victim@elsewhere.test"]
    assert code == 550 and text.startswith(b"5.7.1")
    from suite.mail.queue.queue import list_queue

    assert await list_queue(suite_smtp.ctx) == []


async def test_unknown_local_user_550_511(suite_smtp):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
        await asyncio.to_thread(_send_raw, suite_smtp.port("smtp"), "x@sender.test", [f"nobody@{DOMAIN}"], b"\r\nx\r\n")
    code, text = e.value.recipients[f"nobody@{DOMAIN}"]
    assert code == 550 and text.startswith(b"5.1.1")


async def test_alias_plus_detail_and_postmaster(suite_smtp):
    await asyncio.to_thread(
        _send_raw,
        suite_smtp.port("smtp"),
        "x@sender.test",
        [f"info@{DOMAIN}", f"bob+news@{DOMAIN}"],
        b"Subject: two\r\n\r\nx\r\n",
    )
    assert len(await suite_smtp.inbox(suite_smtp.alice_id)) == 1
    assert len(await suite_smtp.inbox(suite_smtp.bob_id)) == 1


async def test_smtputf8_recipient(suite_smtp):
    acct = await suite_smtp.ctx.accounts.add_account(f"δοκιμή@{DOMAIN}", PASSWORD)
    body = "From: Ζωή <ζωή@sender.test>\r\nTo: δοκιμή@example.test\r\nSubject: γειά\r\n\r\nκείμενο\r\n".encode()
    await asyncio.to_thread(
        _send_raw,
        suite_smtp.port("smtp"),
        "ζωή@sender.test",
        [f"δοκιμή@{DOMAIN}"],
        body,
        mail_options=["SMTPUTF8", "BODY=8BITMIME"],
    )
    [stored] = await suite_smtp.inbox(acct.id)
    assert stored.endswith(body)
    assert parse(stored)["Subject"] == "γειά"


async def test_dmarc_quarantine_goes_to_junk(suite_smtp, dns_stub):
    dns_stub.add_txt("_dmarc.spoofed.test", "v=DMARC1; p=quarantine")
    dns_stub.add_txt("spoofed.test", "v=spf1 -all")
    msg = b"From: boss@spoofed.test\r\nTo: bob@example.test\r\nSubject: wire money\r\n\r\nnow\r\n"
    await asyncio.to_thread(_send_raw, suite_smtp.port("smtp"), "boss@spoofed.test", [BOB], msg)
    assert await suite_smtp.inbox(suite_smtp.bob_id) == []
    [junk] = await suite_smtp.inbox(suite_smtp.bob_id, "Junk")
    assert "dmarc=fail" in parse(junk)["Authentication-Results"]


async def test_swaks_to_the_mx(suite_smtp, tool):
    swaks = tool("swaks")
    proc = await asyncio.create_subprocess_exec(
        swaks,
        "--server",
        "127.0.0.1",
        "--port",
        str(suite_smtp.port("smtp")),
        "--from",
        "dave@sender.test",
        "--to",
        BOB,
        "--header",
        "Subject: from swaks",
        "--body",
        "swaks body",
        "--tls-optional",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode(errors="replace")
    [stored] = await suite_smtp.inbox(suite_smtp.bob_id)
    assert parse(stored)["Subject"] == "from swaks"
    assert "ESMTPS" in parse(stored)["Received"]  # swaks took the offered STARTTLS


async def test_delivered_message_fetched_over_imap(suite_smtp, settings):
    from suite.service import service_class

    imap_cls = service_class("imap")  # the IMAP service is part of the product: never a skip
    await asyncio.to_thread(_send_raw, suite_smtp.port("smtp"), "carol@sender.test", [BOB], ORIGINAL)
    settings.imap_port = 0
    settings.imaps_port = 0
    imap = imap_cls(suite_smtp.ctx)
    await imap.start()
    try:

        def fetch():
            c = imaplib.IMAP4("127.0.0.1", imap.port)
            try:
                c.starttls(ssl_context=_trusting_context(settings))
                c.login(BOB, PASSWORD)
                c.select("INBOX")
                typ, data = c.uid("FETCH", "1:*", "(BODY.PEEK[])")
                assert typ == "OK"
                return data[0][1]
            finally:
                c.logout()

        fetched = await asyncio.to_thread(fetch)
    finally:
        await imap.stop()
    assert fetched.endswith(ORIGINAL)
    [stored] = await suite_smtp.inbox(suite_smtp.bob_id)
    assert fetched == stored


def _trusting_context(settings):
    import ssl

    c = ssl.create_default_context()
    c.check_hostname = False
    c.load_verify_locations(str(settings.tls_cert))  # the leaf; its chain came from the test CA
    c.verify_mode = ssl.CERT_NONE
    return c


async def test_a_megabyte_message_is_kept_in_memory_and_stored_exactly(suite_smtp, monkeypatch):
    """Past the per-session allowance a message stays in memory on the server's shared budget (no
    spool file); the stored bytes are the same, and the budget is whole again after the 250."""
    from suite.mail.smtp import server as smtp_server
    from suite.mail.smtp import spool

    body = b"".join(b"%d%s\r\n" % (i, b"X" * 78) for i in range(13000))  # ~1 MB, lines from 1 to 13000
    message = b"From: carol@sender.test\r\nTo: bob@example.test\r\nSubject: big\r\n\r\n" + body
    assert smtp_server.MEMORY_SPOOL < len(message) < smtp_server.MEMORY_SPOOL_MAX
    mx = suite_smtp.service.servers["smtp"]
    files: list[object] = []
    taken: list[int] = []
    open_file, take = spool.SpoolWriter._open, mx.spool_budget.take
    monkeypatch.setattr(spool.SpoolWriter, "_open", lambda self: files.append(self) or open_file(self))
    monkeypatch.setattr(mx.spool_budget, "take", lambda n: taken.append(n) or take(n))
    await asyncio.to_thread(_send_raw, suite_smtp.port("smtp"), "carol@sender.test", [BOB], message)
    [stored] = await suite_smtp.inbox(suite_smtp.bob_id)
    assert stored.endswith(message)
    assert files == [] and sum(taken) > len(message) - smtp_server.MEMORY_SPOOL
    assert mx.spool_budget.free == mx.spool_budget.total
