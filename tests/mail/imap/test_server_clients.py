"""Real clients against the real server: Python's imaplib, aioimaplib, raw sockets with TLS, two IDLE
sessions, account isolation, timeouts, graceful stop, and durability of APPEND across kill -9."""

from __future__ import annotations

import asyncio
import imaplib
import os
import re
import sys
from pathlib import Path

import aioimaplib
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD, Client, Cluster, client_ssl, imap_cluster, observer, untagged

from suite.mail.store import MailStore

HOST = "127.0.0.1"


# --------------------------------------------------------------------------- imaplib
async def test_imaplib_full_session(server, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    port = server.port

    def run() -> dict:
        out = {}
        m = imaplib.IMAP4(HOST, port)
        try:
            assert m.login("alice@example.test", PASSWORD)[0] == "OK"
            typ, data = m.list()
            out["list"] = data
            typ, data = m.select("INBOX")
            out["exists"] = int(data[0])
            typ, data = m.fetch("1", "(RFC822)")
            out["rfc822"] = data[0][1]
            typ, data = m.fetch("1", "(FLAGS)")
            out["flags_after"] = data[0]
            typ, data = m.search(None, "SUBJECT", '"Hello there"')
            out["search"] = data[0]
            typ, _ = m.append(
                "INBOX", "(\\Flagged)", imaplib.Time2Internaldate(1704067200), MSG.replace(b"Hello", b"Again")
            )
            out["append"] = typ
            m.noop()
            typ, data = m.uid("SEARCH", None, "FLAGGED")
            out["uid_search"] = data[0]
            typ, data = m.store("1", "+FLAGS", "(\\Deleted)")
            out["store"] = data[0]
            typ, data = m.copy("2", "Archive")
            out["copy"] = typ
            typ, data = m._simple_command("MOVE", "2", "Trash")
            out["move"] = typ
            typ, data = m.expunge()
            out["expunge"] = data
            typ, data = m.status("Trash", "(MESSAGES)")
            out["status"] = data[0]
            # IDLE via raw protocol (imaplib has no IDLE before 3.14)
            tag = m._new_tag()
            m.send(tag + b" IDLE\r\n")
            out["idle_cont"] = m.readline()
            m.send(b"DONE\r\n")
            out["idle_end"] = m.readline()
            m.logout()
        finally:
            try:
                m.shutdown()
            except OSError:
                pass
        return out

    out = await asyncio.to_thread(run)
    assert b'(\\HasNoChildren \\Trash) "/" "Trash"' in out["list"]
    assert out["exists"] == 1
    assert out["rfc822"] == MSG
    assert out["flags_after"] == b"1 (FLAGS (\\Seen \\Recent))"  # RFC822 fetch set \Seen; first seen here
    assert out["search"] == b"1"
    assert out["append"] == "OK"
    assert out["uid_search"] == b"2"
    assert out["store"] == b"1 (FLAGS (\\Seen \\Deleted \\Recent))"
    assert out["copy"] == "OK" and out["move"] == "OK"
    assert out["expunge"] == [b"2", b"1"]  # imaplib also collects the EXPUNGE that MOVE sent
    assert out["status"] == b'"Trash" (MESSAGES 1)'
    assert out["idle_cont"] == b"+ idling\r\n" and out["idle_end"].endswith(b" OK Idle completed.\r\n")
    inbox = await store.get_mailbox(alice.id, "INBOX")
    assert await store.messages(inbox.id) == []


async def test_imaplib_starttls_then_login(server, ctx):
    ctx.settings.allow_plaintext_loopback = False
    port = server.port
    sslctx = client_ssl(server)

    def run():
        m = imaplib.IMAP4(HOST, port)
        caps_before = m.capabilities
        m.starttls(ssl_context=sslctx)
        caps_after = m.capabilities
        typ, _ = m.login("alice@example.test", PASSWORD)
        typ2, _ = m.select("INBOX")
        m.logout()
        return caps_before, caps_after, typ, typ2

    before, after, typ, typ2 = await asyncio.to_thread(run)
    assert "LOGINDISABLED" in before and "STARTTLS" in before
    assert "LOGINDISABLED" not in after and "STARTTLS" not in after and "AUTH=PLAIN" in after
    assert (typ, typ2) == ("OK", "OK")


async def test_imaps_implicit_tls(server, ctx):
    ctx.settings.allow_plaintext_loopback = False
    c = await Client.connect(server.tls_port, ssl_ctx=client_ssl(server))
    try:
        assert b"AUTH=PLAIN" in c.greeting and b"STARTTLS" not in c.greeting
        await c.login()
        r = await c.cmd("a STARTTLS")
        assert r[-1].startswith(b"a BAD")
    finally:
        await c.close()


async def test_starttls_drops_pipelined_plaintext(server):
    c = await Client.connect(server.port)
    # the NOOP pipelined in the same packet must never be answered (RFC 9051 §11.1)
    await c.send(b"a STARTTLS\r\nb NOOP\r\n")
    assert await c.response_line() == b"a OK Begin TLS negotiation now.\r\n"
    sslctx = client_ssl(server)
    reader, writer = c.reader, c.writer
    await writer.start_tls(sslctx, server_hostname="localhost")
    writer.write(b"c CAPABILITY\r\n")
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    assert line.startswith(b"* CAPABILITY ") and b"STARTTLS" not in line
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"c OK")
    await c.close()


