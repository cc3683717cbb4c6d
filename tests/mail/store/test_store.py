"""Mail store on SQLite and PostgreSQL: delivery, UIDs, MODSEQ, flags, copy/move, expunge, quota."""

from __future__ import annotations

import asyncio

import pytest

from suite.mail.store import MailboxExists, MailStore, MailStoreError, NoSuchMailbox, QuotaExceeded
from suite.storage.events import MailboxChanged, MailDelivered
from suite.testing import MAIL_CORPUS as CORPUS

MSG = (
    b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: Hello there\r\n"
    b"Date: Mon, 02 Jan 2023 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\nLunch tomorrow?\r\n"
)


@pytest.fixture
async def alice(ctx):
    await ctx.accounts.add_domain("example.test")
    return await ctx.accounts.add_account("alice@example.test", "correct horse battery", quota_bytes=10_000_000)


@pytest.fixture
def store(ctx):
    return MailStore(ctx)


async def test_default_mailboxes(store, alice):
    names = {m.name: m.special_use for m in await store.list_mailboxes(alice.id)}
    assert names == {
        "INBOX": None,
        "Drafts": "\\Drafts",
        "Sent": "\\Sent",
        "Junk": "\\Junk",
        "Trash": "\\Trash",
        "Archive": "\\Archive",
    }
    assert (await store.get_mailbox(alice.id, "inbox")).name == "INBOX"


async def test_deliver_assigns_uids_and_publishes(store, alice, ctx):
    sub = ctx.bus.subscribe(MailDelivered, MailboxChanged)
    mb, uid1 = await store.deliver(alice.id, "INBOX", MSG)
    _, uid2 = await store.deliver(alice.id, "INBOX", MSG, flags=["\\seen", "$Label1"])
    assert (uid1, uid2) == (1, 2)
    msgs = await store.messages(mb.id)
    assert [m.uid for m in msgs] == [1, 2] and msgs[1].flags == ("\\Seen", "$Label1")
    assert msgs[0].modseq < msgs[1].modseq
    assert await store.raw(msgs[0].blob) == MSG  # exactly the bytes received
    assert isinstance(await sub.get(1), MailDelivered)
    st = await store.status(mb.id)
    assert (st.messages, st.unseen, st.uidnext, st.size) == (2, 1, 3, 2 * len(MSG))
    assert (await ctx.accounts.get_by_id(alice.id)).used_bytes == 2 * len(MSG)
    structure = await store.structure(mb.id, 1)
    assert structure.size == len(MSG)
    texts = await store.search_texts(mb.id, [1, 2])
    assert texts[1].matches_header("subject", "hello") and texts[2].matches_body("LUNCH")


async def test_flags_modseq_and_unchangedsince(store, alice):
    mb, _ = await store.deliver(alice.id, "INBOX", MSG)
    await store.deliver(alice.id, "INBOX", MSG)
    before = await store.messages(mb.id)
    changed, failed = await store.store_flags(alice.id, mb.id, [1, 2], "add", ["\\Flagged"])
    assert [m.uid for m in changed] == [1, 2] and failed == []
    assert all(m.modseq > before[1].modseq for m in changed)
    # no-op changes do not bump MODSEQ
    again, _ = await store.store_flags(alice.id, mb.id, [1], "add", ["\\flagged"])
    assert again == []
    ch = await store.changes_since(mb.id, before[1].modseq)
    assert [m.uid for m in ch.changed] == [1, 2]
    # UNCHANGEDSINCE: message 1 changes, then a store conditional on the older modseq fails for it
    old = changed[0].modseq
    await store.store_flags(alice.id, mb.id, [1], "add", ["\\Seen"])
    ok, failed = await store.store_flags(alice.id, mb.id, [1, 2], "remove", ["\\Flagged"], unchangedsince=old)
    assert failed == [1] and [m.uid for m in ok] == [2]


