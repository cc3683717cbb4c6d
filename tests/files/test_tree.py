"""The file tree on SQLite and PostgreSQL: names, traversal, versions, trash, dedup, quota, copy/move."""

from __future__ import annotations

import pytest

from suite.files.names import BadName, check_name, split_path
from suite.files.tree import Conflict, FileTree, NotFound, QuotaExceeded
from suite.testing import async_wait_until

PW = "correct horse battery"


@pytest.fixture
async def env(ctx):
    await ctx.accounts.add_domain("example.test")
    alice = await ctx.accounts.add_account("alice@example.test", PW, quota_bytes=1000)
    bob = await ctx.accounts.add_account("bob@example.test", PW, quota_bytes=1000)
    return ctx, FileTree(ctx, keep_versions=2), alice.id, bob.id


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\x00b", "tab\there", "x" * 256, "é" * 128, "\x7f"])
def test_bad_names(bad):
    with pytest.raises(BadName):
        check_name(bad)


def test_names_nfc_and_paths():
    assert check_name("e\u0301") == "\u00e9"
    assert split_path("/a//b/") == ["a", "b"]
    for bad in ("/a/../b", "../etc/passwd", "/./x", "a/\x01"):
        with pytest.raises(BadName):
            split_path(bad)


async def test_mkdir_write_resolve_and_isolation(env):
    ctx, tree, alice, bob = env
    root = await tree.root(alice)
    docs = await tree.mkdir(alice, root.id, "Docs")
    f, created = await tree.write(alice, docs.id, "a.txt", b"hello")
    assert created and f.size == 5 and f.media_type == "text/plain"
    assert (await tree.resolve(alice, "/Docs/a.txt")).id == f.id
    assert await tree.resolve(bob, "/Docs/a.txt") is None
    # another account's ids are "not found", for every operation
    for op in (
        tree.get(bob, f.id),
        tree.list(bob, docs.id),
        tree.trash(bob, f.id),
        tree.purge(bob, f.id),
        tree.copy(bob, f.id, (await tree.root(bob)).id, "x"),
        tree.move(alice, f.id, (await tree.root(bob)).id, "x"),
        tree.mkdir(bob, docs.id, "evil"),
        tree.write(bob, docs.id, "evil", b"x"),
    ):
        with pytest.raises(NotFound):
            await op
    with pytest.raises(Conflict):
        await tree.mkdir(alice, root.id, "Docs")
    with pytest.raises(Conflict):
        await tree.mkdir(alice, f.id, "sub")  # a file is not a folder
    assert (await ctx.accounts.get_by_id(alice)).used_bytes == 5


async def test_versions_keep_last_n_and_quota(env):
    ctx, tree, alice, _ = env
    root = await tree.root(alice)
    for i in range(5):
        f, _ = await tree.write(alice, root.id, "v.txt", f"content {i}".encode())
    vs = await tree.versions(alice, f.id)
    assert [await ctx.blobs.read_bytes(v.blob) for v in vs] == [b"content 3", b"content 2"]
    # current (9) + two versions (9 + 9)
    assert (await ctx.accounts.get_by_id(alice)).used_bytes == 27 == await tree.used_bytes(alice)
    f = await tree.restore_version(alice, f.id, vs[1].id)
    assert await ctx.blobs.read_bytes(f.blob) == b"content 2"


async def test_quota_exceeded_changes_nothing(env):
    ctx, tree, alice, _ = env
    root = await tree.root(alice)
    await tree.write(alice, root.id, "big", b"x" * 900)
    with pytest.raises(QuotaExceeded):
        await tree.write(alice, root.id, "more", b"y" * 200)
    assert await tree.resolve(alice, "/more") is None
    assert (await ctx.accounts.get_by_id(alice)).used_bytes == 900
    with pytest.raises(QuotaExceeded):
        await tree.copy(alice, (await tree.resolve(alice, "/big")).id, root.id, "big2")


async def test_dedup_shares_one_blob(env):
    ctx, tree, alice, bob = env
    a, _ = await tree.write(alice, (await tree.root(alice)).id, "same", b"identical bytes")
    b, _ = await tree.write(bob, (await tree.root(bob)).id, "same", b"identical bytes")
    assert a.blob == b.blob and await ctx.blobs.refcount(a.blob) == 2
    await tree.purge(alice, a.id)
    assert await ctx.blobs.refcount(a.blob) == 1


