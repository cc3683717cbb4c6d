"""Exact transcripts against the real server (pymap style): bytes in, response lines compared."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, Client, observer, untagged

from suite.mail.imap.session import AUTH_CAPS


def _strip_text(line: bytes) -> bytes:
    """Tagged line without its human-readable text: ``A1 OK [CODE x]``."""
    m = re.match(rb"(\S+ (?:OK|NO|BAD)(?: \[[^\]]*\])?)", line)
    return m.group(1) if m else line


async def test_greeting_and_capability_before_login(client: Client):
    assert client.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 ")
    r = await client.cmd("a CAPABILITY")
    caps = r[0].split()[2:]
    assert b"STARTTLS" in caps and b"AUTH=PLAIN" in caps and b"LOGINDISABLED" not in caps
    assert b"IDLE" in caps
    assert r[-1].startswith(b"a OK")


async def test_capability_after_login(alice_client: Client):
    r = await alice_client.cmd("a CAPABILITY")
    caps = set(r[0].rstrip().split()[2:])
    for c in AUTH_CAPS:
        assert c.encode() in caps
    assert any(c.startswith(b"APPENDLIMIT=") for c in caps)


async def test_logindisabled_without_tls_from_non_loopback_setting(server, ctx):
    ctx.settings.allow_plaintext_loopback = False
    c = await Client.connect(server.port)
    try:
        assert b"LOGINDISABLED" in c.greeting and b"AUTH=PLAIN" not in c.greeting
        r = await c.cmd('a LOGIN alice@example.test "correct horse battery"')
        assert _strip_text(r[-1]) == b"a NO [PRIVACYREQUIRED]"
        r = await c.cmd("b AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=")
        assert _strip_text(r[-1]) == b"b NO [PRIVACYREQUIRED]"
    finally:
        await c.close()


async def test_login_literal_refused_before_password_without_tls(server, ctx):
    ctx.settings.allow_plaintext_loopback = False
    c = await Client.connect(server.port)
    await c.send(b"a LOGIN {18}\r\n")
    line = await c.response_line()
    assert _strip_text(line) == b"a NO [PRIVACYREQUIRED]"  # no "+": the address is never sent
    await c.close()


async def test_locked_account_is_unavailable(server):
    # the account store locks an address after 10 failures in its window (3 per connection here)
    for n in range(4):
        c = await Client.connect(server.port)
        for i in range(3):
            await c.send(f'x{i} LOGIN alice@example.test "wrong{n}"\r\n'.encode())
            await c.until_tagged(f"x{i}".encode())
        await c.close()
    c = await Client.connect(server.port)
    r = await c.cmd('a LOGIN alice@example.test "correct horse battery"')
    assert _strip_text(r[-1]) == b"a NO [UNAVAILABLE]"
    await c.close()


async def test_login_failure_and_bye_after_three(client: Client):
    for i in range(2):
        r = await client.cmd(f'a{i} LOGIN alice@example.test "wrong"')
        assert _strip_text(r[-1]) == f"a{i} NO [AUTHENTICATIONFAILED]".encode()
    r = await client.cmd('a3 LOGIN alice@example.test "wrong"')
    assert _strip_text(r[-1]) == b"a3 NO [AUTHENTICATIONFAILED]"
    assert (await client.response_line()).startswith(b"* BYE")
    assert await client.reader.read() == b""


async def test_authenticate_plain_sasl_ir_and_continuation(server):
    c = await Client.connect(server.port)
    r = await c.cmd("a AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=")
    assert r[-1].startswith(b"a OK [CAPABILITY IMAP4rev1")
    await c.close()
    c = await Client.connect(server.port)
    await c.send(b"b AUTHENTICATE PLAIN\r\n")
    assert await c.response_line() == b"+ \r\n"
    await c.send(b"AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=\r\n")
    r = await c.until_tagged(b"b")
    assert r[-1].startswith(b"b OK")
    await c.close()
    c = await Client.connect(server.port)
    await c.send(b"c AUTHENTICATE PLAIN\r\n")
    await c.response_line()
    await c.send(b"*\r\n")
    assert (await c.until_tagged(b"c"))[-1].startswith(b"c BAD")
    await c.close()


async def test_commands_in_wrong_state_are_bad(client: Client):
    r = await client.cmd("a SELECT INBOX")
    assert r[-1].startswith(b"a BAD")
    await client.login()
    r = await client.cmd("b FETCH 1 FLAGS")
    assert r[-1].startswith(b"b BAD")
    r = await client.cmd("c FROBNICATE")
    assert r[-1].startswith(b"c BAD")
    r = await client.cmd("d NOOP")
    assert r == [b"d OK NOOP completed.\r\n"]


async def test_twenty_bad_commands_disconnect(client: Client):
    for i in range(19):
        r = await client.cmd(f"x{i} BOGUS")
        assert r[-1].startswith(b"x%d BAD" % i)
    await client.send(b"x19 BOGUS\r\n")
    assert (await client.response_line()).startswith(b"x19 BAD")
    assert (await client.response_line()).startswith(b"* BYE")


async def test_select_output(alice_client: Client, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG, flags=["\\Seen"])
    await store.deliver(alice.id, "INBOX", MSG, flags=["$Label1"])
    mb = await store.get_mailbox(alice.id, "INBOX")
    r = await alice_client.cmd("a SELECT INBOX")
    assert r == [
        b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1)\r\n",
        b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Label1 \\*)] Flags permitted.\r\n",
        b"* 2 EXISTS\r\n",
        b"* 2 RECENT\r\n",
        b"* OK [UNSEEN 2] First unseen.\r\n",
        b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mb.uidvalidity,
        b"* OK [UIDNEXT 3] Predicted next UID\r\n",
        b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % mb.highestmodseq,
        b"* OK [MAILBOXID (M%d)] Ok\r\n" % mb.id,  # RFC 8474 §4.1
        b"a OK [READ-WRITE] Select completed.\r\n",
    ]
    r = await alice_client.cmd("b EXAMINE INBOX")
    assert r[-1] == b"b OK [READ-ONLY] Examine completed.\r\n"
    r = await alice_client.cmd("c ENABLE IMAP4rev2")
    assert r[0] == b"* ENABLED IMAP4rev2\r\n"
    r = await alice_client.cmd("d SELECT inbox")
    assert r[0] == b"* OK [CLOSED] Previous mailbox closed.\r\n"
    assert b"* 0 RECENT\r\n" not in r and b'* LIST () "/" "INBOX"\r\n' in r
    r = await alice_client.cmd("e SELECT nosuch")
    assert _strip_text(r[-1]) == b"e NO [NONEXISTENT]"


async def test_fetch_forms(alice_client: Client, store, accounts):
    alice, _ = accounts
    raw = (
        b"From: a@b.test\r\nSubject: multi\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\npre\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
        b"hello\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"AAECAw==\r\n--XX--\r\n"
    )
    await store.deliver(alice.id, "INBOX", raw, internaldate=1704067200.0)
    await alice_client.cmd("s SELECT INBOX")
    r = await alice_client.cmd("a FETCH 1 (UID FLAGS INTERNALDATE RFC822.SIZE)")
    assert r[
        0
    ] == b'* 1 FETCH (UID 1 FLAGS (\\Recent) INTERNALDATE " 1-Jan-2024 00:00:00 +0000" RFC822.SIZE %d)\r\n' % len(raw)
    r = await alice_client.cmd("b FETCH 1 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (subject)])")
    assert r[0] == (
        b"* 1 FETCH (BODY[1] {5}\r\nhello BODY[2.MIME] {77}\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n BODY[HEADER.FIELDS (SUBJECT)] {18}\r\n"
        b"Subject: multi\r\n\r\n)\r\n"
    )
    r = await alice_client.cmd("c FETCH 1 (BINARY.PEEK[2] BINARY.SIZE[2] BODY.PEEK[]<0.4> BODY.PEEK[9])")
    assert (
        r[0] == b"* 1 FETCH (BINARY[2] ~{4}\r\n\x00\x01\x02\x03 BINARY.SIZE[2] 4 BODY[]<0> {4}\r\nFrom BODY[9] NIL)\r\n"
    )
    # a non-PEEK body fetch sets \Seen and reports FLAGS in the same response (RFC 9051 §6.4.5)
    r = await alice_client.cmd("d FETCH 1 BODY[1]")
    assert r[0] == b"* 1 FETCH (BODY[1] {5}\r\nhello FLAGS (\\Seen \\Recent))\r\n"
    r = await alice_client.cmd("e UID FETCH 1 (RFC822.HEADER)")
    assert r[0].startswith(b"* 1 FETCH (UID 1 RFC822.HEADER {")
    r = await alice_client.cmd("f FETCH 2 FLAGS")
    assert r[-1].startswith(b"f BAD")
    r = await alice_client.cmd("g FETCH 1 (BODY ENVELOPE)")
    assert r[0].startswith(b'* 1 FETCH (BODY (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0)')
    assert b'ENVELOPE (NIL "multi" ((NIL NIL "a" "b.test"))' in r[0]


async def test_store_and_expunge_across_two_sessions(server, store, accounts):
    alice, _ = accounts
    for _ in range(3):
        await store.deliver(alice.id, "INBOX", MSG)
    a = await Client.connect(server.port)
    b = await Client.connect(server.port)
    await a.login()
    await b.login()
    await a.cmd("s SELECT INBOX")
    await b.cmd("s SELECT INBOX")
    o = await observer(server.port)
    r = await a.cmd("a1 STORE 2 +FLAGS (\\Deleted)")
    # a selected first: the three messages are \\Recent in a only (RFC 3501 §2.3.2)
    assert r == [b"* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\n", b"a1 OK Store completed.\r\n"]
    r = await a.cmd("a2 EXPUNGE")
    assert r == [b"* 2 EXPUNGE\r\n", b"a2 OK Expunge completed.\r\n"]
    await o.wait_for(rb"^\* 2 EXPUNGE")  # b has been told too
    # b must not see EXPUNGE during FETCH (RFC 9051 §7.5.1) — but gets the flag change
    r = await b.cmd("b1 FETCH 1:3 UID")
    assert r[:-1] == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 2)\r\n", b"* 3 FETCH (UID 3)\r\n"]
    assert b"EXPUNGE" not in b"".join(r)
    r = await b.cmd("b2 NOOP")
    assert r == [b"* 2 EXPUNGE\r\n", b"b2 OK NOOP completed.\r\n"]
    r = await b.cmd("b3 FETCH 1:* UID")
    assert r[:-1] == [b"* 1 FETCH (UID 1)\r\n", b"* 2 FETCH (UID 3)\r\n"]
    # flag change by a is reported to b as unsolicited FETCH
    await a.cmd("a3 STORE 1 +FLAGS.SILENT (\\Flagged)")
    await o.wait_for(rb"^\* 1 FETCH \(UID 1 FLAGS \(\\Flagged\)\)")
    r = await b.cmd("b4 NOOP")
    assert r == [b"* 1 FETCH (UID 1 FLAGS (\\Flagged))\r\n", b"b4 OK NOOP completed.\r\n"]
    # new message: EXISTS
    await store.deliver(alice.id, "INBOX", MSG)
    await o.wait_for(rb"^\* 3 EXISTS")
    r = await b.cmd("b5 NOOP")
    assert r == [b"* 3 EXISTS\r\n", b"* 1 RECENT\r\n", b"b5 OK NOOP completed.\r\n"]  # b saw it first
    await a.close()
    await b.close()
    await o.close()


async def test_idle_sees_delivery(alice_client: Client, store, accounts):
    alice, _ = accounts
    await alice_client.cmd("s SELECT INBOX")
    await alice_client.send(b"i IDLE\r\n")
    assert await alice_client.response_line() == b"+ idling\r\n"
    await store.deliver(alice.id, "INBOX", MSG)
    assert await alice_client.response_line() == b"* 1 EXISTS\r\n"
    assert await alice_client.response_line() == b"* 1 RECENT\r\n"  # RFC 3501 §7.3.2
    await alice_client.send(b"DONE\r\n")
    assert (await alice_client.until_tagged(b"i")) == [b"i OK Idle completed.\r\n"]


async def test_literals(alice_client: Client):
    await alice_client.send(b"a CREATE {5}\r\n")
    assert await alice_client.response_line() == b"+ OK\r\n"
    await alice_client.send(b"Lit/x\r\n")
    assert (await alice_client.until_tagged(b"a"))[-1].startswith(b"a OK")
    r = await alice_client.cmd(b"b STATUS {5+}\r\nLit/x (MESSAGES UIDNEXT)")
    assert r[0] == b'* STATUS "Lit/x" (MESSAGES 0 UIDNEXT 1)\r\n'
    await alice_client.send(b'c APPEND Lit/x (\\Seen) "01-Jan-2024 00:00:00 +0000" {%d}\r\n' % len(MSG))
    assert await alice_client.response_line() == b"+ OK\r\n"
    await alice_client.send(MSG + b"\r\n")
    r = await alice_client.until_tagged(b"c")
    assert re.fullmatch(rb"c OK \[APPENDUID \d+ 1\] Append completed.\r\n", r[-1])
    r = await alice_client.cmd("d APPEND nosuch {3+}\r\nabc")
    assert _strip_text(r[-1]) == b"d NO [TRYCREATE]"


async def test_search_forms(alice_client: Client, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG, flags=["\\Seen"])
    await store.deliver(alice.id, "INBOX", MSG.replace(b"Hello there", b"Other subject"))
    await store.deliver(alice.id, "INBOX", MSG, flags=["\\Flagged"])
    await alice_client.cmd("s SELECT INBOX")
    assert untagged(await alice_client.cmd("a SEARCH SUBJECT hello")) == [b"* SEARCH 1 3\r\n"]
    assert untagged(await alice_client.cmd("b UID SEARCH UNSEEN")) == [b"* SEARCH 2 3\r\n"]
    assert untagged(await alice_client.cmd("c SEARCH OR SEEN FLAGGED")) == [b"* SEARCH 1 3\r\n"]
    r = await alice_client.cmd("d SEARCH RETURN (MIN MAX COUNT ALL) NOT SEEN")
    assert untagged(r) == [b'* ESEARCH (TAG "d") MIN 2 MAX 3 COUNT 2 ALL 2:3\r\n']
    r = await alice_client.cmd("e UID SEARCH RETURN (SAVE) FLAGGED")
    assert untagged(r) == []
    r = await alice_client.cmd("f FETCH $ (UID)")
    assert untagged(r) == [b"* 3 FETCH (UID 3)\r\n"]
    r = await alice_client.cmd("g SEARCH CHARSET UTF-8 BODY {5+}\r\nlunch")
    assert untagged(r) == [b"* SEARCH 1 2 3\r\n"]
    r = await alice_client.cmd("h SEARCH CHARSET X-NOPE BODY lunch")
    assert _strip_text(r[-1]) == b"h NO [BADCHARSET (US-ASCII UTF-8)]"
    r = await alice_client.cmd("i SEARCH MODSEQ 1")
    # RFC 7162 §3.1: the first CONDSTORE-enabling command is preceded by OK [HIGHESTMODSEQ]
    assert re.fullmatch(rb"\* OK \[HIGHESTMODSEQ \d+\] .*\r\n", untagged(r)[0])
    assert re.fullmatch(rb"\* SEARCH 1 2 3 \(MODSEQ \d+\)\r\n", untagged(r)[1])
    r = await alice_client.cmd("j SEARCH SENTON 2-Jan-2023 LARGER 10 HEADER Message-ID <m1@example.test>")
    assert untagged(r) == [b"* SEARCH 1 2 3\r\n"]


async def test_copy_move_uidplus(alice_client: Client, store, accounts):
    alice, _ = accounts
    for _ in range(3):
        await store.deliver(alice.id, "INBOX", MSG)
    await alice_client.cmd("s SELECT INBOX")
    trash = await store.get_mailbox(alice.id, "Trash")
    r = await alice_client.cmd("a COPY 1:2 Trash")
    assert r == [b"a OK [COPYUID %d 1:2 1:2] Copy completed.\r\n" % trash.uidvalidity]
    r = await alice_client.cmd("b UID MOVE 2:3 Trash")
    assert r == [
        b"* OK [COPYUID %d 2:3 3:4] Moved UIDs.\r\n" % trash.uidvalidity,
        b"* 3 EXPUNGE\r\n",
        b"* 2 EXPUNGE\r\n",
        b"b OK Move completed.\r\n",
    ]
    r = await alice_client.cmd("c COPY 1 Nowhere")
    assert _strip_text(r[-1]) == b"c NO [TRYCREATE]"
    r = await alice_client.cmd("d STATUS Trash (MESSAGES UIDNEXT SIZE)")
    assert r[0] == b'* STATUS "Trash" (MESSAGES 4 UIDNEXT 5 SIZE %d)\r\n' % (4 * len(MSG))


async def test_list_variants(alice_client: Client):
    await alice_client.cmd("a CREATE Work/Projects")
    await alice_client.cmd("a2 CREATE Caf&AOk-")
    r = await alice_client.cmd('b LIST "" *')
    assert untagged(r) == [
        b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n',
        b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Caf&AOk-"\r\n',
        b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n',
        b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n',
        b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n',
        b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n',
        b'* LIST (\\HasChildren) "/" "Work"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Work/Projects"\r\n',
    ]
    assert untagged(await alice_client.cmd('c LIST "" %'))[-1] == b'* LIST (\\HasChildren) "/" "Work"\r\n'
    assert untagged(await alice_client.cmd('d LIST "" ""')) == [b'* LIST (\\Noselect) "/" ""\r\n']
    r = await alice_client.cmd('e LIST (SPECIAL-USE) "" * RETURN (STATUS (MESSAGES))')
    assert untagged(r)[:2] == [
        b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n',
        b'* STATUS "Archive" (MESSAGES 0)\r\n',
    ]
    await alice_client.cmd("f UNSUBSCRIBE Work")
    r = await alice_client.cmd('g LIST (SUBSCRIBED RECURSIVEMATCH) "" Work')
    # RFC 5258 §3.5 / example 5.9: Work is not subscribed itself, a child is
    assert untagged(r) == [b'* LIST (\\HasChildren) "/" "Work" ("CHILDINFO" ("SUBSCRIBED"))\r\n']
    await alice_client.cmd("h ENABLE UTF8=ACCEPT")
    r = await alice_client.cmd('i LIST "" Caf*')
    assert untagged(r) == ['* LIST (\\HasNoChildren) "/" "Café"\r\n'.encode()]


async def test_namespace_quota_id(alice_client: Client):
    assert untagged(await alice_client.cmd("a NAMESPACE")) == [b'* NAMESPACE (("" "/")) NIL NIL\r\n']
    r = await alice_client.cmd("b GETQUOTAROOT INBOX")
    assert untagged(r) == [b'* QUOTAROOT INBOX ""\r\n', b'* QUOTA "" (STORAGE 0 48828)\r\n']
    r = await alice_client.cmd('c SETQUOTA "" (STORAGE 1)')
    assert _strip_text(r[-1]) == b"c NO [NOPERM]"
    r = await alice_client.cmd('d ID ("name" "test")')
    assert untagged(r)[0].startswith(b'* ID ("name" "Suite"')
