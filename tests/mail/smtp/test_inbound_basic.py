"""Inbound MX: EHLO extensions, delivery with Received header, 250 only after the Deliverer."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib

import aiosmtplib


async def test_ehlo_advertises_extensions(smtp_server, raw_client) -> None:
    async with smtp_server(max_message_size=1234567) as h:
        c = await raw_client(h.port)
        await c.send(b"EHLO client.test\r\n")
        lines = await c.reply()
        exts = {ln[4:] for ln in lines[1:]}
        assert {
            "SIZE 1234567",
            "8BITMIME",
            "SMTPUTF8",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "STARTTLS",
        } <= exts
        assert not any(e.startswith("AUTH") for e in exts), "the MX must not offer AUTH"
        assert await c.cmd("NOOP") == "250 2.0.0 OK"
        assert (await c.cmd("AUTH PLAIN AGFsaWNlAHMzY3JldC1wdw==")).startswith("502 5.5.1")


def _send_smtplib(port: int, msg: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test") as s:
        return s.sendmail("sender@remote.test", ["alice@example.test"], msg)


async def test_delivery_with_smtplib(smtp_server) -> None:
    msg = b"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: hi\r\n\r\n.leading dot\r\nbody\r\n"
    async with smtp_server() as h:
        refused = await asyncio.to_thread(_send_smtplib, h.port, msg)
        assert refused == {}
    [d] = h.deliverer.delivered
    assert d.envelope.mail_from == "sender@remote.test"
    assert [r.address for r in d.envelope.recipients] == ["alice@example.test"]
    assert not d.envelope.submission and d.envelope.client_ip == "127.0.0.1" and d.envelope.helo == "client.test"
    content = d.content
    assert content is not None
    # Received (RFC 5321 §4.4) prepended as bytes; the message itself unchanged (dot unstuffed).
    assert content.startswith(
        b"Received: from client.test ([127.0.0.1])\r\n\tby mx.example.test (Suite) with ESMTP id "
    )
    assert b"\tfor <alice@example.test>; " in content
    assert content.endswith(msg)
    assert d.message.sha256 == hashlib.sha256(content).hexdigest() == d.file_sha256
    assert d.message.size == len(content)
    assert not d.message.path.exists(), "spool file is removed after delivery"


async def test_reply_waits_for_deliverer(smtp_server) -> None:
    async with smtp_server() as h:
        gate, entered = asyncio.Event(), asyncio.Event()
        original = h.deliverer.deliver

        async def slow_deliver(envelope, message):
            entered.set()
            await gate.wait()
            await original(envelope, message)

        h.deliverer.deliver = slow_deliver  # type: ignore[method-assign]
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=h.port, start_tls=False)
        await client.connect()
        send = asyncio.create_task(client.sendmail("s@remote.test", ["bob@example.test"], b"Subject: x\r\n\r\nhi\r\n"))
        await asyncio.wait_for(entered.wait(), 10)  # the server holds the message in the Deliverer
        assert not send.done(), "250 must not be sent before the Deliverer returns"
        gate.set()
        errors, reply = await asyncio.wait_for(send, 5)
        assert errors == {} and reply.startswith("2.0.0 Message accepted")
        await client.quit()
    assert len(h.deliverer.delivered) == 1


async def test_deliverer_failure_gives_451(smtp_server, raw_client) -> None:
    async with smtp_server() as h:

        async def broken(envelope, message):
            raise OSError("disk full")

        h.deliverer.deliver = broken  # type: ignore[method-assign]
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<s@remote.test>")
        await c.cmd("RCPT TO:<alice@example.test>")
        assert (await c.cmd("DATA")).startswith("354")
        assert (await c.cmd(b"Subject: x\r\n\r\nhi\r\n.")).startswith("451 4.3.0")
        assert list(h.spool_dir.iterdir()) == []


async def test_pipelined_transaction(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        # RFC 2920: MAIL, RCPT and DATA in one write.
        await c.send(
            b"MAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n"
        )
        assert (await c.reply())[0].startswith("250 2.1.0")
        assert (await c.reply())[0].startswith("250 2.1.5")
        assert (await c.reply())[0].startswith("550 5.1.1")
        assert (await c.reply())[0].startswith("354")
        await c.send(b"Subject: p\r\n\r\nx\r\n.\r\nMAIL FROM:<t@remote.test>\r\nRSET\r\n")
        assert (await c.reply())[0].startswith("250 2.0.0")
        assert (await c.reply())[0].startswith("250 2.1.0"), "command pipelined after the terminator is processed"
        assert (await c.reply())[0].startswith("250 2.0.0")
    assert len(h.deliverer.delivered) == 1


async def test_ehlo_reply_is_one_write(smtp_server, raw_client, monkeypatch) -> None:
    """All lines of the EHLO reply leave in one write (one send per connection, not one per line)."""
    from aiosmtpd.smtp import SMTP

    writes: list[str] = []
    push = SMTP.push

    async def counting(self, status):
        writes.append(status)
        await push(self, status)

    monkeypatch.setattr(SMTP, "push", counting)
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.send(b"EHLO client.test\r\n")
        lines = await c.reply()
    assert len(lines) > 3 and lines[-1].startswith("250 ")
    [ehlo] = [w for w in writes if w.startswith("250-")]
    assert ehlo.split("\r\n") == lines
