"""Helpers for the IMAP server tests: a tiny raw-bytes client for exact transcripts."""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "ops"))
from cluster import Cluster, reset_postgres

PASSWORD = "correct horse battery"
MSG = (
    b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Hello there\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nLunch tomorrow?\r\n"
)
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n$")


class Client:
    """Raw IMAP client: send exact bytes, read whole responses (literals included)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.greeting = b""

    @classmethod
    async def connect(cls, port: int, *, ssl_ctx: ssl.SSLContext | None = None) -> Client:
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_ctx)
        c = cls(r, w)
        c.greeting = await c.response_line()
        return c

    async def response_line(self, timeout: float = 10) -> bytes:
        """One response: a line plus any literals it announces (and the rest of its line)."""
        out = b""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError(f"connection closed; got so far {out!r}")
            out += line
            m = _LITERAL.search(line)
            if not m:
                return out
            out += await asyncio.wait_for(self.reader.readexactly(int(m.group(1))), timeout)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_tagged(self, tag: bytes, timeout: float = 10) -> list[bytes]:
        lines = []
        while True:
            line = await self.response_line(timeout)
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    async def cmd(self, line: bytes | str, timeout: float = 10) -> list[bytes]:
        """Send ``tag command`` and return every response up to and including the tagged one."""
        if isinstance(line, str):
            line = line.encode()
        tag = line.split(b" ", 1)[0]
        await self.send(line + b"\r\n")
        return await self.until_tagged(tag, timeout)

    async def wait_for(self, pattern: bytes, timeout: float = 10) -> list[bytes]:
        """Read responses until one matches ``pattern`` (a regex); all of them, in order."""
        lines = []
        while True:
            lines.append(await self.response_line(timeout))
            if re.search(pattern, lines[-1]):
                return lines

    async def login(self, user: str = "alice@example.test", password: str = PASSWORD) -> None:
        r = await self.cmd(f'L1 LOGIN {user} "{password}"')
        assert r[-1].startswith(b"L1 OK"), r

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def observer(port: int, mailbox: str = "INBOX") -> Client:
    """A session idling on ``mailbox``. The hub notifies every session that has a mailbox selected in one
    synchronous loop (``Hub.dispatch``), so once the observer reports a change, every other session has
    been told of it too: wait on the observer instead of sleeping."""
    c = await Client.connect(port)
    await c.login()
    r = await c.cmd(f"o EXAMINE {mailbox}")  # read-only: it never claims \\Recent (RFC 3501 §6.3.2)
    assert r[-1].startswith(b"o OK"), r
    await c.send(b"oi IDLE\r\n")
    assert (await c.response_line()).startswith(b"+ ")
    return c


def untagged(lines: list[bytes]) -> list[bytes]:
    return [x for x in lines if x.startswith(b"* ")]


def client_ssl(server) -> ssl.SSLContext:
    """An SSL context trusting the server's self-signed certificate."""
    ctx = ssl.create_default_context(cafile=str(server.ctx.settings.cert_path))
    return ctx


def imap_cluster(root: Path, db_url: str) -> Cluster:
    """A data dir on ``db_url`` (emptied first on PostgreSQL) holding alice, for tests that run
    ``suite serve --only imap`` as real processes: ``c.serve(name, "imap")``, ``Cluster.kill9``,
    ``c.restart``, ``c.stop_all``. The bus stays in-process: each process is on its own."""
    if db_url.startswith("postgresql"):
        reset_postgres(db_url)
    c = Cluster.make(root, database_url=db_url, bus_backend="memory")
    c.bootstrap(password=PASSWORD)
    return c
