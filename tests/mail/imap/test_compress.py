"""COMPRESS=DEFLATE (RFC 4978) driven by a real client — Python's imaplib with a raw-deflate socket
wrapper — and by byte transcripts; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import imaplib
import re
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD, Client, client_ssl

from suite.mail.imap.compress import DEFLATE_MEMLEVEL, DEFLATE_WBITS, INFLATE_PIECE, Deflate

imaplib.Commands.setdefault("COMPRESS", ("AUTH", "SELECTED"))


class DeflateMixin:
    """imaplib with RFC 4978 compression: after ``COMPRESS DEFLATE`` every byte both ways goes
    through raw deflate (wbits -15, as the RFC prescribes), like mutt or Thunderbird do."""

    z_out: zlib._Compress | None = None  # type: ignore[name-defined]

    def compress(self) -> tuple[str, list]:
        typ, data = self._simple_command("COMPRESS", "DEFLATE")
        if typ == "OK":
            self.z_in = zlib.decompressobj(-15)
            self.z_out = zlib.compressobj(6, zlib.DEFLATED, -15)
            self.plain = b""
            self.wire_in = self.wire_out = self.plain_in = 0
        return typ, data

    def send(self, data: bytes) -> None:
        if self.z_out is not None:
            data = self.z_out.compress(data) + self.z_out.flush(zlib.Z_SYNC_FLUSH)
            self.wire_out += len(data)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise imaplib.IMAP4.abort("socket closed")
        self.wire_in += len(chunk)
        out = self.z_in.decompress(chunk)
        self.plain_in += len(out)
        self.plain += out

    def read(self, size: int) -> bytes:
        if self.z_out is None:
            return super().read(size)
        while len(self.plain) < size:
            self._fill()
        data, self.plain = self.plain[:size], self.plain[size:]
        return data

    def readline(self) -> bytes:
        if self.z_out is None:
            return super().readline()
        while b"\n" not in self.plain:
            self._fill()
        i = self.plain.index(b"\n") + 1
        line, self.plain = self.plain[:i], self.plain[i:]
        return line


class DeflateIMAP4(DeflateMixin, imaplib.IMAP4):
    pass


class DeflateIMAP4_SSL(DeflateMixin, imaplib.IMAP4_SSL):
    pass


BIG = MSG + b"The same words again and again. " * 2000 + b"\r\n"


@pytest.mark.parametrize("tls", [False, True], ids=["imap", "imaps"])
async def test_imaplib_session_over_deflate(server, store, accounts, tls):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", BIG)

    def run() -> dict:
        out: dict = {}
        if tls:  # COMPRESS over implicit TLS, as mobile clients use it
            m: imaplib.IMAP4 = DeflateIMAP4_SSL("127.0.0.1", server.tls_port, ssl_context=client_ssl(server))
        else:
            m = DeflateIMAP4("127.0.0.1", server.port)
        try:
            out["caps_before"] = m.capabilities
            m.login("alice@example.test", PASSWORD)
            typ, caps = m.capability()
            out["caps"] = caps[-1]
            out["compress"] = m.compress()
            typ, exists = m.select("INBOX")
            out["select"] = (typ, list(exists))  # imaplib keeps appending to that list
            out["fetch"] = m.fetch("1", "(BODY.PEEK[])")
            out["append"] = m.append("INBOX", None, None, MSG)[0]
            out["search"] = m.search(None, "ALL")
            # RFC 4978 §3: a second COMPRESS is refused with COMPRESSIONACTIVE
            out["again"] = m._simple_command("COMPRESS", "DEFLATE")
            out["noop"] = m.noop()[0]
            out["wire_in"], out["plain_in"] = m.wire_in, m.plain_in
            out["logout"] = m.logout()[0]
        finally:
            try:
                m.shutdown()
            except OSError:
                pass
        return out

    out = await asyncio.to_thread(run)
    assert "COMPRESS=DEFLATE" not in out["caps_before"]  # only after authentication
    assert b"COMPRESS=DEFLATE" in out["caps"]
    assert out["compress"][0] == "OK"
    assert out["select"] == ("OK", [b"1"])
    typ, data = out["fetch"]
    assert typ == "OK" and data[0][1] == BIG
    assert out["append"] == "OK"
    assert out["search"] == ("OK", [b"1 2"])
    assert out["again"][0] == "NO" and out["again"][1][0].startswith(b"[COMPRESSIONACTIVE]"), out["again"]
    assert out["noop"] == "OK" and out["logout"] == "BYE"
    # the repetitive body travelled compressed: far fewer bytes on the wire than in the clear
    assert out["plain_in"] > len(BIG) > 20 * out["wire_in"], out


async def test_compress_transcript(server, accounts):
    c = await Client.connect(server.port)
    try:
        r = await c.cmd("a COMPRESS DEFLATE")
        assert r[-1].startswith(b"a BAD"), r  # not before authentication
        await c.login()
        r = await c.cmd("b COMPRESS LZ77")
        assert r[-1].startswith(b"b BAD"), r
        # the client may pipeline compressed bytes right after the command: they are kept
        z_out = zlib.compressobj(9, zlib.DEFLATED, -15)
        z_in = zlib.decompressobj(-15)
        piped = z_out.compress(b"c NOOP\r\n") + z_out.flush(zlib.Z_SYNC_FLUSH)
        await c.send(b"d COMPRESS DEFLATE\r\n" + piped)
        assert await c.response_line() == b"d OK DEFLATE active\r\n"  # the last plain response
        plain = b""
        while not plain.endswith(b"c OK NOOP completed.\r\n"):
            plain += z_in.decompress(await asyncio.wait_for(c.reader.read(4096), 10))
        assert plain == b"c OK NOOP completed.\r\n"
        await c.send(z_out.compress(b"e COMPRESS DEFLATE\r\n") + z_out.flush(zlib.Z_SYNC_FLUSH))
        plain = b""
        while b"\r\n" not in plain:
            plain += z_in.decompress(await asyncio.wait_for(c.reader.read(4096), 10))
        assert re.match(rb"e NO \[COMPRESSIONACTIVE\] ", plain), plain
        # a corrupt stream ends the connection with a (compressed) BYE, never a traceback
        await c.send(b"\xff\xff\xff\xff garbage")
        plain = b""
        while True:
            chunk = await asyncio.wait_for(c.reader.read(4096), 10)
            if not chunk:
                break
            plain += z_in.decompress(chunk)
        assert plain.startswith(b"* BYE"), plain
    finally:
        await c.close()


def test_deflate_is_raw_and_bounded():
    d = Deflate()
    out = d.compress([b"* 1 EXISTS\r\n", b"* OK [UIDNEXT 2] Predicted next UID\r\n"])
    # raw deflate (no zlib header), readable with the RFC's -15 window, complete after each flush
    assert zlib.decompressobj(-15).decompress(out) == b"* 1 EXISTS\r\n* OK [UIDNEXT 2] Predicted next UID\r\n"
    assert DEFLATE_WBITS < 0 and (1 << (-DEFLATE_WBITS + 2)) + (1 << (DEFLATE_MEMLEVEL + 9)) <= 128 * 1024
    # a "zip bomb": 10 MB of zeros in a few KB comes out in bounded pieces
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"\0" * 10_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 20_000
    sizes = [len(p) for p in d.inflate(data)]
    assert sum(sizes) == 10_000_000 and max(sizes) <= INFLATE_PIECE
