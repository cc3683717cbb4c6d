"""\\Recent across processes (RFC 3501 §2.3.2: "the message is considered recent in exactly one
session"): two ``suite serve --only imap`` processes on one database, many IMAP4rev1 sessions
selecting the same mailbox at once — every message is \\Recent in exactly one of them."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD, Client
from test_multiappend import _lit, _read_until, _wait_port

from suite.testing import free_port, serve_env


def _serve(env: dict, port: int) -> subprocess.Popen:
    env = dict(env, SUITE_IMAP_PORT=str(port), SUITE_IMAPS_PORT=str(free_port()), SUITE_HTTP_PORT=str(free_port()))
    p = subprocess.Popen(
        [sys.executable, "-m", "suite.cli", "serve", "--only", "imap"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _read_until(p, "ready")
    _wait_port(port)
    return p


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
    env = serve_env()
    env.update(
        SUITE_DATA_DIR=str(tmp_path / "data"),
        SUITE_DATABASE_URL=db_url,
        SUITE_BUS_BACKEND="memory",
        SUITE_ALLOW_PLAINTEXT_LOOPBACK="1",
    )
    if db_url.startswith("postgresql"):
        from suite.storage import db

        async def reset():
            engine = db.make_engine(db_url)
            await db.downgrade(engine, "base")
            await engine.dispose()

        asyncio.run(reset())

    def cli(*args, stdin=None):
        return subprocess.run(
            [sys.executable, "-m", "suite.cli", *args],
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    assert cli("init").returncode == 0
    assert cli("domain", "add", "example.test").returncode == 0
    assert cli("user", "add", "alice@example.test", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    ports = [free_port(), free_port()]
    procs = [_serve(env, port) for port in ports]
    try:

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
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                assert p.wait(timeout=30) == 0
            finally:
                if p.poll() is None:
                    p.kill()
