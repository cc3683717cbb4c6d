"""Blob store: content addressing, streaming, reference counts, and crash safety (kill -9 mid-blob)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

from suite.storage.blobs import BlobStore, DiskBackend
from suite.testing import wait_until


async def test_put_get_dedup_and_range(ctx):
    data = os.urandom(700_000)
    ref = await ctx.blobs.put(data)
    assert ref.digest == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert await ctx.blobs.read_bytes(ref.digest) == data
    assert await ctx.blobs.read_bytes(ref.digest, 1000, 300_000) == data[1000:300_000]
    again = await ctx.blobs.put(iter([data[:5], data[5:]]))
    assert again == ref
    # one file on disk for the two puts
    assert len([d async for d in ctx.blobs.backend.list_digests()]) == 1


async def test_streaming_reads_are_chunked(ctx):
    async def gen():
        for _ in range(40):
            yield b"x" * 100_000

    ref = await ctx.blobs.put(gen())
    sizes = [len(c) async for c in ctx.blobs.read(ref.digest, chunk=65536)]
    assert sum(sizes) == 4_000_000 and max(sizes) == 65536


async def test_refcounts_and_gc(ctx):
    keep = await ctx.blobs.put(b"keep me")
    drop = await ctx.blobs.put(b"drop me")
    orphan = await ctx.blobs.put(b"never referenced")
    async with ctx.sessions.begin() as s:
        await BlobStore.ref(s, keep)
        await BlobStore.ref(s, drop, 2)
    async with ctx.sessions.begin() as s:
        await BlobStore.unref(s, drop.digest, 2)
    assert await ctx.blobs.refcount(keep.digest) == 1
    assert await ctx.blobs.refcount(drop.digest) == 0
    # within the grace period nothing is deleted
    assert await ctx.blobs.gc() == 0
    assert ctx.blobs.local_path(drop.digest) is not None
    # past it, unreferenced and orphaned blobs go; referenced ones stay
    past = time.time() - 7200
    for ref in (drop, orphan, keep):
        os.utime(ctx.blobs.local_path(ref.digest), (past, past))
    assert await ctx.blobs.gc() == 2
    assert ctx.blobs.local_path(drop.digest) is None
    assert ctx.blobs.local_path(orphan.digest) is None
    assert await ctx.blobs.read_bytes(keep.digest) == b"keep me"


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from suite.storage.blobs import DiskBackend

    async def main():
        w = await DiskBackend(sys.argv[1]).open_writer()
        print("writing", flush=True)
        while True:  # never finishes: the test kills us mid-blob
            await w.write(b"y" * 65536)
            await asyncio.sleep(0.001)  # pacing (not waiting): the parent kills us after 2 MB

    asyncio.run(main())
    """
)


def test_kill_9_mid_blob_leaves_no_partial_blob(tmp_path):
    root = tmp_path / "blobs"
    backend = DiskBackend(root)
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"writing"
    wait_until(lambda: sum(f.stat().st_size for f in backend.tmp.iterdir()) >= 2_000_000, what="2 MB written")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the half-written data exists only as a temp file, never under a digest
    assert any(backend.tmp.iterdir())
    visible = [p for p in root.rglob("*") if p.is_file() and backend.tmp not in p.parents]
    assert visible == []
    # a fresh store cleans the leftovers and works
    assert asyncio.run(backend.clean_tmp(older_than=time.time() + 1)) >= 1
    assert not any(backend.tmp.iterdir())


async def test_every_visible_blob_matches_its_name(ctx):
    for n in (0, 1, 65536, 300_001):
        await ctx.blobs.put(os.urandom(n))
    async for digest in ctx.blobs.backend.list_digests():
        assert hashlib.sha256(ctx.blobs.local_path(digest).read_bytes()).hexdigest() == digest