async def test_trash_restore_purge(env):
    ctx, tree, alice, _ = env
    root = await tree.root(alice)
    d = await tree.mkdir(alice, root.id, "d")
    f, _ = await tree.write(alice, d.id, "f", b"12345")
    await tree.trash(alice, d.id)
    assert await tree.resolve(alice, "/d/f") is None
    with pytest.raises(NotFound):
        await tree.get(alice, f.id)  # inside a trashed folder
    assert [n.id for n in await tree.list_trash(alice)] == [d.id]
    await tree.mkdir(alice, root.id, "d")  # the name is free again
    r = await tree.restore(alice, d.id)
    assert r.name == "d (restored)" and (await tree.resolve(alice, "/d (restored)/f")).id == f.id
    await tree.trash(alice, r.id)
    assert await tree.purge_expired() == 0  # too young
    assert await tree.purge_expired(now=r.modified_at + 31 * 86400) == 1
    assert (await ctx.accounts.get_by_id(alice)).used_bytes == 0
    assert await ctx.blobs.refcount(f.blob) == 0


async def test_move_copy_and_cycles(env):
    ctx, tree, alice, _ = env
    root = await tree.root(alice)
    a = await tree.mkdir(alice, root.id, "a")
    b = await tree.mkdir(alice, a.id, "b")
    f, _ = await tree.write(alice, b.id, "f", b"abc")
    await tree.set_props(alice, f.id, {"{urn:x}color": "<color xmlns='urn:x'>red</color>"})
    with pytest.raises(Conflict):
        await tree.move(alice, a.id, b.id, "a")
    with pytest.raises(Conflict):
        await tree.copy(alice, a.id, b.id, "a")
    c = await tree.copy(alice, a.id, root.id, "c")
    fc = await tree.resolve(alice, "/c/b/f")
    assert fc is not None and fc.id != f.id and c.is_dir
    assert (await tree.props(alice, fc.id)) == {"{urn:x}color": "<color xmlns='urn:x'>red</color>"}
    assert (await ctx.accounts.get_by_id(alice)).used_bytes == 6
    moved = await tree.move(alice, f.id, root.id, "renamed")
    assert moved.id == f.id and (await tree.resolve(alice, "/renamed")).id == f.id
    with pytest.raises(Conflict):
        await tree.move(alice, fc.id, root.id, "renamed")
    await tree.move(alice, fc.id, root.id, "renamed", overwrite=True)
    assert [n.id for n in await tree.list_trash(alice)] == [f.id]


async def test_housekeeper_purges_old_trash_and_uploads(env):
    import time

    from sqlalchemy import update

    from suite.files.housekeeper import FilesHousekeeper
    from suite.files.models import FileNode

    ctx, tree, alice, _ = env
    hk = FilesHousekeeper(ctx)
    f, _ = await hk.files.tree.write(alice, (await tree.root(alice)).id, "old", b"12345")
    await hk.files.tree.trash(alice, f.id)
    up = await hk.files.tus.create(alice, length=10, metadata={"filename": "u"})
    assert await hk.run_once() == {"trash_purged": 0, "uploads_expired": 0, "blobs_collected": 0}
    async with ctx.sessions.begin() as s:
        await s.execute(update(FileNode).where(FileNode.id == f.id).values(trashed_at=time.time() - 31 * 86400))
    hk.files.tus.expiry_seconds = 0
    assert await hk.files.tus.expire(now=up.expires_at + 1) == 1
    await hk.start()

    async def purged() -> bool:
        return not await tree.list_trash(alice)

    await async_wait_until(purged, what="the housekeeper purged the trash")
    await hk.stop()
    assert await tree.list_trash(alice) == []
    assert (await ctx.accounts.get_by_id(alice)).used_bytes == 0
    # the purged file's blob is unreferenced now: collected once past its grace period
    assert await ctx.blobs.refcount(f.blob) == 0 and await ctx.blobs.backend.size(f.blob) == 5
    assert (await hk.run_once())["blobs_collected"] == 0  # still within the grace period
    ctx.blobs.GRACE_SECONDS = -5
    assert (await hk.run_once())["blobs_collected"] == 1
    assert await ctx.blobs.backend.size(f.blob) is None
