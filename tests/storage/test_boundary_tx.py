"""Quota charges (``AccountStore.charge``) and blob reference counts (``BlobStore.ref``/``unref``)
move inside the caller's transaction — a RawDB write (the mail store's hot path) or an ORM session —
committed with the caller's rows or rolled back with them; on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from suite.accounts.store import AccountStore
from suite.storage import db
from suite.storage.blobs import BlobRef, BlobStore

A = BlobRef("a" * 64, 100)
B = BlobRef("b" * 64, 250)


class Boom(Exception):
    pass


async def _account(ctx, quota: int = 1000) -> int:
    await ctx.accounts.add_domain("example.test")
    return (await ctx.accounts.add_account("alice@example.test", "correct horse battery", quota_bytes=quota)).id


async def _state(ctx, account_id: int) -> tuple[int, int, int]:
    used, _ = await ctx.accounts.usage(account_id)
    return used, await ctx.blobs.refcount(A.digest), await ctx.blobs.refcount(B.digest)


async def test_rawdb_write_commits_charge_and_refs_with_the_rows(ctx):
    acct = await _account(ctx)
    async with db.raw(ctx.engine).write() as c:
        assert await AccountStore.charge(c, acct, A.size + B.size)
        await BlobStore.ref(c, A)
        await BlobStore.ref_many(c, [B, A, B])  # duplicates count; digest order inside
    assert await _state(ctx, acct) == (350, 2, 2)
    async with db.raw(ctx.engine).write() as c:
        assert await AccountStore.charge(c, acct, -A.size)
        await BlobStore.unref_many(c, [B.digest, A.digest, B.digest])
    assert await _state(ctx, acct) == (250, 1, 0)


async def test_rawdb_write_that_fails_rolls_back_charge_and_refs(ctx):
    acct = await _account(ctx)
    with pytest.raises(Boom):
        async with db.raw(ctx.engine).write() as c:
            assert await AccountStore.charge(c, acct, 300)
            await BlobStore.ref(c, A, 3)
            raise Boom
    assert await _state(ctx, acct) == (0, 0, 0)


async def test_orm_session_commits_and_rolls_back_alike(ctx):
    acct = await _account(ctx)
    async with ctx.sessions.begin() as s:
        assert await AccountStore.charge(s, acct, 100)
        await BlobStore.ref(s, A)
        await BlobStore.ref(s, A)
    assert await _state(ctx, acct) == (100, 2, 0)
    with pytest.raises(Boom):
        async with ctx.sessions.begin() as s:
            assert await AccountStore.charge(s, acct, 500)
            await BlobStore.unref(s, A.digest, 2)
            await BlobStore.ref(s, B)
            raise Boom
    assert await _state(ctx, acct) == (100, 2, 0)


async def test_a_charge_past_the_quota_changes_nothing(ctx):
    acct = await _account(ctx, quota=1000)
    for tx in ("raw", "orm"):
        if tx == "raw":
            async with db.raw(ctx.engine).write() as c:
                assert await AccountStore.charge(c, acct, 900)
                assert not await AccountStore.charge(c, acct, 101)  # 1001 > 1000
                assert await AccountStore.charge(c, acct, 100)  # exactly full is allowed
                assert await AccountStore.charge(c, acct, -1000)  # freeing always works
        else:
            async with ctx.sessions.begin() as s:
                assert not await AccountStore.charge(s, acct, 1001)
                await AccountStore.lock(s, acct)  # the account row first, then whatever comes next
                assert await AccountStore.charge(s, acct, 1000)
        assert (await ctx.accounts.usage(acct))[0] == (0 if tx == "raw" else 1000)
    assert await ctx.accounts.usage(acct + 1000) is None


async def test_the_mail_store_keeps_quota_and_refcounts_true(ctx):
    """Deliver, copy and expunge through the mail store: usage and counts follow every copy."""
    from suite.mail.store import MailStore

    acct = await _account(ctx, quota=10_000)
    store = MailStore(ctx)
    raw = b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"
    inbox = await store.require_mailbox(acct, "INBOX")
    _, uid1 = await store.deliver(acct, "INBOX", raw)
    _, uid2 = await store.deliver(acct, "INBOX", raw)  # same bytes: one blob, two references
    digest = (await store.messages(inbox.id))[0].blob
    assert await ctx.accounts.usage(acct) == (2 * len(raw), 10_000)
    assert await ctx.blobs.refcount(digest) == 2
    archive = await store.require_mailbox(acct, "Archive")
    await store.copy(acct, inbox.id, [uid1], archive.id)
    assert (await ctx.accounts.usage(acct))[0] == 3 * len(raw) and await ctx.blobs.refcount(digest) == 3
    await store.store_flags(acct, inbox.id, [uid1, uid2], "add", ["\\Deleted"])
    assert sorted(await store.expunge(acct, inbox.id)) == [uid1, uid2]
    assert (await ctx.accounts.usage(acct))[0] == len(raw) and await ctx.blobs.refcount(digest) == 1
    await store.delete_mailbox(acct, "Archive")
    assert (await ctx.accounts.usage(acct))[0] == 0 and await ctx.blobs.refcount(digest) == 0
