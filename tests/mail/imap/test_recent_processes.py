"""\\Recent across processes (RFC 3501 §2.3.2: "the message is considered recent in exactly one
session"): two ``suite serve --only imap`` processes on one database, many IMAP4rev1 sessions
selecting the same mailbox at once — every message is \\Recent in exactly one of them."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, Client, imap_cluster
from test_multiappend import _lit


async def _session(port: int, start: asyncio.Event) -> set[int]:
    """Select INBOX as an IMAP4rev1 client; the UIDs that are \\Recent here."""
    c = await Client.connect(port)
    try:
        await c.login()
        await start.wait()
        r = await c.cmd("s SELECT INBOX")
        n = int(next(re.match(rb"\* (\d+) RECENT", x).group(1) for x in r if x.endswith(b" RECENT\r\n")))
        r = await c.cmd("f FETCH 1:* (UID FLAGS)")
        recent = {int(re.search(rb"UID (\d+)", x).group(1)) for x in r if b"\\Recent" in x}
        assert len(recent) == n, (n, r)
        return recent
    finally:
        await c.close()


def test_recent_in_exactly_one_session_across_processes(tmp_path, db_url):
    cluster = imap_cluster(tmp_path, db_url)
    try:
        ports = [cluster.serve(f"imap{i}", "imap").ports["imap_port"] for i in range(2)]

        async def run() -> list[set[int]]:
            c = await Client.connect(ports[0])
            await c.login()
            n = 30
            await c.send(b"a APPEND INBOX" + b"".join(b" " + _lit(MSG) for _ in range(n)) + b"\r\n")
            assert (await c.until_tagged(b"a"))[-1].startswith(b"a OK [APPENDUID "), "append"
            await c.close()
            start = asyncio.Event()
            tasks = [asyncio.create_task(_session(ports[i % 2], start)) for i in range(12)]
            await asyncio.sleep(0)  # let the sessions connect; those logged in by now SELECT together
            start.set()
            return await asyncio.gather(*tasks)

        sets = asyncio.run(run())
        everyone = [u for s in sets for u in s]
        assert sorted(everyone) == list(range(1, 31)), sets  # each UID recent in one session only
    finally:
        assert cluster.stop_all() == []