async def test_copy_move_expunge_and_quota(store, alice, ctx):
    inbox, _ = await store.deliver(alice.id, "INBOX", MSG, flags=["\\Seen"])
    await store.deliver(alice.id, "INBOX", MSG)
    archive = await store.require_mailbox(alice.id, "Archive")
    pairs = await store.copy(alice.id, inbox.id, [1, 2], archive.id)
    assert pairs == [(1, 1), (2, 2)]
    assert (await ctx.accounts.get_by_id(alice.id)).used_bytes == 4 * len(MSG)
    assert (await store.messages(archive.id))[0].flags == ("\\Seen",)
    trash = await store.require_mailbox(alice.id, "Trash")
    moved = await store.move(archive.id, [2], trash.id)
    assert moved == [(2, 1)]
    assert [m.uid for m in await store.messages(archive.id)] == [1]
    ch = await store.changes_since(archive.id, 0)
    assert ch.expunged == [2]
    # expunge only \Deleted, and UID EXPUNGE only the given ones
    await store.store_flags(alice.id, inbox.id, [1, 2], "add", ["\\Deleted"])
    assert await store.expunge(alice.id, inbox.id, uids=[2]) == [2]
    assert await store.expunge(alice.id, inbox.id) == [1]
    assert await store.messages(inbox.id) == []
    assert (await ctx.accounts.get_by_id(alice.id)).used_bytes == 2 * len(MSG)
    # one blob, referenced twice (archive + trash)
    digest = (await store.messages(trash.id))[0].blob
    assert await ctx.blobs.refcount(digest) == 2
    await ctx.accounts.set_quota("alice@example.test", 2 * len(MSG) + 10)
    with pytest.raises(QuotaExceeded):
        await store.deliver(alice.id, "INBOX", MSG)
    with pytest.raises(QuotaExceeded):
        await store.copy(alice.id, trash.id, [1], inbox.id)


async def test_mailbox_hierarchy_rename_delete(store, alice):
    await store.create_mailbox(alice.id, "Projects/2024/Q1")
    names = [m.name for m in await store.list_mailboxes(alice.id)]
    assert {"Projects", "Projects/2024", "Projects/2024/Q1"} <= set(names)
    with pytest.raises(MailboxExists):
        await store.create_mailbox(alice.id, "Projects")
    old = await store.require_mailbox(alice.id, "Projects/2024")
    await store.rename_mailbox(alice.id, "Projects", "Work/Old")
    names = {m.name for m in await store.list_mailboxes(alice.id)}
    assert {"Work", "Work/Old", "Work/Old/2024", "Work/Old/2024/Q1"} <= names and "Projects" not in names
    assert (await store.require_mailbox(alice.id, "Work/Old/2024")).uidvalidity != old.uidvalidity
    with pytest.raises(MailStoreError):
        await store.delete_mailbox(alice.id, "Work/Old")  # has children
    await store.delete_mailbox(alice.id, "Work/Old/2024/Q1")
    with pytest.raises(NoSuchMailbox):
        await store.delete_mailbox(alice.id, "Work/Old/2024/Q1")
    with pytest.raises(MailStoreError):
        await store.delete_mailbox(alice.id, "INBOX")
    # re-created mailbox gets a new UIDVALIDITY
    first = await store.create_mailbox(alice.id, "Tmp")
    await store.delete_mailbox(alice.id, "Tmp")
    assert (await store.create_mailbox(alice.id, "Tmp")).uidvalidity != first.uidvalidity


async def test_rename_inbox_moves_messages(store, alice):
    await store.deliver(alice.id, "INBOX", MSG)
    await store.rename_mailbox(alice.id, "INBOX", "Old Inbox")
    assert await store.messages((await store.require_mailbox(alice.id, "INBOX")).id) == []
    assert len(await store.messages((await store.require_mailbox(alice.id, "Old Inbox")).id)) == 1


async def test_account_isolation(store, alice, ctx):
    bob = await ctx.accounts.add_account("bob@example.test", "another good phrase")
    mb, _ = await store.deliver(alice.id, "INBOX", MSG)
    with pytest.raises(NoSuchMailbox):
        await store.deliver(bob.id, mb.id, MSG)  # bob cannot target alice's mailbox id
    with pytest.raises(NoSuchMailbox):
        await store.copy(bob.id, mb.id, [1], mb.id)
    assert (await store.get_mailbox(bob.id, "INBOX")).id != mb.id


async def test_concurrent_delivery_unique_uids(store, alice):
    results = await asyncio.gather(*(store.deliver(alice.id, "INBOX", MSG + bytes([65 + i % 26])) for i in range(20)))
    uids = sorted(uid for _, uid in results)
    assert uids == list(range(1, 21))


async def test_corpus_messages_deliver(store, alice):
    files = sorted(CORPUS.glob("*.eml"))[:40]
    if not files:
        pytest.fail(f"corpus missing at {CORPUS}")
    for f in files:
        await store.deliver(alice.id, "INBOX", f.read_bytes())
    mb = await store.require_mailbox(alice.id, "INBOX")
    assert len(await store.messages(mb.id)) == len(files)
