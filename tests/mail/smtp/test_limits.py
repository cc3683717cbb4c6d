"""Size limit (drain then 552), recipient cap (452 4.5.3), per-IP connection cap and rate limit."""

from __future__ import annotations

import asyncio

from suite.mail.smtp.limits import Admission, ConnectionLimiter
from suite.testing import async_wait_until


async def test_size_parameter_refused_early(smtp_server, raw_client) -> None:
    async with smtp_server(max_message_size=1000) as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        assert (await c.cmd("MAIL FROM:<a@remote.test> SIZE=1001")).startswith("552 5.3.4")
        assert (await c.cmd("MAIL FROM:<a@remote.test> SIZE=1000")).startswith("250")


async def test_oversized_data_is_drained_then_552(smtp_server, raw_client) -> None:
    async with smtp_server(max_message_size=10_000) as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        await c.cmd("RCPT TO:<alice@example.test>")
        await c.cmd("DATA")
        line = b"x" * 78 + b"\r\n"
        # 50 KB, including a line that looks like a command: it is data and must be drained.
        await c.send(b"Subject: big\r\n\r\n" + line * 300 + b"QUIT\r\n" + line * 300)
        assert not c.reader.at_eof()
        await c.send(b".\r\n")
        assert await c.cmd(b"NOOP") == "552 5.3.4 Message size exceeds fixed maximum message size"
        assert (await c.reply())[0] == "250 2.0.0 OK", "the session is still in sync after the drain"
    assert h.deliverer.delivered == []
    assert list(h.spool_dir.iterdir()) == []


async def test_recipient_cap(smtp_server, raw_client) -> None:
    async with smtp_server(max_recipients=3) as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        for addr in ["alice", "bob", "postmaster"]:
            assert (await c.cmd(f"RCPT TO:<{addr}@example.test>")).startswith("250")
        assert await c.cmd("RCPT TO:<info@example.test>") == "452 4.5.3 Too many recipients"
        await c.cmd("DATA")
        assert (await c.cmd(b"Subject: x\r\n\r\nhi\r\n.")).startswith("250")
    [d] = h.deliverer.delivered
    assert len(d.envelope.recipients) == 3


async def test_concurrent_connection_cap(smtp_server, raw_client) -> None:
    limiter = ConnectionLimiter(max_concurrent_per_ip=2, max_connections_per_window=100)
    async with smtp_server(limiter=limiter) as h:
        a = await raw_client(h.port)
        await raw_client(h.port)
        reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
        assert (await reader.readline()).startswith(b"421 4.7.0 Too many connections")
        assert await reader.read() == b"", "the server closes the refused connection"
        writer.close()
        await a.cmd("QUIT")
        await async_wait_until(lambda: limiter.active("127.0.0.1") < 2, what="the QUIT connection's slot freed")
        c = await raw_client(h.port)  # a slot is free again
        assert (await c.cmd("NOOP")).startswith("250")


async def test_connection_rate_limit(smtp_server) -> None:
    limiter = ConnectionLimiter(max_concurrent_per_ip=100, max_connections_per_window=3, window_seconds=60)
    async with smtp_server(limiter=limiter) as h:
        firsts = []
        for _ in range(4):
            reader, writer = await asyncio.open_connection("127.0.0.1", h.port)
            firsts.append(await reader.readline())
            writer.close()
        assert [f[:3] for f in firsts] == [b"220", b"220", b"220", b"421"]
        assert b"rate" in firsts[3]


def test_limiter_window_and_ipv6_grouping() -> None:
    lim = ConnectionLimiter(max_concurrent_per_ip=10, max_connections_per_window=2, window_seconds=10)
    assert lim.admit("2001:db8::1", 0) is Admission.ADMIT
    assert lim.admit("2001:db8::2", 1) is Admission.ADMIT
    assert lim.admit("2001:db8::3", 2) is Admission.RATE_LIMITED, "same /64"
    assert lim.admit("2001:db8:1::1", 2) is Admission.ADMIT, "other /64"
    assert lim.admit("2001:db8::4", 10.5) is Admission.ADMIT, "window slid"
    lim.release("2001:db8::1")
    assert lim.active("2001:db8::99") == 2
