"""Mailbox counts (RFC 8621 §2: totalEmails, unreadEmails, totalThreads, unreadThreads) are kept by
the store with every change: after each step the counters the server answers equal a full recount
of the memberships — delivery (with a thread merge), keyword change through JMAP and IMAP, move,
copy, expunge, Email destroy, mailbox destroy."""

from __future__ import annotations

from suite.mail.store import counters
from tests.mail.jmap.conftest import message


async def _check(jmap, store, account_id: int) -> dict[str, tuple[int, int, int, int]]:
    body = await jmap.ok("Mailbox/get", {"ids": None})
    got = {m["id"]: (m["totalEmails"], m["unreadEmails"], m["totalThreads"], m["unreadThreads"]) for m in body["list"]}
    async with store.raw_db.read() as c:
        want = await counters.recount(c, account_id)
    assert got == {f"M{mb}": want.get(mb, (0, 0, 0, 0)) for mb in (int(i[1:]) for i in got)}
    return {m["role"] or m["name"]: got[m["id"]] for m in body["list"]}


async def test_counts_follow_every_change(jmap, store, accounts):
    alice = accounts[0]
    inbox = await store.get_mailbox(alice.id, "INBOX")
    # delivery; the third message links the first two threads (a merge moves their counts)
    await store.deliver(alice.id, "INBOX", message("One", msgid="a@x"))
    await store.deliver(alice.id, "INBOX", message("One", msgid="b@x"), flags=["\\Seen"])
    await store.deliver(alice.id, "INBOX", message("Re: One", msgid="c@x", refs="<a@x> <b@x>"))
    await store.deliver(alice.id, "INBOX", message("Other", msgid="d@x"))
    assert (await _check(jmap, store, alice.id))["inbox"] == (4, 3, 2, 2)
    ids = (await jmap.ok("Email/query", {"sort": [{"property": "receivedAt"}]}))["ids"]
    # keyword change through JMAP: the thread of a@x/b@x/c@x is still unread (c@x)
    upd = await jmap.ok("Email/set", {"update": {ids[0]: {"keywords/$seen": True}}})
    assert ids[0] in upd["updated"]
    assert (await _check(jmap, store, alice.id))["inbox"] == (4, 2, 2, 2)
    upd = await jmap.ok("Email/set", {"update": {ids[2]: {"keywords/$seen": True}}})
    assert (await _check(jmap, store, alice.id))["inbox"] == (4, 1, 2, 1)
    # keyword change through IMAP STORE (the store's API the IMAP server uses)
    await store.store_flags(alice.id, inbox.id, [4], "add", ["\\Seen"])
    assert (await _check(jmap, store, alice.id))["inbox"] == (4, 0, 2, 0)
    await store.store_flags(alice.id, inbox.id, [1, 4], "remove", ["\\Seen"])
    assert (await _check(jmap, store, alice.id))["inbox"] == (4, 2, 2, 2)
    # move (JMAP mailboxIds) and copy (IMAP COPY: a second membership)
    archive = await jmap.mailbox("archive")
    inbox_id = f"M{inbox.id}"
    await jmap.ok("Email/set", {"update": {ids[3]: {"mailboxIds": {archive: True}}}})
    got = await _check(jmap, store, alice.id)
    assert got["inbox"] == (3, 1, 1, 1) and got["archive"] == (1, 1, 1, 1)
    await store.copy(alice.id, inbox.id, [1, 2], int(archive[1:]))
    got = await _check(jmap, store, alice.id)
    assert got["inbox"] == (3, 1, 1, 1) and got["archive"] == (3, 2, 2, 2)
    await jmap.ok("Email/set", {"update": {ids[1]: {f"mailboxIds/{inbox_id}": True}}})  # already there
    # expunge (IMAP), destroy (JMAP), then the whole mailbox
    await store.store_flags(alice.id, inbox.id, [2], "add", ["\\Deleted"])
    await store.expunge(alice.id, inbox.id)
    got = await _check(jmap, store, alice.id)
    assert got["inbox"] == (2, 1, 1, 1) and got["archive"] == (3, 2, 2, 2)
    await jmap.ok("Email/set", {"destroy": [ids[0]]})
    got = await _check(jmap, store, alice.id)
    assert got["inbox"] == (1, 0, 1, 0) and got["archive"] == (2, 1, 2, 1)
    await jmap.ok("Mailbox/set", {"destroy": [archive], "onDestroyRemoveEmails": True})
    got = await _check(jmap, store, alice.id)
    assert "archive" not in got and got["inbox"] == (1, 0, 1, 0)
