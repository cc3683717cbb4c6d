"""Submission to remote recipients: the persistent queue, retries, DKIM, DSNs — against a second SMTP
server on loopback that the DNS stub names as the remote domain's MX."""

# ruff: noqa: F811  (pytest fixtures imported from smtp_service_helpers are used as parameters)

from __future__ import annotations

import asyncio
import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import dkim as dkimpy
import dns.resolver

sys.path.insert(0, str(Path(__file__).parent))
from smtp_service_helpers import (  # noqa: F401
    ALICE,
    BOB,
    DOMAIN,
    PASSWORD,
    REMOTE_DOMAIN,
    RemoteHandler,
    client_context,
    parse,
    provision,
    publish_remote,
    remote_mx,
    remote_port,
    settings,
    suite_smtp,
    tls_files,
)

from suite.mail.queue import dnsrecords
from suite.mail.queue.queue import list_queue
from suite.testing import async_wait_until

CAROL = f"carol@{REMOTE_DOMAIN}"


def _submit(port: int, ca, msg: EmailMessage) -> dict:
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        s.starttls(context=client_context(ca))
        s.login(ALICE, PASSWORD)
        return s.send_message(msg)
    finally:
        s.quit()


def _message(to: str, subject: str) -> EmailMessage:
    m = EmailMessage()
    m["From"] = f"Alice <{ALICE}>"
    m["To"] = to
    m["Subject"] = subject
    m.set_content("Body line one.\nBody line two.\n")
    return m


async def _wait(predicate, timeout: float = 20.0) -> None:
    await async_wait_until(predicate, timeout)


async def _publish_dkim(ctx, dns_stub) -> None:
    for rec in await dnsrecords.records(ctx, DOMAIN):
        if rec.rdtype == "TXT" and "._domainkey." in rec.name:
            dns_stub.add_txt(rec.name.rstrip("."), rec.value)


def _stub_dnsfunc(port: int):
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = port

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        answer = r.resolve(name, "TXT", lifetime=timeout)
        return b"".join(b"".join(rd.strings) for rd in answer)

    return dnsfunc


async def test_451_then_250_delivered_on_retry_with_valid_dkim(suite_smtp, ca, dns_stub, remote_port):
    await _publish_dkim(suite_smtp.ctx, dns_stub)
    handler = RemoteHandler(script=["451 4.3.0 greylisted, try again", "250 2.0.0 OK thanks"])
    with remote_mx(remote_port, handler, dns_stub):
        refused = await asyncio.to_thread(
            _submit, suite_smtp.port("submission"), ca, _message(f"{CAROL}, {BOB}", "outbound")
        )
        assert refused == {}
        # The local recipient has it at once; the remote one is queued.
        assert len(await suite_smtp.inbox(suite_smtp.bob_id)) == 1

        async def delivered():
            return bool(handler.received)

        await _wait(delivered)
    assert handler.attempts == 2
    mail_from, rcpts, data = handler.received[0]
    assert mail_from == ALICE and rcpts == [CAROL]
    assert parse(data)["Subject"] == "outbound"
    # Both signatures (Ed25519 and RSA) verify against the keys `suite dns` publishes.
    dnsfunc = _stub_dnsfunc(dns_stub.port)
    d = dkimpy.DKIM(data)
    n = sum(1 for line in data.split(b"\r\n") if line.lower().startswith(b"dkim-signature:"))
    assert n == 2
    results = await asyncio.to_thread(lambda: [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n)])
    assert results == [True, True]
    algos = sorted(
        dkimpy.util.parse_tag_value(h[1].replace(b"\r\n", b""))[b"a"]
        for h in d.headers
        if h[0].lower() == b"dkim-signature"
    )
    assert algos == [b"ed25519-sha256", b"rsa-sha256"]

    async def gone():
        return await list_queue(suite_smtp.ctx) == []

    await _wait(gone)  # delivered messages leave the queue and drop their blob reference


async def test_550_from_remote_gives_a_dsn_in_the_senders_inbox(suite_smtp, ca, dns_stub, remote_port):
    handler = RemoteHandler(rcpt_reply={CAROL: "550 5.1.1 <carol@remote.test>: no such user"})
    with remote_mx(remote_port, handler, dns_stub):
        await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, _message(CAROL, "will bounce"))
        msgs = await suite_smtp.wait_inbox(suite_smtp.alice_id)
    assert len(msgs) == 1
    dsn = parse(msgs[0])
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"  # RFC 3464 §2 / RFC 6522
    assert dsn["Auto-Submitted"] == "auto-replied"
    parts = {p.get_content_type(): p for p in dsn.iter_parts()}
    status_text = parts["message/delivery-status"].as_bytes().decode()
    assert f"Final-Recipient: rfc822; {CAROL}" in status_text
    assert "Action: failed" in status_text and "Status: 5.1.1" in status_text
    assert "Diagnostic-Code: smtp; 550 5.1.1" in status_text
    assert "Subject: will bounce" in parts["text/rfc822-headers"].get_content()
    assert handler.received == []


async def test_null_mx_fails_at_once_with_a_dsn(suite_smtp, ca, dns_stub):
    dns_stub.add("nomail.test", "MX", "0 .")  # RFC 7505
    await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, _message("dan@nomail.test", "null mx"))
    msgs = await suite_smtp.wait_inbox(suite_smtp.alice_id)
    assert len(msgs) == 1
    assert "Status: 5.1.10" in msgs[0].decode()


async def test_queue_survives_a_restart(ctx, ca, dns_stub, remote_port):
    from suite.mail.smtp.service import SmtpService

    await provision(ctx)
    publish_remote(dns_stub)  # the MX exists but does not answer yet
    first = SmtpService(ctx)
    await first.start()
    try:
        # The remote MX is down: the message waits in the queue.
        await asyncio.to_thread(_submit, first.port("submission"), ca, _message(CAROL, "persisted"))

        async def tried():
            q = await list_queue(ctx)
            return bool(q) and q[0].recipients[0].attempts >= 1

        await _wait(tried)
    finally:
        await first.stop()
    [entry] = await list_queue(ctx)
    assert entry.recipients[0].status == "queued" and "4.4.2" in entry.recipients[0].last_reply
    handler = RemoteHandler()
    with remote_mx(remote_port, handler, dns_stub):
        second = SmtpService(ctx)
        await second.start()
        try:

            async def delivered():
                return bool(handler.received)

            await _wait(delivered)
        finally:
            await second.stop()
    assert parse(handler.received[0][2])["Subject"] == "persisted"


async def test_expiry_after_max_age_gives_a_dsn(suite_smtp, ca, dns_stub, remote_port):
    suite_smtp.ctx.settings.queue_max_age = 1.0  # the worker reads it at each attempt
    handler = RemoteHandler(script=["451 4.7.1 greylisted"] * 100)
    with remote_mx(remote_port, handler, dns_stub):
        await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, _message(CAROL, "never accepted"))
        msgs = await suite_smtp.wait_inbox(suite_smtp.alice_id)
    assert handler.attempts >= 2 and handler.received == []
    assert len(msgs) == 1
    text = msgs[0].decode()
    assert "Status: 4.4.7" in text and "Action: failed" in text  # RFC 3463 §3.5: delivery time expired
    assert "Diagnostic-Code: smtp; 451 4.7.1 greylisted" in text

    async def gone():
        return await list_queue(suite_smtp.ctx) == []

    await _wait(gone)
