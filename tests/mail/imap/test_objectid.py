"""IMAP OBJECTID (RFC 8474) transcripts: MAILBOXID on SELECT/EXAMINE/STATUS/CREATE, FETCH EMAILID and
THREADID, SEARCH EMAILID/THREADID — ids the mail store gives both IMAP and JMAP."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import Client

ROOT = (
    b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Plans\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\nMessage-ID: <root@example.test>\r\n\r\nLunch?\r\n"
)
REPLY = (
    b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: Re: Plans\r\n"
    b"Date: Mon, 02 Jan 2023 11:00:00 +0000\r\nMessage-ID: <reply@example.test>\r\n"
    b"In-Reply-To: <root@example.test>\r\nReferences: <root@example.test>\r\n\r\nYes.\r\n"
)
OTHER = (
    b"From: Carol <carol@example.test>\r\nTo: alice@example.test\r\nSubject: Unrelated\r\n"
    b"Date: Mon, 02 Jan 2023 12:00:00 +0000\r\nMessage-ID: <other@example.test>\r\n\r\nHi.\r\n"
)


async def _fill(store, account_id: int) -> None:
    for raw in (ROOT, REPLY, OTHER):
        await store.deliver(account_id, "INBOX", raw)


async def test_objectid_advertised(alice_client: Client):
    # RFC 8474 §3: the OBJECTID capability
    r = await alice_client.cmd("a CAPABILITY")
    assert b"OBJECTID" in r[0].split()


async def test_select_examine_status_show_mailboxid(alice_client: Client, store, accounts):
    inbox = await store.get_mailbox(accounts[0].id, "INBOX")
    mid = f"M{inbox.id}".encode()
    # RFC 8474 §4.1: SELECT and EXAMINE answer an untagged OK [MAILBOXID (<objectid>)]
    for verb in (b"SELECT", b"EXAMINE"):
        r = await alice_client.cmd(b"s " + verb + b" INBOX")
        assert r[-1].startswith(b"s OK"), r
        assert b"* OK [MAILBOXID (" + mid + b")] Ok\r\n" in r
    # RFC 8474 §4.2: STATUS (MAILBOXID)
    r = await alice_client.cmd("t STATUS INBOX (MESSAGES MAILBOXID)")
    assert r == [b'* STATUS "INBOX" (MESSAGES 0 MAILBOXID (' + mid + b"))\r\n", b"t OK Status completed.\r\n"]


async def test_create_answers_mailboxid_that_survives_rename(alice_client: Client, store, accounts):
    # RFC 8474 §4.1: CREATE's tagged OK carries [MAILBOXID (...)]; RENAME keeps the id
    r = await alice_client.cmd("c CREATE Projects")
    made = await store.get_mailbox(accounts[0].id, "Projects")
    assert r == [b"c OK [MAILBOXID (M%d)] Create completed.\r\n" % made.id]
    r = await alice_client.cmd("r RENAME Projects Work")
    assert r[-1].startswith(b"r OK"), r
    r = await alice_client.cmd("t STATUS Work (MAILBOXID)")
    assert r[0] == b'* STATUS "Work" (MAILBOXID (M%d))\r\n' % made.id
    # an existing mailbox: a NO without an id
    r = await alice_client.cmd("d CREATE Work")
    assert r[-1].startswith(b"d NO [ALREADYEXISTS]"), r


async def test_fetch_emailid_threadid(alice_client: Client, store, accounts):
    await _fill(store, accounts[0].id)
    inbox = await store.get_mailbox(accounts[0].id, "INBOX")
    ids = await store.object_ids(inbox.id, [1, 2, 3])
    await alice_client.cmd("s SELECT INBOX")
    # RFC 8474 §5.1: FETCH data items EMAILID (<objectid>) and THREADID (<objectid>)
    r = await alice_client.cmd("f FETCH 1:3 (EMAILID THREADID)")
    assert r == [
        b"* %d FETCH (EMAILID (%s) THREADID (%s))\r\n" % (n, ids[n][0].encode(), ids[n][1].encode()) for n in (1, 2, 3)
    ] + [b"f OK Fetch completed.\r\n"]
    for eid, tid in ids.values():
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,255}", eid) and re.fullmatch(r"[A-Za-z0-9_-]{1,255}", tid)
    assert len({e for e, _ in ids.values()}) == 3
    # the reply is in its parent's thread (RFC 8474 §5.2), the unrelated one is not
    assert ids[1][1] == ids[2][1] != ids[3][1]
    # UID FETCH: UID first (as every item list here), then the ids
    r = await alice_client.cmd("u UID FETCH 2 (THREADID)")
    assert r[0] == b"* 2 FETCH (UID 2 THREADID (%s))\r\n" % ids[2][1].encode()


async def test_emailid_is_kept_by_copy_and_move(alice_client: Client, store, accounts):
    # RFC 8474 §5.1: a message copied or moved keeps its EMAILID (and so its THREADID)
    await _fill(store, accounts[0].id)
    await alice_client.cmd("c CREATE Keep")
    await alice_client.cmd("s SELECT INBOX")
    first = (await alice_client.cmd("f FETCH 1 (EMAILID THREADID)"))[0]
    r = await alice_client.cmd("k COPY 1 Keep")
    assert r[-1].startswith(b"k OK"), r
    await alice_client.cmd("s2 SELECT Keep")
    copied = (await alice_client.cmd("f2 FETCH 1 (EMAILID THREADID)"))[0]
    assert copied == first
    await alice_client.cmd("s3 SELECT INBOX")
    second = (await alice_client.cmd("f3 FETCH 2 (EMAILID THREADID)"))[0]
    r = await alice_client.cmd("m MOVE 2 Keep")
    assert r[-1].startswith(b"m OK"), r
    await alice_client.cmd("s4 SELECT Keep")
    moved = (await alice_client.cmd("f4 FETCH 2 (EMAILID THREADID)"))[0]
    assert moved.split(b"EMAILID", 1)[1] == second.split(b"EMAILID", 1)[1]
    assert moved.startswith(b"* 2 FETCH (") and first != second


async def test_search_emailid_threadid(alice_client: Client, store, accounts):
    await _fill(store, accounts[0].id)
    inbox = await store.get_mailbox(accounts[0].id, "INBOX")
    ids = await store.object_ids(inbox.id, [1, 2, 3])
    await alice_client.cmd("s SELECT INBOX")
    # RFC 8474 §6: SEARCH EMAILID <objectid> / THREADID <objectid>
    r = await alice_client.cmd(f"a SEARCH EMAILID {ids[2][0]}")
    assert r == [b"* SEARCH 2\r\n", b"a OK Search completed.\r\n"]
    r = await alice_client.cmd(f"b UID SEARCH THREADID {ids[1][1]}")
    assert r == [b"* SEARCH 1 2\r\n", b"b OK Search completed.\r\n"]
    r = await alice_client.cmd(f"c SEARCH NOT THREADID {ids[1][1]}")
    assert r[0] == b"* SEARCH 3\r\n"
    r = await alice_client.cmd("d SEARCH EMAILID e999999")
    assert r[0] == b"* SEARCH\r\n"
    # objectid = 1*255(ALPHA / DIGIT / "_" / "-"): anything else is a syntax error
    r = await alice_client.cmd("e SEARCH EMAILID e1.2")
    assert r[-1].startswith(b"e BAD"), r
    r = await alice_client.cmd("f SEARCH THREADID " + "T" * 256)
    assert r[-1].startswith(b"f BAD"), r
