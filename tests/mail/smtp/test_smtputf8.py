"""SMTPUTF8 (RFC 6531) and 8BITMIME (RFC 6152)."""

from __future__ import annotations

import aiosmtplib


async def test_utf8_addresses_accepted_with_smtputf8(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        assert await c.cmd("MAIL FROM:<josé@remote.test> SMTPUTF8 BODY=8BITMIME") == "250 2.1.0 Sender OK"
        assert (await c.cmd("RCPT TO:<δοκιμή@example.test>")).startswith("250 2.1.5")
        await c.cmd("DATA")
        body = "From: josé@remote.test\r\nSubject: ünïcödé\r\n\r\nγειά σου\r\n".encode()
        assert (await c.cmd(body + b".")).startswith("250 2.0.0")
    [d] = h.deliverer.delivered
    assert d.envelope.smtputf8 and d.envelope.body_8bit
    assert d.envelope.mail_from == "josé@remote.test"
    assert d.content is not None and d.content.endswith(body)
    assert b" with UTF8SMTP id " in d.content  # RFC 6531 §3.7.3


async def test_utf8_address_needs_parameter(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        assert (await c.cmd("MAIL FROM:<josé@remote.test>")).startswith("553 5.6.7")
        await c.cmd("MAIL FROM:<a@remote.test>")
        assert (await c.cmd("RCPT TO:<δοκιμή@example.test>")).startswith("553 5.6.7")
        assert (await c.cmd(b"MAIL FROM:<\xff@remote.test> SMTPUTF8")).startswith("503"), "transaction still open"
        await c.cmd("RSET")
        assert (await c.cmd(b"MAIL FROM:<\xff@remote.test> SMTPUTF8")).startswith("553 5.1.3"), "invalid UTF-8"


async def test_aiosmtplib_utf8_delivery(smtp_server) -> None:
    async with (
        smtp_server() as h,
        aiosmtplib.SMTP(hostname="127.0.0.1", port=h.port, start_tls=False) as client,
    ):
        errors, _ = await client.sendmail(
            "josé@remote.test",
            ["δοκιμή@example.test"],
            "Subject: x\r\n\r\nπ\r\n".encode(),
            mail_options=["SMTPUTF8"],
        )
        assert errors == {}
    assert h.deliverer.delivered[0].envelope.recipients[0].address == "δοκιμή@example.test"


async def test_unknown_body_type(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        assert (await c.cmd("MAIL FROM:<a@remote.test> BODY=BINARYMIME")).startswith("555 5.5.4")
        assert (await c.cmd("MAIL FROM:<a@remote.test> FOO=bar")).startswith("555 5.5.4")
