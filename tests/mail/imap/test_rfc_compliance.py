"""Byte transcripts for the classes of answers a held-out IMAP compliance suite found wrong
(issue 12), each written from the RFC section it cites; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import Client, untagged

SENT_MSGS = [
    # (Date: header, internal date as a unix time) — the header's date as written is what counts
    (b"Date: Sun, 01 Jan 2023 23:30:00 -0500\r\n", 1672617600.0),  # written 1 Jan (UTC: 2 Jan)
    (b"Date: Mon, 02 Jan 2023 00:30:00 +0200\r\n", 1672531200.0),  # written 2 Jan (UTC: 1 Jan)
    (b"", 1672704000.0),  # no Date: → internal date 3 Jan 2023
    (b"Date: not a date at all\r\n", 1672790400.0),  # unparsable → internal date 4 Jan 2023
]


def _msg(date_header: bytes, subject: bytes = b"Hi", body: bytes = b"Body\r\n") -> bytes:
    return b"From: a@example.test\r\nTo: b@example.test\r\nSubject: " + subject + b"\r\n" + date_header + b"\r\n" + body


def _tagged(lines: list[bytes]) -> bytes:
    """The tagged line without its text: ``a OK [CODE]`` / ``a BAD``."""
    m = re.match(rb"(\S+ (?:OK|NO|BAD)(?: \[[^\]]*\])?)", lines[-1])
    assert m, lines
    return m.group(1)


async def _search(c: Client, query: str) -> bytes:
    r = await c.cmd("s " + query)
    assert r[-1].startswith(b"s OK"), r
    (line,) = [x for x in r if x.startswith(b"* SEARCH")]
    return line.rstrip()


# ------------------------------------------------------------------ RFC 9051 §6.4.4 SENT*
async def test_sent_dates_compare_the_written_date(alice_client: Client, store, accounts):
    alice, _ = accounts
    for hdr, internal in SENT_MSGS:
        await store.deliver(alice.id, "INBOX", _msg(hdr), internaldate=internal)
    c = alice_client
    await c.cmd("a SELECT INBOX")
    # RFC 9051 §6.4.4: "disregarding time and timezone"; no/unparsable Date: → internal date
    assert await _search(c, "SEARCH SENTON 1-Jan-2023") == b"* SEARCH 1"
    assert await _search(c, "SEARCH SENTON 2-Jan-2023") == b"* SEARCH 2"
    assert await _search(c, "SEARCH SENTON 3-Jan-2023") == b"* SEARCH 3"
    assert await _search(c, "SEARCH SENTON 4-Jan-2023") == b"* SEARCH 4"
    assert await _search(c, "SEARCH SENTBEFORE 2-Jan-2023") == b"* SEARCH 1"
    assert await _search(c, "SEARCH SENTSINCE 2-Jan-2023") == b"* SEARCH 2 3 4"
    assert await _search(c, "SEARCH NOT SENTSINCE 3-Jan-2023") == b"* SEARCH 1 2"
    assert await _search(c, "SEARCH NOT SENTON 2-Jan-2023") == b"* SEARCH 1 3 4"
    assert await _search(c, "SEARCH 2:* SENTBEFORE 4-Jan-2023") == b"* SEARCH 2 3"
    assert await _search(c, "SEARCH 1,3:4 NOT SENTBEFORE 3-Jan-2023") == b"* SEARCH 3 4"
    assert await _search(c, "UID SEARCH OR SENTON 1-Jan-2023 SENTON 4-Jan-2023") == b"* SEARCH 1 4"


# ------------------------------------------------------------------ RFC 9051 §6.4.6, §9 seq-number
async def test_sequence_set_in_empty_mailbox_is_bad_not_serverbug(alice_client: Client):
    c = alice_client
    await c.cmd("z CREATE Empty")
    await c.cmd("a SELECT Empty")
    for i, cmd in enumerate(
        ["STORE 1:* +FLAGS (\\Deleted)", "FETCH 1:* FLAGS", "COPY * INBOX", "MOVE 1 INBOX", "STORE * FLAGS ()"]
    ):
        r = await c.cmd(f"b{i} {cmd}")
        assert _tagged(r) == f"b{i} BAD".encode(), r
        assert b"empty" in r[-1] and b"SERVERBUG" not in r[-1]
    # the UID forms name UIDs, and UIDs not in the mailbox are ignored (RFC 9051 §6.4.9)
    r = await c.cmd("u UID STORE 1:* +FLAGS (\\Deleted)")
    assert _tagged(r) == b"u OK", r
    assert await _search(c, "SEARCH 1:*") == b"* SEARCH"


# ------------------------------------------------------------------ RFC 3516 §4.2, RFC 9051 §7.5.2
EMPTY_PART = (
    b"From: a@example.test\r\nSubject: empty part\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n--b--\r\n"
)


async def test_empty_part_is_an_empty_literal(alice_client: Client, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", EMPTY_PART)
    c = alice_client
    await c.cmd("a SELECT INBOX")
    r = await c.cmd("b FETCH 1 (BODY.PEEK[1] BINARY.PEEK[1] BINARY.SIZE[1])")
    assert r[0] == b"* 1 FETCH (BODY[1] {0}\r\n BINARY[1] {0}\r\n BINARY.SIZE[1] 0)\r\n", r
    assert _tagged(r) == b"b OK"
    # a single-part message with an empty body: part 1 is that body
    await store.deliver(alice.id, "INBOX", b"From: a@example.test\r\nSubject: nothing\r\n\r\n")
    await c.cmd("n NOOP")
    r = await c.cmd("d FETCH 2 (BODY.PEEK[1] BINARY.PEEK[1] BODY.PEEK[TEXT] BINARY.PEEK[1]<0.10>)")
    assert r[0] == b"* 2 FETCH (BODY[1] {0}\r\n BINARY[1] {0}\r\n BODY[TEXT] {0}\r\n BINARY[1]<0> {0}\r\n)\r\n", r


async def _connect_to(other: Client) -> Client:
    """A second logged-in connection to the server ``other`` talks to."""
    port = other.writer.get_extra_info("peername")[1]
    c = await Client.connect(port)
    await c.login()
    return c


# ------------------------------------------------------------------ RFC 7162 §3.1, §3.1.5 / RFC 4731
async def test_first_condstore_command_announces_highestmodseq(alice_client: Client, store, accounts):
    alice, _ = accounts
    for i in range(3):
        await store.deliver(alice.id, "INBOX", _msg(b"", b"m%d" % i))
    c = alice_client
    r = await c.cmd("a SELECT INBOX")
    (hms,) = [x for x in r if b"[HIGHESTMODSEQ " in x]
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", hms).group(1))
    r = await c.cmd("b FETCH 1 (MODSEQ)")
    # RFC 7162 §3.1: the first CONDSTORE-enabling command with a mailbox selected gets the
    # untagged OK [HIGHESTMODSEQ] first
    assert r[0].startswith(b"* OK [HIGHESTMODSEQ %d]" % highest), r
    assert re.match(rb"\* 1 FETCH \(MODSEQ \(\d+\)\)\r\n", r[1]), r
    # only the first one
    r = await c.cmd("c FETCH 1 (MODSEQ)")
    assert not any(b"HIGHESTMODSEQ" in x for x in r), r
    r = await c.cmd("d ENABLE CONDSTORE")
    assert untagged(r) == [b"* ENABLED CONDSTORE\r\n"], r
    # ENABLE CONDSTORE is a CONDSTORE-enabling command too: announced when a mailbox is selected
    c2 = await _connect_to(c)
    try:
        await c2.cmd("s SELECT INBOX")
        r = await c2.cmd("e ENABLE CONDSTORE")
        assert untagged(r)[0] == b"* ENABLED CONDSTORE\r\n", r
        assert untagged(r)[1].startswith(b"* OK [HIGHESTMODSEQ %d]" % highest), r
    finally:
        await c2.close()


async def test_esearch_min_max_modseq_is_of_the_returned_messages(alice_client: Client, store, accounts):
    alice, _ = accounts
    for i in range(4):
        await store.deliver(alice.id, "INBOX", _msg(b"", b"m%d" % i))
    c = alice_client
    await c.cmd("a ENABLE CONDSTORE")
    await c.cmd("b SELECT INBOX")
    await c.cmd("c STORE 4 +FLAGS (\\Flagged)")  # message 4 gets the highest MODSEQ
    r = await c.cmd("d FETCH 1:4 (MODSEQ)")
    ms = {
        int(m.group(1)): int(m.group(2)) for m in (re.match(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)", x) for x in r) if m
    }
    assert ms[4] > ms[3] > ms[2] > ms[1]
    r = await c.cmd("e SEARCH RETURN (MIN) MODSEQ 1")
    assert untagged(r) == [b'* ESEARCH (TAG "e") MIN 1 MODSEQ %d\r\n' % ms[1]], r
    r = await c.cmd("f SEARCH RETURN (MAX) 1:3 MODSEQ 1")
    assert untagged(r) == [b'* ESEARCH (TAG "f") MAX 3 MODSEQ %d\r\n' % ms[3]], r
    r = await c.cmd("g SEARCH RETURN (MIN MAX) 1:3 MODSEQ 1")
    assert untagged(r) == [b'* ESEARCH (TAG "g") MIN 1 MAX 3 MODSEQ %d\r\n' % ms[3]], r
    # with ALL/COUNT it is the highest of every match (RFC 7162 §3.1.5)
    r = await c.cmd("h SEARCH RETURN (MIN COUNT) MODSEQ 1")
    assert untagged(r) == [b'* ESEARCH (TAG "h") MIN 1 COUNT 4 MODSEQ %d\r\n' % ms[4]], r


# ------------------------------------------------------------------ RFC 6851 §3.3 MOVE into itself
async def test_move_into_the_selected_mailbox(alice_client: Client, store, accounts):
    alice, _ = accounts
    for i in range(3):
        await store.deliver(alice.id, "INBOX", _msg(b"", b"m%d" % i))
    c = alice_client
    r = await c.cmd("a SELECT INBOX")
    uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", b"".join(r)).group(1))
    r = await c.cmd("b MOVE 1:2 INBOX")
    assert r[0] == b"* OK [COPYUID %d 1:2 4:5] Moved UIDs.\r\n" % uidvalidity, r
    assert b"".join(r[1:-1]) == b"* 2 EXPUNGE\r\n* 1 EXPUNGE\r\n* 3 EXISTS\r\n* 3 RECENT\r\n", r
    assert _tagged(r) == b"b OK"
    r = await c.cmd("c FETCH 1:* (UID)")
    assert untagged(r) == [b"* 1 FETCH (UID 3)\r\n", b"* 2 FETCH (UID 4)\r\n", b"* 3 FETCH (UID 5)\r\n"], r
    r = await c.cmd("d UID MOVE 4 INBOX")
    assert r[0] == b"* OK [COPYUID %d 4 6] Moved UIDs.\r\n" % uidvalidity, r
    assert b"".join(r[1:-1]) == b"* 2 EXPUNGE\r\n* 3 EXISTS\r\n* 3 RECENT\r\n", r


# ------------------------------------------------------------------ RFC 9051 §7.3.5, RFC 3501 §7.2.6
async def test_new_keyword_from_another_session_is_announced_first(server, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", _msg(b""))
    a = await Client.connect(server.port)
    b = await Client.connect(server.port)
    try:
        await a.login()
        await b.login()
        r = await a.cmd("a1 SELECT INBOX")
        assert b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n" in r
        await b.cmd("b1 SELECT INBOX")
        r = await b.cmd("b2 STORE 1 +FLAGS ($New)")
        assert r[:2] == [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $New)\r\n",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $New \\*)] Flags permitted.\r\n",
        ], r
        r = await a.cmd("a2 NOOP")
        assert r[:3] == [
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $New)\r\n",
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $New \\*)] Flags permitted.\r\n",
            b"* 1 FETCH (UID 1 FLAGS ($New \\Recent))\r\n",  # a selected first: recent in a
        ], r
        # a keyword already announced is not announced again, even when no message has it any more
        await b.cmd("b3 STORE 1 -FLAGS ($New)")
        await b.cmd("b4 STORE 1 +FLAGS ($new)")
        r = await a.cmd("a3 NOOP")
        assert not any(x.startswith(b"* FLAGS") for x in r), r
        # a new message delivered with a new keyword: FLAGS before EXISTS and its FETCH
        await store.deliver(alice.id, "INBOX", _msg(b""), flags=["Work"])
        r = await a.cmd("a4 NOOP")
        assert r[0].startswith(b"* FLAGS (") and b" Work)" in r[0], r
        assert r[2:4] == [b"* 2 EXISTS\r\n", b"* 2 RECENT\r\n"], r
    finally:
        await a.close()
        await b.close()


# ------------------------------------------------------------------ RFC 3501 §2.3.2 \Recent
async def _connect(server, rev2: bool = False) -> Client:
    c = await Client.connect(server.port)
    await c.login()
    if rev2:
        assert (await c.cmd("e ENABLE IMAP4rev2"))[0] == b"* ENABLED IMAP4rev2\r\n"
    return c


async def test_recent_is_given_to_exactly_one_rev1_session(server, store, accounts):
    alice, _ = accounts
    for i in range(2):
        await store.deliver(alice.id, "INBOX", _msg(b"", b"m%d" % i))
    a, b, v2 = await _connect(server), await _connect(server), await _connect(server, rev2=True)
    try:
        r = await a.cmd("a1 SELECT INBOX")
        assert b"* 2 RECENT\r\n" in r  # RFC 3501 §7.3.2: a is the first session to see them
        r = await b.cmd("b1 SELECT INBOX")
        assert b"* 0 RECENT\r\n" in r  # ... so b is not
        r = await v2.cmd("v1 SELECT INBOX")
        assert not any(b"RECENT" in x for x in r)  # RFC 9051 Appendix E: no RECENT in IMAP4rev2
        r = await a.cmd("a2 FETCH 1:2 (FLAGS)")
        assert untagged(r) == [b"* 1 FETCH (FLAGS (\\Recent))\r\n", b"* 2 FETCH (FLAGS (\\Recent))\r\n"]
        r = await b.cmd("b2 FETCH 1:2 (FLAGS)")
        assert untagged(r) == [b"* 1 FETCH (FLAGS ())\r\n", b"* 2 FETCH (FLAGS ())\r\n"]
        # \Recent survives a flag change made by the session (it cannot be stored, RFC 3501 §2.3.2)
        r = await a.cmd("a3 STORE 1 FLAGS (\\Seen)")
        assert untagged(r) == [b"* 1 FETCH (FLAGS (\\Seen \\Recent))\r\n"]
        r = await a.cmd("a4 STORE 1 FLAGS (\\Recent)")
        assert _tagged(r) == b"a4 BAD", r
        assert await _search(a, "SEARCH RECENT") == b"* SEARCH 1 2"
        assert await _search(a, "SEARCH NEW") == b"* SEARCH 2"  # RECENT UNSEEN
        assert await _search(a, "SEARCH OLD") == b"* SEARCH"
        assert await _search(b, "SEARCH RECENT") == b"* SEARCH"
        assert await _search(b, "SEARCH OLD") == b"* SEARCH 1 2"
        # a new message: the first rev1 session to sync gets it (here b), then no one else
        await store.deliver(alice.id, "INBOX", _msg(b"", b"m2"))
        r = await b.cmd("b3 NOOP")
        assert r == [b"* 3 EXISTS\r\n", b"* 1 RECENT\r\n", b"b3 OK NOOP completed.\r\n"], r
        r = await a.cmd("a5 NOOP")
        assert r == [b"* 3 EXISTS\r\n", b"a5 OK NOOP completed.\r\n"], r
        r = await v2.cmd("v2 NOOP")  # (it also learns of a's \\Seen)
        assert r[-2:] == [b"* 3 EXISTS\r\n", b"v2 OK NOOP completed.\r\n"], r
        r = await v2.cmd("v3 FETCH 1:3 (FLAGS)")
        assert b"\\Recent" not in b"".join(r)
        assert await _search(b, "SEARCH RECENT") == b"* SEARCH 3"
        # once claimed, a message is recent in no later session
        c = await _connect(server)
        r = await c.cmd("c1 SELECT INBOX")
        assert b"* 0 RECENT\r\n" in r
        await c.close()
    finally:
        for c in (a, b, v2):
            await c.close()


async def test_copy_move_append_make_messages_recent_in_the_target(server, store, accounts):
    alice, _ = accounts
    for i in range(2):
        await store.deliver(alice.id, "INBOX", _msg(b"", b"m%d" % i))
    a = await _connect(server)
    try:
        await a.cmd("a0 CREATE Target")
        await a.cmd("a1 SELECT INBOX")
        await a.cmd("a2 COPY 1 Target")
        await a.cmd("a3 MOVE 2 Target")
        r = await a.cmd(f"a4 APPEND Target {{{len(MSG3)}+}}\r\n{MSG3.decode()}")
        assert r[-1].startswith(b"a4 OK [APPENDUID "), r
        r = await a.cmd("a5 STATUS Target (MESSAGES RECENT)")
        assert untagged(r) == [b'* STATUS "Target" (MESSAGES 3 RECENT 3)\r\n'], r  # RFC 3501 §6.3.10
        r = await a.cmd("a6 EXAMINE Target")  # read-only: shows them, does not take them (Dovecot)
        assert b"* 3 RECENT\r\n" in r
        r = await a.cmd("a7 SELECT Target")
        assert b"* 3 RECENT\r\n" in r
        r = await a.cmd("a8 FETCH 1:* (FLAGS)")
        assert all(b"\\Recent" in x for x in untagged(r)) and len(untagged(r)) == 3
        r = await a.cmd("a9 STATUS Target (RECENT)")
        assert untagged(r) == [b'* STATUS "Target" (RECENT 0)\r\n'], r
        # an APPEND into the selected mailbox is recent in this session at once
        r = await a.cmd(f"b1 APPEND Target {{{len(MSG3)}+}}\r\n{MSG3.decode()}")
        assert r[:2] == [b"* 4 EXISTS\r\n", b"* 4 RECENT\r\n"], r
    finally:
        await a.close()


MSG3 = _msg(b"Date: Tue, 03 Jan 2023 10:00:00 +0000\r\n", b"appended")


# ------------------------------------------------------------------ RFC 5258 LIST-EXTENDED
async def test_list_extended_subscriptions_childinfo_and_patterns(alice_client: Client):
    c = alice_client
    for name in ("Fruit", "Fruit/Apple", "Fruit/Banana", "Veg", "Veg/Leek", "Gone"):
        assert _tagged(await c.cmd(f"c CREATE {name}")).startswith(b"c OK [MAILBOXID (M")  # RFC 8474 §4.1
    for name in ("Fruit", "Fruit/Apple", "Veg", "Veg/Leek", "Gone"):
        await c.cmd(f"u UNSUBSCRIBE {name}")
    await c.cmd("s1 SUBSCRIBE Fruit/Banana")
    await c.cmd("s2 SUBSCRIBE Gone")
    await c.cmd("s3 SUBSCRIBE Nowhere/Child")  # RFC 9051 §6.3.7: a name that does not exist
    assert _tagged(await c.cmd("d DELETE Gone")) == b"d OK"  # its subscription stays (RFC 3501 §6.3.6)
    # RFC 5258 §3.1: subscribed names that do not exist come back with \NonExistent
    r = await c.cmd('a LIST (SUBSCRIBED) "" "*"')
    lines = [x for x in untagged(r) if b'"Fruit' in x or b"Gone" in x or b"Nowhere" in x or b"Veg" in x]
    assert lines == [
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"\r\n',
        b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n',
        b'* LIST (\\NonExistent \\Subscribed) "/" "Nowhere/Child"\r\n',
    ], r
    # RFC 5258 §3.5: with RECURSIVEMATCH, a parent that does not match but has matching children
    # carries CHILDINFO; a parent without such children does not
    r = await c.cmd('b LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
    lines = [x for x in untagged(r) if b'"Fruit' in x or b"Gone" in x or b"Nowhere" in x or b"Veg" in x]
    assert lines == [
        b'* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))\r\n',
        b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\n',
        b'* LIST (\\NonExistent) "/" "Nowhere" ("CHILDINFO" ("SUBSCRIBED"))\r\n',
    ], r
    # RETURN (SUBSCRIBED) lists existing mailboxes only, \Subscribed on the subscribed ones only
    r = await c.cmd('e LIST "" "Fruit*" RETURN (CHILDREN SUBSCRIBED)')
    assert untagged(r) == [
        b'* LIST (\\HasChildren) "/" "Fruit"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Fruit/Apple"\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" "Fruit/Banana"\r\n',
    ], r
    # RFC 5258 §6: several patterns in parentheses, each name once
    r = await c.cmd('f LIST "" ("Veg" "Fruit/%" "Veg*")')
    assert untagged(r) == [
        b'* LIST (\\HasNoChildren) "/" "Fruit/Apple"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Fruit/Banana"\r\n',
        b'* LIST (\\HasChildren) "/" "Veg"\r\n',
        b'* LIST (\\HasNoChildren) "/" "Veg/Leek"\r\n',
    ], r
    # a re-created mailbox takes its subscription back; UNSUBSCRIBE drops a lost one
    await c.cmd("g CREATE Gone")
    await c.cmd("h UNSUBSCRIBE Nowhere/Child")
    r = await c.cmd('i LIST (SUBSCRIBED) "" "*"')
    names = b"".join(untagged(r))
    assert b'"Gone"' in names and b"\\NonExistent" not in names and b"Nowhere" not in names, r
    r = await c.cmd('j LSUB "" "*"')
    assert b'"Gone"' in b"".join(untagged(r))


# ------------------------------------------------------------------ RFC 6154 §3, RFC 8438
async def test_create_special_use_and_status_size(alice_client: Client, store, accounts):
    alice, _ = accounts
    c = alice_client
    r = await c.cmd("a CAPABILITY")
    assert b" CREATE-SPECIAL-USE" in r[0] and b" STATUS=SIZE" in r[0]
    await store.ensure_defaults(alice.id)  # Drafts, Sent, Junk, Trash, Archive
    r = await c.cmd("b CREATE MyFlagged (USE (\\flagged))")  # use-attrs are case-insensitive
    assert _tagged(r).startswith(b"b OK [MAILBOXID (M"), r  # RFC 8474 §4.1
    r = await c.cmd('c LIST "" "MyFlagged"')
    assert untagged(r) == [b'* LIST (\\HasNoChildren \\Flagged) "/" "MyFlagged"\r\n'], r
    r = await c.cmd("d CREATE Drafts2 (USE (\\Drafts))")  # Drafts has it: one mailbox per use
    assert _tagged(r) == b"d NO [USEATTR]", r
    r = await c.cmd("e CREATE Odd (USE (\\Important))")
    assert _tagged(r) == b"e NO [USEATTR]", r
    r = await c.cmd("f CREATE Two (USE (\\All \\Junk))")
    assert _tagged(r) == b"f NO [USEATTR]", r
    r = await c.cmd('g LIST "" "Odd"')
    assert untagged(r) == []  # nothing was created by the refused commands
    # RFC 8438: STATUS SIZE is the total of the messages' RFC822.SIZE
    a, b = _msg(b"", b"one"), _msg(b"", b"two", b"longer body\r\n" * 10)
    await store.deliver(alice.id, "MyFlagged", a)
    await store.deliver(alice.id, "MyFlagged", b)
    r = await c.cmd("h STATUS MyFlagged (MESSAGES SIZE)")
    assert untagged(r) == [b'* STATUS "MyFlagged" (MESSAGES 2 SIZE %d)\r\n' % (len(a) + len(b))], r
