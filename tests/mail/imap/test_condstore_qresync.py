"""CONDSTORE / QRESYNC (RFC 7162), IMAP4rev2 answers, quota, mailbox management — exact transcripts."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, Client, observer, untagged


def _modseq(line: bytes) -> int:
    return int(re.search(rb"MODSEQ \((\d+)\)", line).group(1))


async def test_condstore_store_unchangedsince_modified(alice_client: Client, store, accounts):
    alice, _ = accounts
    for _ in range(3):
        await store.deliver(alice.id, "INBOX", MSG)
    r = await alice_client.cmd("s SELECT INBOX (CONDSTORE)")
    highest = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"".join(r)).group(1))
    r = await alice_client.cmd("a FETCH 1:3 (MODSEQ)")
    mods = [_modseq(x) for x in untagged(r)]
    assert max(mods) == highest
    r = await alice_client.cmd("b STORE 1 +FLAGS (\\Flagged)")
    m1 = _modseq(r[0])
    # \\Recent: this IMAP4rev1 session is the first to see the message (RFC 3501 §2.3.2)
    assert r[0] == b"* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n" % m1 and m1 > highest
    # message 1 changed after `highest`: conditional store fails for it, succeeds for 2
    r = await alice_client.cmd(f"c STORE 1:2 (UNCHANGEDSINCE {highest}) +FLAGS (\\Seen)")
    assert r[-1] == b"c OK [MODIFIED 1] Conditional STORE failed.\r\n"
    assert untagged(r) == [b"* 2 FETCH (FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\n" % (m1 + 1)]
    r = await alice_client.cmd(f"d UID FETCH 1:* (FLAGS) (CHANGEDSINCE {highest})")
    assert untagged(r) == [
        b"* 1 FETCH (UID 1 FLAGS (\\Flagged \\Recent) MODSEQ (%d))\r\n" % m1,
        b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\n" % (m1 + 1),
    ]
    r = await alice_client.cmd("e STORE 3 +FLAGS.SILENT (\\Answered)")
    assert untagged(r) == [b"* 3 FETCH (UID 3 MODSEQ (%d))\r\n" % (m1 + 2)]  # RFC 7162 §3.1.3
    r = await alice_client.cmd(f"f SEARCH MODSEQ {m1 + 1}")
    assert untagged(r) == [b"* SEARCH 2 3 (MODSEQ %d)\r\n" % (m1 + 2)]
    r = await alice_client.cmd("g STATUS INBOX (HIGHESTMODSEQ)")
    assert untagged(r) == [b'* STATUS "INBOX" (HIGHESTMODSEQ %d)\r\n' % (m1 + 2)]


async def test_qresync_select_and_vanished(server, store, accounts):
    alice, _ = accounts
    for _ in range(4):
        await store.deliver(alice.id, "INBOX", MSG)
    mb = await store.get_mailbox(alice.id, "INBOX")
    since = mb.highestmodseq
    await store.store_flags(alice.id, mb.id, [2], "add", ["\\Seen"])
    await store.store_flags(alice.id, mb.id, [3], "add", ["\\Deleted"])
    await store.expunge(alice.id, mb.id)
    c = await Client.connect(server.port)
    await c.login()
    r = await c.cmd("s SELECT INBOX (QRESYNC (1 1))")
    assert r[-1].startswith(b"s BAD")  # QRESYNC must be enabled first (RFC 7162 §3.2.5)
    assert (await c.cmd("e ENABLE QRESYNC"))[0] == b"* ENABLED QRESYNC\r\n"
    r = await c.cmd(f"t SELECT INBOX (QRESYNC ({mb.uidvalidity} {since} 1:4))")
    assert b"* VANISHED (EARLIER) 3\r\n" in r
    fetches = [x for x in r if b" FETCH " in x]
    assert len(fetches) == 1 and fetches[0].startswith(b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (")
    assert r[-1] == b"t OK [READ-WRITE] Select completed.\r\n"
    # a wrong UIDVALIDITY: no VANISHED / FETCH at all
    r = await c.cmd(f"u SELECT INBOX (QRESYNC (1 {since}))")
    assert r[0] == b"* OK [CLOSED] Previous mailbox closed.\r\n"
    assert not any(b"VANISHED" in x or b" FETCH " in x for x in r)
    # expunges are reported as VANISHED once QRESYNC is on
    r = await c.cmd("v UID STORE 4 +FLAGS.SILENT (\\Deleted)")
    r = await c.cmd("w EXPUNGE")
    assert r[:-1] == [b"* VANISHED 4\r\n"]
    r = await c.cmd(f"x UID FETCH 1:* (FLAGS) (CHANGEDSINCE {since} VANISHED)")
    assert r[0] == b"* VANISHED (EARLIER) 3:4\r\n"
    await c.close()


async def test_imap4rev2_search_is_esearch_and_utf8(alice_client: Client, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    await alice_client.cmd("e ENABLE IMAP4rev2")
    await alice_client.cmd("s SELECT INBOX")
    r = await alice_client.cmd("a SEARCH ALL")
    assert untagged(r) == [b'* ESEARCH (TAG "a") ALL 1\r\n']
    r = await alice_client.cmd("b UID SEARCH DELETED")
    assert untagged(r) == [b'* ESEARCH (TAG "b") UID\r\n']
    r = await alice_client.cmd('c CREATE "Ünïcode/Дом"')
    assert r[-1].startswith(b"c OK")
    r = await alice_client.cmd('d LIST "" "Ünïcode*"')
    assert untagged(r) == [
        '* LIST (\\HasChildren) "/" "Ünïcode"\r\n'.encode(),
        '* LIST (\\HasNoChildren) "/" "Ünïcode/Дом"\r\n'.encode(),
    ]
    boxes = {b.name for b in await store.list_mailboxes(alice.id)}
    assert "Ünïcode/Дом" in boxes


async def test_mutf7_names_at_the_edge(alice_client: Client, store, accounts):
    alice, _ = accounts
    r = await alice_client.cmd("a CREATE &ANw-n&AO8-code")  # "Ünïcode" in modified UTF-7
    assert r[-1].startswith(b"a OK")
    assert await store.get_mailbox(alice.id, "Ünïcode") is not None
    r = await alice_client.cmd('b LIST "" &ANw*')
    assert untagged(r) == [b'* LIST (\\HasNoChildren) "/" "&ANw-n&AO8-code"\r\n']
    r = await alice_client.cmd("c CREATE &Jjo-!&")  # broken mUTF-7
    assert r[-1].startswith(b"c NO [CANNOT]")


async def test_overquota_append_and_copy(server, ctx, store):
    await ctx.accounts.add_domain("small.test")
    small = await ctx.accounts.add_account("s@small.test", "correct horse battery", quota_bytes=len(MSG) + 10)
    c = await Client.connect(server.port)
    await c.login("s@small.test")
    r = await c.cmd(b"a APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
    assert r[-1].startswith(b"a OK [APPENDUID")
    # second one: refused before the literal is sent (synchronising literal)
    await c.send(b"b APPEND INBOX {%d}\r\n" % len(MSG))
    line = await c.response_line()
    assert line.startswith(b"b NO [OVERQUOTA]")
    r = await c.cmd(b"c APPEND INBOX {%d+}\r\n" % len(MSG) + MSG)
    assert r[-1].startswith(b"c NO [OVERQUOTA]")
    await c.cmd("s SELECT INBOX")
    r = await c.cmd("d COPY 1 Trash")
    assert r[-1].startswith(b"d NO [OVERQUOTA]")
    r = await c.cmd('e GETQUOTA ""')
    assert untagged(r) == [b'* QUOTA "" (STORAGE %d %d)\r\n' % (len(MSG) // 1024, (len(MSG) + 10) // 1024)]
    assert (await ctx.accounts.get_by_id(small.id)).used_bytes == len(MSG)
    await c.close()


async def test_mailbox_management(alice_client: Client, store, accounts):
    alice, _ = accounts
    assert (await alice_client.cmd("a CREATE Projects/2024/"))[-1].startswith(b"a OK")
    assert (await alice_client.cmd("b CREATE Projects"))[-1].startswith(b"b NO [ALREADYEXISTS]")
    assert (await alice_client.cmd("c CREATE INBOX"))[-1].startswith(b"c NO [ALREADYEXISTS]")
    assert (await alice_client.cmd("d RENAME Projects Old"))[-1].startswith(b"d OK")
    names = {b.name for b in await store.list_mailboxes(alice.id)}
    assert {"Old", "Old/2024"} <= names and "Projects" not in names
    assert (await alice_client.cmd("e DELETE Old"))[-1].startswith(b"e NO")  # has children
    assert (await alice_client.cmd("f DELETE Old/2024"))[-1].startswith(b"f OK")
    assert (await alice_client.cmd("g DELETE INBOX"))[-1].startswith(b"g NO")
    assert (await alice_client.cmd("h UNSUBSCRIBE Old"))[-1].startswith(b"h OK")
    r = await alice_client.cmd('i LSUB "" *')
    assert b'"Old"' not in b"".join(r) and b'* LSUB () "/" "INBOX"\r\n' in r
    r = await alice_client.cmd('j LIST "" * RETURN (SUBSCRIBED)')
    assert b'* LIST (\\HasNoChildren \\Subscribed) "/" "INBOX"\r\n' in r
    assert b'* LIST (\\HasNoChildren) "/" "Old"\r\n' in r
    r = await alice_client.cmd("k CREATE MyDrafts (USE (\\Drafts))")
    assert r[-1].startswith(b"k NO")  # \Drafts is taken by Drafts already


async def test_close_expunges_silently_unselect_does_not(alice_client: Client, store, accounts):
    alice, _ = accounts
    for _ in range(2):
        await store.deliver(alice.id, "INBOX", MSG, flags=["\\Deleted"])
    mb = await store.get_mailbox(alice.id, "INBOX")
    await alice_client.cmd("s SELECT INBOX")
    assert await alice_client.cmd("a UNSELECT") == [b"a OK Unselect completed.\r\n"]
    assert len(await store.messages(mb.id)) == 2
    await alice_client.cmd("t EXAMINE INBOX")
    assert await alice_client.cmd("b CLOSE") == [b"b OK Close completed.\r\n"]  # read-only: nothing expunged
    assert len(await store.messages(mb.id)) == 2
    await alice_client.cmd("u SELECT INBOX")
    assert await alice_client.cmd("c CLOSE") == [b"c OK Close completed.\r\n"]
    assert await store.messages(mb.id) == []
    assert (await alice_client.cmd("d FETCH 1 FLAGS"))[-1].startswith(b"d BAD")


async def test_examine_is_read_only(alice_client: Client, store, accounts):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    await alice_client.cmd("s EXAMINE INBOX")
    r = await alice_client.cmd("a FETCH 1 BODY[]")
    assert b"FLAGS" not in r[0]  # no implicit \Seen on a read-only mailbox
    assert (await alice_client.cmd("b STORE 1 +FLAGS (\\Seen)"))[-1].startswith(b"b NO")
    assert (await alice_client.cmd("c EXPUNGE"))[-1].startswith(b"c NO")
    mb = await store.get_mailbox(alice.id, "INBOX")
    assert (await store.messages(mb.id))[0].flags == ()


async def test_selected_mailbox_deleted_by_other_session(server, store, accounts):
    alice, _ = accounts
    await store.create_mailbox(alice.id, "Temp")
    a = await Client.connect(server.port)
    await a.login()
    await a.cmd("s SELECT Temp")
    o = await observer(server.port, "Temp")
    await store.delete_mailbox(alice.id, "Temp")
    await o.wait_for(rb"^\* BYE")  # a has been told too
    await o.close()
    await a.send(b"n NOOP\r\n")
    assert (await a.response_line()).startswith(b"* BYE")
    await a.close()
