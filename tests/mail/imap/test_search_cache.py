"""SEARCH's per-process text cache holds a big mailbox: a repeated SEARCH over more messages than
the cache used to count (5 000 entries, whatever their size) reads no text from the store again, and
sessions searching a cold mailbox together read each text once.

Before, every SEARCH of a mailbox past 5 000 messages re-read and JSON-decoded the overflow's texts
from the database, and each of 16 sessions read all 6 400 texts of a cold INBOX (bench/scale on a
loaded machine: 34 % of the IMAP process's CPU)."""

from __future__ import annotations

import asyncio
import json

from suite.mail.imap import session as session_mod
from suite.mail.store import MailStore

MESSAGES = 5_200  # more than the old entry cap
RAW = b"From: load@remote.test\r\nTo: alice@example.test\r\nSubject: bench 1\r\n\r\nx\r\n"


async def _big_inbox(store: MailStore, account_id: int) -> None:
    """One message delivered, then copies of its row under new UIDs, each with a search text of
    its own (a blob of its own): thousands of deliveries would take a minute on the CI machine."""
    mb, _ = await store.append(account_id, "INBOX", RAW)
    async with store.raw_db.write() as c:
        for uid in range(2, MESSAGES + 1):
            blob = f"{uid:064x}"
            await c.run(
                "INSERT INTO messages (mailbox_id, uid, modseq, blob, size, internaldate, sent_date, flags, "
                "structure, email_id) SELECT mailbox_id, ?, modseq, ?, size, internaldate, sent_date, flags, "
                "structure, email_id FROM messages WHERE mailbox_id = ? AND uid = 1",
                uid,
                blob,
                mb.id,
            )
            await c.run(
                "INSERT INTO message_texts (blob, headers, body) VALUES (?, ?, ?)",
                blob,
                json.dumps({"subject": [f"bench {uid}"], "from": ["load@remote.test"]}),
                "x" * 200,
            )
        await c.run("UPDATE mailboxes SET uidnext = ? WHERE id = ?", MESSAGES + 1, mb.id)


async def test_repeated_search_of_a_big_mailbox_reads_no_text_again(alice_client, store, accounts, monkeypatch):
    await _big_inbox(store, accounts[0].id)
    read: list[int] = []
    original = MailStore.search_texts

    async def counting(self, mailbox_id, uids):
        read.append(len(uids))
        return await original(self, mailbox_id, uids)

    monkeypatch.setattr(MailStore, "search_texts", counting)
    # every message is a candidate of the index here: the texts decide (the index is not under test)
    monkeypatch.setattr(session_mod, "INDEX_MIN_MESSAGES", 10**9)
    await alice_client.cmd("s SELECT INBOX")
    first = await alice_client.cmd("a UID SEARCH SUBJECT bench")
    assert first[-1].startswith(b"a OK"), first[-1]
    assert first[0].split()[2:] == [b"%d" % u for u in range(1, MESSAGES + 1)]
    assert sum(read) == MESSAGES  # the first search reads every text once
    read.clear()
    for tag in ("b", "c"):
        again = await alice_client.cmd(f"{tag} UID SEARCH SUBJECT bench")
        assert again[0] == first[0]
    assert read == []  # …and the next ones find them all in the cache


async def test_sessions_searching_together_read_each_text_once(server, accounts, store, monkeypatch):
    """Four connections SELECT the same big mailbox and SEARCH at once: the texts are read from the
    store once, not once per session (each session would read all of them)."""
    from imap_helpers import Client

    await _big_inbox(store, accounts[0].id)
    read: list[int] = []
    original = MailStore.search_texts

    async def counting(self, mailbox_id, uids):
        read.append(len(uids))
        await asyncio.sleep(0.2)  # a slow read: the other sessions' searches arrive meanwhile
        return await original(self, mailbox_id, uids)

    monkeypatch.setattr(MailStore, "search_texts", counting)
    monkeypatch.setattr(session_mod, "INDEX_MIN_MESSAGES", 10**9)
    clients = [await Client.connect(server.port) for _ in range(4)]
    try:
        for c in clients:
            await c.login()
            await c.cmd("s SELECT INBOX")
        answers = await asyncio.gather(*(c.cmd("a UID SEARCH SUBJECT bench", timeout=60) for c in clients))
    finally:
        for c in clients:
            await c.close()
    assert all(a[-1].startswith(b"a OK") for a in answers), [a[-1] for a in answers]
    assert all(a[0] == answers[0][0] for a in answers)
    assert len(answers[0][0].split()) == 2 + MESSAGES
    assert sum(read) == MESSAGES
