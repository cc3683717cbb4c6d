"""MULTIAPPEND (RFC 3502): several messages in one APPEND, stored all or none — byte transcripts
against the running server and a kill -9 of a ``suite serve --only imap`` subprocess in the middle
of one; on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD, Client, Cluster, imap_cluster, untagged

HOST = "127.0.0.1"


def _lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


def _tagged(lines: list[bytes]) -> bytes:
    m = re.match(rb"(\S+ (?:OK|NO|BAD)(?: \[[^\]]*\])?)", lines[-1])
    assert m, lines
    return m.group(1)


async def _count(c: Client, mailbox: str) -> int:
    r = await c.cmd(f"n STATUS {mailbox} (MESSAGES)")
    return int(re.search(rb"MESSAGES (\d+)", r[0]).group(1))


async def test_multiappend_transcript(alice_client: Client, store, accounts):
    alice, _ = accounts
    c = alice_client
    r = await c.cmd("a CAPABILITY")
    assert b" MULTIAPPEND" in r[0]
    m2 = MSG.replace(b"Hello there", b"Second")
    # RFC 3502 §6.3.11: append-message = [SP flag-list] [SP date-time] SP literal, repeated
    await c.send(
        b"b APPEND INBOX (\\Seen) "
        + _lit(MSG)
        + b' (\\Flagged $Work) "02-Jan-2023 10:00:00 +0000" '
        + _lit(m2)
        + b"\r\n"
    )
    r = await c.until_tagged(b"b")
    uidvalidity = (await store.get_mailbox(alice.id, "INBOX")).uidvalidity
    assert r == [b"b OK [APPENDUID %d 1:2] Append completed.\r\n" % uidvalidity], r
    await c.cmd("s SELECT INBOX")
    r = await c.cmd("f FETCH 1:2 (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert untagged(r)[0].startswith(b"* 1 FETCH (FLAGS (\\Seen \\Recent) INTERNALDATE ")
    assert untagged(r)[1].startswith(b'* 2 FETCH (FLAGS (\\Flagged $Work \\Recent) INTERNALDATE " 2-Jan-2023 10:00:00')
    assert b"Subject: Second" in untagged(r)[1]
    # into the selected mailbox: one EXISTS for the lot, new keywords announced first
    await c.send(b"c APPEND INBOX (NewKw) " + _lit(MSG) + b" " + _lit(m2) + b" " + _lit(MSG) + b"\r\n")
    r = await c.until_tagged(b"c")
    assert r[0].startswith(b"* FLAGS (") and b"NewKw" in r[0], r
    assert r[2:] == [
        b"* 5 EXISTS\r\n",
        b"* 5 RECENT\r\n",
        b"c OK [APPENDUID %d 3:5] Append completed.\r\n" % uidvalidity,
    ]


async def test_multiappend_is_all_or_nothing(alice_client: Client, store, accounts, ctx):
    c = alice_client
    await c.cmd("a CREATE Box")
    # RFC 3502 §6.3.11: a zero-length message fails the command, and none of the others is added
    await c.send(b"b APPEND Box " + _lit(MSG) + b" " + _lit(MSG) + b" {0+}\r\n\r\n")
    r = await c.until_tagged(b"b")
    assert _tagged(r) == b"b NO [CANNOT]", r
    assert await _count(c, "Box") == 0
    # the quota would take the first messages but not all of them: none is stored
    used = (await ctx.accounts.get_by_id(accounts[0].id)).used_bytes
    await ctx.accounts.set_quota("alice@example.test", used + 2 * len(MSG) + 10)
    await c.send(b"c APPEND Box " + _lit(MSG) + b" " + _lit(MSG) + b" " + _lit(MSG) + b"\r\n")
    r = await c.until_tagged(b"c")
    assert _tagged(r) == b"c NO [OVERQUOTA]", r
    assert await _count(c, "Box") == 0
    assert (await ctx.accounts.get_by_id(accounts[0].id)).used_bytes == used  # nothing charged
    # a message that does not parse: BAD, none stored
    await c.send(b"d APPEND Box " + _lit(MSG) + b" (\\Seen) NOTALITERAL\r\n")
    r = await c.until_tagged(b"d")
    assert _tagged(r) == b"d BAD", r
    assert await _count(c, "Box") == 0
    r = await c.cmd("e APPEND Nowhere {5+}\r\nHello")
    assert _tagged(r) == b"e NO [TRYCREATE]", r


# --------------------------------------------------------------------------- kill -9
def _recv_until(sock: socket.socket, end: bytes, timeout: float = 30) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while end not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed: {data!r}")
        data += chunk
    return data


def _blob_files(root: Path) -> int:
    return sum(1 for p in root.glob("??/??/*") if p.is_file()) if root.exists() else 0


def _status_messages(port: int, mailbox: str) -> int:
    with socket.create_connection((HOST, port)) as s:
        _recv_until(s, b"\r\n")
        s.sendall(b'a LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n')
        _recv_until(s, b"a OK")
        s.sendall(b"b STATUS " + mailbox.encode() + b" (MESSAGES)\r\n")
        data = _recv_until(s, b"b OK")
        return int(re.search(rb"MESSAGES (\d+)", data).group(1))


def test_multiappend_killed_mid_command_stores_none(tmp_path, db_url):
    cluster = imap_cluster(tmp_path, db_url)
    n = 60
    messages = [MSG + b"\r\n" + os.urandom(2000).hex().encode() + b"\r\n" for _ in range(n)]
    proc = cluster.serve("imap", "imap")
    imap_port = proc.ports["imap_port"]
    try:
        with socket.create_connection((HOST, imap_port)) as s:
            _recv_until(s, b"\r\n")
            s.sendall(b'a LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n')
            _recv_until(s, b"a OK")
            # 1) killed while the client is still sending the messages: the first ones have
            #    arrived whole, the last one is half sent
            s.sendall(b"b APPEND INBOX" + b"".join(b" " + _lit(m) for m in messages[:-1]) + b" {%d+}\r\n" % len(MSG))
            s.sendall(MSG[:20])
            time.sleep(0.2)  # let the server read what it can: no assertion on time
            Cluster.kill9(proc)
        proc = cluster.restart(proc)
        assert _status_messages(imap_port, "INBOX") == 0
        # 2) killed while the server is storing a complete MULTIAPPEND (half of its blobs are on
        #    disk): afterwards there are none of the messages (or, had it finished, all)
        blobs = tmp_path / "data" / "blobs"
        on_disk = _blob_files(blobs)
        with socket.create_connection((HOST, imap_port)) as s:
            _recv_until(s, b"\r\n")
            s.sendall(b'a LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n')
            _recv_until(s, b"a OK")
            s.sendall(b"c APPEND INBOX" + b"".join(b" " + _lit(m) for m in messages) + b"\r\n")
            deadline = time.time() + 30
            while _blob_files(blobs) - on_disk < n // 2:
                assert time.time() < deadline, "the server never stored the blobs"
                time.sleep(0.001)
            Cluster.kill9(proc)
        proc = cluster.restart(proc)
        assert _status_messages(imap_port, "INBOX") in (0, n)
        # 3) the same command completed: the tagged OK means every message is there after kill -9
        with socket.create_connection((HOST, imap_port)) as s:
            _recv_until(s, b"\r\n")
            s.sendall(b'a LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n')
            _recv_until(s, b"a OK")
            before = _status_messages(imap_port, "INBOX")
            s.sendall(b"d APPEND INBOX" + b"".join(b" " + _lit(m) for m in messages) + b"\r\n")
            assert b"d OK [APPENDUID" in _recv_until(s, b"d OK")
            Cluster.kill9(proc)
        proc = cluster.restart(proc)
        assert _status_messages(imap_port, "INBOX") == before + n
    finally:
        assert cluster.stop_all() == []
