"""COMPRESS=DEFLATE (RFC 4978) on vs off against the same Suite IMAP server: bytes on the wire and
server CPU per command for the same command mix.

    python bench/imap/compress.py                 # 8 clients, 10 s per variant
    python bench/imap/compress.py --clients 4 --seconds 5

One ``suite serve --only imap`` (bench/imap/suite_server.py), one user per client, each mailbox seeded
with the corpus (tests/data/mail) by APPEND.  Then the same mix (FETCH FLAGS of all, a whole message,
ENVELOPE+BODYSTRUCTURE, a header section, UID SEARCH TEXT, STORE, NOOP) for ``--seconds`` without
compression, then with it.  Reported per variant: commands/s, wire bytes per command both ways, the
deflate ratio, server CPU ms per command (its whole process tree, from /proc) and the client's.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # `python bench/imap/compress.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.imap.procs import tree_cpu_seconds
from bench.imap.run import DEFAULT_CORPUS, load_corpus
from bench.imap.suite_server import SuiteServer

PASSWORD = "bench password 1"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")


@dataclass
class Totals:
    commands: int = 0
    wire_out: int = 0  # client → server, as sent
    wire_in: int = 0  # server → client, as received
    plain_in: int = 0  # server → client, inflated


class Client:
    """A minimal IMAP client that can switch to raw deflate after ``COMPRESS DEFLATE``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, totals: Totals) -> None:
        self.reader, self.writer, self.t = reader, writer, totals
        self.z_out: zlib._Compress | None = None  # type: ignore[name-defined]
        self.z_in: zlib._Decompress | None = None  # type: ignore[name-defined]
        self.buf = b""
        self.n = 0

    async def _fill(self) -> None:
        chunk = await self.reader.read(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.t.wire_in += len(chunk)
        if self.z_in is not None:
            chunk = self.z_in.decompress(chunk)
        self.t.plain_in += len(chunk)
        self.buf += chunk

    async def line(self) -> bytes:
        """One response line with its literals inlined."""
        out = b""
        while True:
            while b"\r\n" not in self.buf:
                await self._fill()
            i = self.buf.index(b"\r\n") + 2
            part, self.buf = self.buf[:i], self.buf[i:]
            out += part
            m = _LITERAL.search(part)
            if not m:
                return out
            size = int(m.group(1))
            while len(self.buf) < size:
                await self._fill()
            out += self.buf[:size]
            self.buf = self.buf[size:]

    async def cmd(self, text: str, literal: bytes | None = None) -> bytes:
        self.n += 1
        tag = b"C%d" % self.n
        data = tag + b" " + text.encode() + (b" {%d+}\r\n" % len(literal) + literal if literal else b"") + b"\r\n"
        if self.z_out is not None:
            data = self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH)
        self.writer.write(data)
        self.t.wire_out += len(data)
        await self.writer.drain()
        while True:
            resp = await self.line()
            if resp.startswith(tag + b" "):
                if not resp.startswith(tag + b" OK"):
                    raise RuntimeError(f"{text[:40]}: {resp[:200]!r}")
                self.t.commands += 1
                return resp

    async def compress(self) -> None:
        await self.cmd("COMPRESS DEFLATE")
        # RFC 4978 §3: both directions raw deflate from here on (clients use the 32 KiB window)
        self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.z_in = zlib.decompressobj(-15)


async def connect(port: int, user: str, totals: Totals, compress: bool) -> Client:
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 24)
    c = Client(r, w, totals)
    await c.line()  # greeting
    await c.cmd(f'LOGIN {user} "{PASSWORD}"')
    if compress:
        await c.compress()
    return c


async def seed(port: int, users: list[str], corpus: list[bytes]) -> None:
    t = Totals()
    for user in users:
        c = await connect(port, user, t, False)
        for msg in corpus:
            await c.cmd("APPEND INBOX", msg)
        c.writer.close()


async def one_client(
    port: int, user: str, totals: Totals, compress: bool, deadline: float, words: list[str], exists: int
) -> None:
    rnd = random.Random(user)
    c = await connect(port, user, totals, compress)
    await c.cmd("SELECT INBOX")
    while time.monotonic() < deadline:
        n = rnd.randint(1, exists)
        for text in (
            "FETCH 1:* (UID FLAGS)",
            f"FETCH {n} (BODY.PEEK[])",
            f"FETCH {n} (ENVELOPE BODYSTRUCTURE RFC822.SIZE)",
            f"FETCH {n} (BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])",
            f"UID SEARCH TEXT {rnd.choice(words)}",
            f"STORE {n} +FLAGS (\\Seen)",
            "NOOP",
        ):
            await c.cmd(text)
    c.writer.close()


async def variant(port: int, users: list[str], compress: bool, seconds: float, words: list[str], exists: int) -> Totals:
    totals = Totals()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(one_client(port, u, totals, compress, deadline, words, exists) for u in users))
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    ap.add_argument("--messages", type=int, default=100, help="corpus messages per mailbox")
    args = ap.parse_args()
    corpus = load_corpus(Path(args.corpus), 2_000_000)[: args.messages]
    words = sorted({w for m in corpus[:20] for w in re.findall(r"[A-Za-z]{5,}", m.decode("latin-1"))})[:200] or [
        "hello"
    ]
    users = [f"u{i}@bench.test" for i in range(args.clients)]
    with SuiteServer([(u, PASSWORD) for u in users]) as srv:
        asyncio.run(seed(srv.port, users, corpus))
        rows = []
        # off, on, off, on: the second round is the one reported with the first (caches warm alike)
        for compress in (False, True, False, True):
            cpu0, _ = tree_cpu_seconds(srv.pid)
            me0 = time.process_time()
            t0 = time.monotonic()
            t = asyncio.run(variant(srv.port, users, compress, args.seconds, words, len(corpus)))
            wall = time.monotonic() - t0
            cpu1, _ = tree_cpu_seconds(srv.pid)
            me1 = time.process_time()
            rows.append((compress, t, wall, cpu1 - cpu0, me1 - me0))
    print(
        f"COMPRESS=DEFLATE bench: {args.clients} clients, {len(corpus)} messages each, {args.seconds:.0f} s per variant"
    )
    print(
        f"{'':14}{'cmds/s':>9}{'in B/cmd':>11}{'out B/cmd':>11}{'ratio':>7}{'srv CPU ms/cmd':>16}{'client ms/cmd':>15}"
    )
    for compress, t, wall, srv_cpu, me_cpu in rows:
        n = max(t.commands, 1)
        ratio = t.plain_in / t.wire_in if t.wire_in else 0.0
        print(
            f"{'COMPRESS on' if compress else 'COMPRESS off':14}{t.commands / wall:9.0f}{t.wire_in / n:11.0f}"
            f"{t.wire_out / n:11.0f}{ratio:7.2f}{srv_cpu * 1000 / n:16.3f}{me_cpu * 1000 / n:15.3f}"
        )


if __name__ == "__main__":
    main()