# --------------------------------------------------------------------------- aioimaplib
def _b(x) -> bytes:
    return x.encode() if isinstance(x, str) else bytes(x)


async def test_aioimaplib_idle_receives_delivery(server, store, accounts):
    alice, _ = accounts
    client = aioimaplib.IMAP4(host=HOST, port=server.port, timeout=10)
    await client.wait_hello_from_server()
    assert (await client.login("alice@example.test", PASSWORD)).result == "OK"
    assert (await client.select("INBOX")).result == "OK"
    idle = await client.idle_start(timeout=10)  # returns once the server's "+ idling" came
    await MailStore(server.ctx).deliver(alice.id, "INBOX", MSG)
    push = await client.wait_server_push(timeout=10)
    client.idle_done()
    assert (await asyncio.wait_for(idle, 10)).result == "OK"
    assert b"1 EXISTS" in b"".join(_b(x) for x in push)
    r = await client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert r.result == "OK" and any(b"Subject: Hello there" in _b(x) for x in r.lines)
    await client.logout()


# --------------------------------------------------------------------------- two sessions
async def test_two_idle_sessions_see_delivery_and_flags(server, store, accounts):
    alice, _ = accounts
    a = await Client.connect(server.port)
    b = await Client.connect(server.port)
    await b.login()
    await b.cmd("e ENABLE IMAP4rev2")  # b is an IMAP4rev2 session: no \\Recent (RFC 9051 App. E)
    for c in (a, b):
        await c.login() if c is a else None
        await c.cmd("s SELECT INBOX")
        await c.send(b"i IDLE\r\n")
        assert await c.response_line() == b"+ idling\r\n"
    await store.deliver(alice.id, "INBOX", MSG)
    assert await a.response_line() == b"* 1 EXISTS\r\n"
    assert await a.response_line() == b"* 1 RECENT\r\n"  # a (IMAP4rev1) gets it as recent
    assert await b.response_line() == b"* 1 EXISTS\r\n"
    # a leaves IDLE, flags the message; b (still idling) sees the FETCH at once
    await a.send(b"DONE\r\n")
    assert await a.response_line() == b"i OK Idle completed.\r\n"
    r = await a.cmd("f STORE 1 +FLAGS (\\Flagged)")
    assert r[0] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    assert await b.response_line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n"
    # expunge by a: b is idling, so EXPUNGE may be sent right away
    await a.cmd("g STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert await b.response_line() == b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Deleted))\r\n"
    await a.cmd("h EXPUNGE")
    assert await b.response_line() == b"* 1 EXPUNGE\r\n"
    await b.send(b"DONE\r\n")
    assert await b.response_line() == b"i OK Idle completed.\r\n"
    await a.close()
    await b.close()


async def test_fetch_of_message_expunged_by_other_session(server, store, accounts):
    """The ghost keeps its number; content is served while the blob exists (Dovecot-like)."""
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    await store.deliver(alice.id, "INBOX", MSG)
    a = await Client.connect(server.port)
    b = await Client.connect(server.port)
    for c in (a, b):
        await c.login()
        await c.cmd("s SELECT INBOX")
    o = await observer(server.port)
    await a.cmd("x STORE 1 +FLAGS.SILENT (\\Deleted)")
    await a.cmd("y EXPUNGE")
    await o.wait_for(rb"^\* 1 EXPUNGE")  # b has been told of the expunge: its FETCH meets a ghost
    await o.close()
    r = await b.cmd("f FETCH 1:2 (UID RFC822.SIZE)")
    assert untagged(r)[-2:] == [
        b"* 1 FETCH (UID 1 RFC822.SIZE %d)\r\n" % len(MSG),
        b"* 2 FETCH (UID 2 RFC822.SIZE %d)\r\n" % len(MSG),
    ]
    assert b"EXPUNGE" not in b"".join(r)
    r = await b.cmd("g UID FETCH 1:* UID")  # UID commands may report the expunge (RFC 9051 §7.5.1)
    assert b"* 1 EXPUNGE\r\n" in r
    r = await b.cmd("h FETCH 1 UID")
    assert untagged(r) == [b"* 1 FETCH (UID 2)\r\n"]
    await a.close()
    await b.close()


# --------------------------------------------------------------------------- isolation
async def test_account_isolation(server, store, accounts):
    _, bob = accounts
    await store.create_mailbox(bob.id, "BobSecret")
    await store.deliver(bob.id, "BobSecret", MSG)
    await store.deliver(bob.id, "INBOX", MSG)
    c = await Client.connect(server.port)
    await c.login()
    listing = b"".join(await c.cmd('a LIST "" *'))
    assert b"BobSecret" not in listing
    for name in ("BobSecret", "bob@example.test/BobSecret", "~bob/BobSecret", "../bob/BobSecret", "#shared/bob"):
        r = await c.cmd(f'b SELECT "{name}"')
        assert r[-1].startswith(b"b NO [NONEXISTENT]"), (name, r)
        r = await c.cmd(f'c STATUS "{name}" (MESSAGES)')
        assert r[-1].startswith(b"c NO [NONEXISTENT]"), (name, r)
        r = await c.cmd(f'd APPEND "{name}" {{3+}}\r\nabc')
        assert r[-1].startswith(b"d NO [TRYCREATE]"), (name, r)
        r = await c.cmd(f'e GETQUOTAROOT "{name}"')
        assert r[-1].startswith(b"e NO [NONEXISTENT]")
    # alice's INBOX is her own (empty), not bob's
    r = await c.cmd("f SELECT INBOX")
    assert b"* 0 EXISTS\r\n" in r
    r = await c.cmd("g COPY 1 BobSecret")
    assert r[-1].startswith(b"g BAD")  # no message 1 in alice's INBOX
    r = await c.cmd("h DELETE BobSecret")
    assert r[-1].startswith(b"h NO [NONEXISTENT]")
    r = await c.cmd("i RENAME BobSecret Mine")
    assert r[-1].startswith(b"i NO [NONEXISTENT]")
    await c.close()
    bobs = await store.get_mailbox(bob.id, "BobSecret")
    assert bobs is not None and len(await store.messages(bobs.id)) == 1


async def test_app_password_with_imap_scope(server, ctx):
    _, secret = await ctx.accounts.add_app_password("alice@example.test", "phone", ["imap"])
    _, smtp_only = await ctx.accounts.add_app_password("alice@example.test", "other", ["smtp"])
    c = await Client.connect(server.port)
    r = await c.cmd(f'a LOGIN alice@example.test "{smtp_only}"')
    assert r[-1].startswith(b"a NO [AUTHENTICATIONFAILED]")
    r = await c.cmd(f'b LOGIN alice@example.test "{secret}"')
    assert r[-1].startswith(b"b OK")
    await c.close()


# --------------------------------------------------------------------------- timeouts and stop
async def test_idle_timeout_before_login(server):
    server.shared.timeout_unauthenticated = 0.3
    c = await Client.connect(server.port)
    line = await c.response_line(timeout=5)
    assert line.startswith(b"* BYE Disconnected for inactivity")
    await c.close()


async def test_idle_timeout_after_login(server):
    server.shared.timeout_authenticated = 0.3
    c = await Client.connect(server.port)
    await c.login()
    await c.cmd("s SELECT INBOX")
    assert (await c.response_line(timeout=5)).startswith(b"* BYE Disconnected for inactivity")
    await c.close()


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "between-commands"])
async def test_graceful_stop_sends_bye(ctx, accounts, idle):
    from suite.mail.imap.server import ImapService

    ctx.settings.imap_port = 0
    ctx.settings.imaps_port = 0
    ctx.settings.allow_plaintext_loopback = True
    svc = ImapService(ctx, auth_delay=0.01)
    await svc.start()
    c = await Client.connect(svc.port)
    await c.login()
    await c.cmd("s SELECT INBOX")
    if idle:
        await c.send(b"i IDLE\r\n")
        assert await c.response_line() == b"+ idling\r\n"
    await svc.stop()
    assert await c.response_line() == b"* BYE Server shutting down.\r\n"
    assert await c.reader.read() == b""
    await c.close()


# --------------------------------------------------------------------------- durability
def test_append_survives_kill_9(tmp_path, db_url):
    cluster = imap_cluster(tmp_path, db_url)
    body = MSG + b"\r\n" + os.urandom(3000).hex().encode() + b"\r\n"
    proc = cluster.serve("imap", "imap")
    port = proc.ports["imap_port"]
    try:
        m = imaplib.IMAP4(HOST, port)
        m.login("alice@example.test", PASSWORD)
        typ, data = m.append("INBOX", None, None, body)
        assert typ == "OK" and b"APPENDUID" in data[0]
        uid = int(re.search(rb"APPENDUID \d+ (\d+)", data[0]).group(1))
        Cluster.kill9(proc)  # no graceful anything, right after the tagged OK
        proc = cluster.restart(proc)
        m = imaplib.IMAP4(HOST, port)
        m.login("alice@example.test", PASSWORD)
        m.select("INBOX")
        typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK" and data[0][1] == body
        m.logout()
    finally:
        assert cluster.stop_all() == []
