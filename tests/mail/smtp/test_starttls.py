"""STARTTLS (RFC 3207): commands pipelined after STARTTLS in plaintext are discarded."""

from __future__ import annotations

import asyncio
import smtplib


async def test_plaintext_injection_after_starttls_is_discarded(smtp_server, client_tls, hostname) -> None:
    async with smtp_server() as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
        try:
            assert (await reader.readline()).startswith(b"220 ")
            writer.write(b"EHLO attacker.test\r\n")
            while not (line := await reader.readline()).startswith(b"250 "):
                assert line.startswith(b"250-")
            # The injection: commands in the same TCP segment as STARTTLS.
            writer.write(b"STARTTLS\r\nMAIL FROM:<injected@remote.test>\r\nRCPT TO:<alice@example.test>\r\n")
            await writer.drain()
            assert await reader.readline() == b"220 2.0.0 Ready to start TLS\r\n"
            await writer.start_tls(client_tls, server_hostname=hostname)
            writer.write(b"EHLO attacker.test\r\n")
            first = await asyncio.wait_for(reader.readline(), 5)
            assert first.startswith(b"250-mx.example.test"), f"the first TLS reply must answer EHLO, got {first!r}"
            while not (line := await reader.readline()).startswith(b"250 "):
                pass
            # The injected MAIL never ran: there is no transaction.
            writer.write(b"RCPT TO:<alice@example.test>\r\n")
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"503 5.5.1")
            writer.write(b"QUIT\r\n")
            assert (await reader.readline()).startswith(b"221")
        finally:
            writer.close()


def _smtplib_starttls(port: int, cafile_ctx, hostname: str) -> tuple[set[str], set[str]]:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test") as s:
        s.ehlo()
        before = set(s.esmtp_features)
        s.starttls(context=cafile_ctx)
        s.ehlo()
        after = set(s.esmtp_features)
        s.sendmail("a@remote.test", ["alice@example.test"], b"Subject: tls\r\n\r\nhi\r\n")
    return before, after


async def test_starttls_then_delivery(smtp_server, client_tls, hostname) -> None:
    client_tls.check_hostname = False  # smtplib connects by IP; the cert also carries 127.0.0.1
    async with smtp_server() as h:
        before, after = await asyncio.to_thread(_smtplib_starttls, h.port, client_tls, hostname)
    assert "starttls" in before and "starttls" not in after
    [d] = h.deliverer.delivered
    assert d.envelope.tls
    assert d.content is not None and b" with ESMTPS id " in d.content and b"(using TLSv1." in d.content


async def test_starttls_unavailable_without_context(smtp_server, raw_client) -> None:
    async with smtp_server(tls=False) as h:
        c = await raw_client(h.port)
        await c.send(b"EHLO c.test\r\n")
        assert not any("STARTTLS" in ln for ln in await c.reply())
        assert (await c.cmd("STARTTLS")).startswith("454 4.7.0")


def _mail_then_starttls(port: int, ctx, hostname: str) -> tuple[int, int]:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="c.test") as s:
        s.ehlo()
        assert s.mail("before@remote.test")[0] == 250
        s.starttls(context=ctx)
        s.ehlo()
        rcpt = s.rcpt("alice@example.test")[0]
        s.rset()
        assert s.mail("after@remote.test")[0] == 250
        return rcpt, s.rcpt("alice@example.test")[0]


async def test_a_transaction_from_before_starttls_does_not_carry_over(smtp_server, client_tls, hostname) -> None:
    """RFC 3207 §4.2: the server discards what it knew from before the handshake, MAIL included."""
    client_tls.check_hostname = False
    async with smtp_server() as h:
        before, after = await asyncio.to_thread(_mail_then_starttls, h.port, client_tls, hostname)
    assert (before, after) == (503, 250)
