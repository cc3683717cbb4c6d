"""One mail model for IMAP and JMAP (issue #13 §3, RFC 8621 §1.6): a change through one protocol
is seen by the other at once — with imaplib as the IMAP client, IDLE included."""

from __future__ import annotations

import asyncio
import imaplib
import time

from tests.mail.jmap.conftest import PW, message


def _login(port: int) -> imaplib.IMAP4:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    m.login("alice@example.test", PW)
    return m


async def test_keyword_set_in_jmap_is_a_flag_in_imap_and_wakes_idle(jmap, store, accounts, imap_port):
    # RFC 8621 §4.1.1 ($seen = \Seen) and RFC 2177 IDLE: the IMAP session is told at once
    await store.deliver(accounts[0].id, "INBOX", message())
    eid = (await jmap.ok("Email/query", {}))["ids"][0]

    def idle_until_fetch() -> bytes:
        m = _login(imap_port)
        m.select("INBOX")
        tag = m._new_tag()
        m.send(tag + b" IDLE\r\n")
        assert m.readline().startswith(b"+")
        ready.set()
        m.sock.settimeout(15)
        seen = b""
        deadline = time.monotonic() + 15
        while b"FETCH" not in seen and time.monotonic() < deadline:
            try:
                seen += m.readline()
            except TimeoutError:
                break
        m.send(b"DONE\r\n")
        m.readline()
        m.logout()
        return seen

    import threading

    ready = threading.Event()
    task = asyncio.create_task(asyncio.to_thread(idle_until_fetch))
    deadline = time.monotonic() + 10
    while not ready.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    await jmap.ok("Email/set", {"update": {eid: {"keywords/$seen": True, "keywords/$flagged": True}}})
    untagged = await task
    assert b"FETCH" in untagged and b"\\Seen" in untagged and b"\\Flagged" in untagged

    def flags() -> bytes:
        m = _login(imap_port)
        m.select("INBOX")
        typ, data = m.fetch("1", "(FLAGS)")
        m.logout()
        return data[0]

    assert b"\\Seen" in await asyncio.to_thread(flags)


async def test_imap_store_and_copy_seen_in_jmap(jmap, store, accounts, imap_port):
    # an IMAP STORE is an Email/changes update; a COPY adds a mailbox to the same Email
    await store.deliver(accounts[0].id, "INBOX", message())
    eid = (await jmap.ok("Email/query", {}))["ids"][0]
    state = (await jmap.ok("Email/get", {"ids": []}))["state"]

    def imap_ops() -> None:
        m = _login(imap_port)
        m.select("INBOX")
        assert m.store("1", "+FLAGS", "(\\Answered $Label1)")[0] == "OK"
        assert m.copy("1", "Archive")[0] == "OK"
        m.logout()

    await asyncio.to_thread(imap_ops)
    ch = await jmap.ok("Email/changes", {"sinceState": state})
    assert ch["updated"] == [eid] and ch["created"] == []
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["keywords", "mailboxIds"]}))["list"][0]
    assert e["keywords"] == {"$answered": True, "$label1": True}
    assert set(e["mailboxIds"]) == {await jmap.mailbox("inbox"), await jmap.mailbox("archive")}

    # a flag set in one mailbox is set on the copy in the other (keywords are per Email)
    def imap_seen() -> bytes:
        m = _login(imap_port)
        m.select("INBOX")
        m.store("1", "+FLAGS", "(\\Seen)")
        m.select("Archive")
        _, data = m.fetch("1", "(FLAGS)")
        m.logout()
        return data[0]

    assert b"\\Seen" in await asyncio.to_thread(imap_seen)

    # MOVE in IMAP moves the Email; EXPUNGE of the last copy destroys it
    def imap_move_and_expunge() -> None:
        m = _login(imap_port)
        m.select("INBOX")
        m.store("1", "+FLAGS", "(\\Deleted)")
        m.expunge()
        m.logout()

    state = (await jmap.ok("Email/get", {"ids": []}))["state"]
    await asyncio.to_thread(imap_move_and_expunge)
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["mailboxIds"]}))["list"][0]
    assert set(e["mailboxIds"]) == {await jmap.mailbox("archive")}
    ch = await jmap.ok("Email/changes", {"sinceState": state})
    assert ch["updated"] == [eid]


async def test_object_ids_match_jmap(jmap, store, accounts):
    # RFC 8474 EMAILID/THREADID as the store gives them to IMAP are the JMAP ids
    from suite.mail.store import emails

    await store.deliver(accounts[0].id, "INBOX", message())
    e = (
        await jmap.ok(
            "Email/get", {"ids": (await jmap.ok("Email/query", {}))["ids"], "properties": ["threadId", "mailboxIds"]}
        )
    )["list"][0]
    inbox = await store.get_mailbox(accounts[0].id, "INBOX")
    async with store.raw_db.read() as c:
        ids = await emails.object_ids(c, inbox.id, [1])
    assert ids == {1: (e["id"], e["threadId"])}
    assert emails.mailbox_object_id(inbox.id) in e["mailboxIds"]
