"""SMTP smuggling: bare CR/LF end-of-data look-alikes never end DATA and are rejected (RFC 5321 §2.3.8)."""

from __future__ import annotations

import pytest

SEQUENCES = [b"\n.\n", b"\r\n.\n", b"\r.\r", b"\n.\r\n"]


@pytest.mark.parametrize("sequence", SEQUENCES, ids=["LF.LF", "CRLF.LF", "CR.CR", "LF.CRLF"])
async def test_smuggled_message_is_neither_ended_nor_stored(smtp_server, raw_client, sequence: bytes) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO attacker.test")
        assert (await c.cmd("MAIL FROM:<a@remote.test>")).startswith("250")
        assert (await c.cmd("RCPT TO:<alice@example.test>")).startswith("250")
        assert (await c.cmd("DATA")).startswith("354")
        smuggled = (
            b"From: a@remote.test\r\nSubject: outer\r\n\r\nouter body"
            + sequence
            + b"MAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
            + b"From: ceo@example.test\r\nSubject: smuggled\r\n\r\nwire the money\r\n"
        )
        await c.send(smuggled)
        await c.send(b"\r\n.\r\n")
        # Exactly one answer: the rejection of the whole DATA, no replies to the smuggled commands.
        reply = await c.reply()
        assert reply == ["550 5.6.0 Bare CR or LF in message data is not allowed (RFC 5321 §2.3.8)"]
        # Still in sync: the session is usable and no transaction is open.
        assert (await c.cmd("RCPT TO:<bob@example.test>")).startswith("503 5.5.1")
        assert await c.cmd("NOOP") == "250 2.0.0 OK"
    assert h.deliverer.delivered == []
    assert list(h.spool_dir.iterdir()) == [], "rejected data is not left in the spool"


@pytest.mark.parametrize("junk", [b"bare\rcr\r\n", b"bare\nlf\r\n", b"trailing cr\r\r\n"])
async def test_any_bare_cr_or_lf_is_rejected(smtp_server, raw_client, junk: bytes) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        await c.cmd("RCPT TO:<alice@example.test>")
        await c.cmd("DATA")
        assert (await c.cmd(b"Subject: x\r\n\r\n" + junk + b".")).startswith("550 5.6.0")
    assert h.deliverer.delivered == []


async def test_data_split_across_writes_with_dot_stuffing(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        await c.cmd("RCPT TO:<alice@example.test>")
        await c.cmd("DATA")
        for piece in [
            b"Subject: x\r",
            b"\n\r\n.",
            b".dot\r\n",
            b"end\r",
            b"\n.",
            b"\r",
            b"\n",
        ]:
            await c.send(piece)
        assert (await c.reply())[0].startswith("250 2.0.0")
    [d] = h.deliverer.delivered
    assert d.content is not None and d.content.endswith(b"Subject: x\r\n\r\n.dot\r\nend\r\n")
