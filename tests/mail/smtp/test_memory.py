"""Streaming DATA: a 30 MB message never sits in the server's memory."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest

MB = 1024 * 1024


@pytest.mark.slow
async def test_30mb_message_is_streamed_to_disk(smtp_server, raw_client) -> None:
    line = b"y" * 998 + b"\r\n"  # RFC 5321 §4.5.3.1.6 maximum line
    lines_per_write = 64
    writes = (30 * MB) // (len(line) * lines_per_write) + 1
    header = b"Subject: big\r\n\r\n"
    async with smtp_server(max_message_size=40 * MB, keep_content=False) as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test> SIZE=31457280")
        await c.cmd("RCPT TO:<alice@example.test>")
        assert (await c.cmd("DATA")).startswith("354")
        expected = hashlib.sha256(header)
        block = line * lines_per_write
        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            await c.send(header)
            for _ in range(writes):
                await c.send(block)
                expected.update(block)
            reply = await c.cmd(b".")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert reply.startswith("250 2.0.0"), reply
    [d] = h.deliverer.delivered
    body_size = len(header) + writes * len(block)
    assert body_size > 30 * MB
    assert d.message.size > body_size  # plus the Received header
    assert d.message.sha256 == d.file_sha256
    # Peak Python allocations during the whole transfer (client and server in this process).
    assert peak - baseline < 4 * MB, f"peak {(peak - baseline) / MB:.1f} MB above baseline"


@pytest.mark.slow
async def test_concurrent_messages_memory_is_per_connection_bounded(smtp_server, raw_client) -> None:
    """10 concurrent 3 MB messages: peak memory stays far below the 30 MB of data in flight."""
    import asyncio

    line = b"z" * 510 + b"\r\n"
    block = line * 128  # 64 KiB
    writes = 48  # 3 MiB per message
    async with smtp_server(max_message_size=10 * MB, keep_content=False) as h:
        clients = [await raw_client(h.port) for _ in range(10)]
        for c in clients:
            await c.cmd("EHLO c.test")
            await c.cmd("MAIL FROM:<a@remote.test>")
            await c.cmd("RCPT TO:<alice@example.test>")
            assert (await c.cmd("DATA")).startswith("354")

        async def pump(c) -> str:
            await c.send(b"Subject: c\r\n\r\n")
            for _ in range(writes):
                await c.send(block)
            await c.send(b".\r\n")
            return (await c.reply(timeout=120))[0]

        tracemalloc.start()
        try:
            baseline, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            replies = await asyncio.gather(*(pump(c) for c in clients))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert all(r.startswith("250 2.0.0") for r in replies), replies
    assert len(h.deliverer.delivered) == 10
    assert all(d.message.size > writes * len(block) for d in h.deliverer.delivered)
    assert peak - baseline < 10 * MB, f"peak {(peak - baseline) / MB:.1f} MB for 30 MB in flight"
