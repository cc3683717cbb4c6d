"""S3 blob backend against a real Ceph RGW (single node on 127.0.0.1, started by scripts/start-ceph.sh).

The generic blob checks of test_blobs.py (put/get/dedup/range, chunked streaming, refcounts + gc, every
blob matches its name) run here on S3 through ``make_backend`` and a real context, then S3 specifics:
multipart with flat memory, abort and kill -9 leave nothing under ``blobs/``, ranged reads, Ceph's empty
CompleteMultipartUpload ETag, the UploadPartCopy path, age refresh on dedup.

Ceph: the session fixture starts it when its port is closed (needs root and the kit script; about a
minute). ``SUITE_TEST_S3=http://host:port`` (with ``S3_AK``/``S3_SK``) points the tests at another engine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import signal
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest

from suite.config import Settings
from suite.context import open_context
from suite.storage import db
from suite.storage.blobs import BlobNotFound, BlobStore
from suite.testing import async_wait_until, missing

# The `s3_server` fixture (starts Ceph RGW when needed) is in tests/conftest.py: the files suite uses it too.
MiB = 1024 * 1024


def _backend(s3_server: dict, **kw):
    from suite.storage.s3 import S3Backend

    kw.setdefault("part_size", 5 * MiB)
    kw.setdefault("max_concurrency", 2)
    return S3Backend(
        f"suite-test-{secrets.token_hex(6)}",
        endpoint=s3_server["endpoint"],
        access_key=s3_server["access_key"],
        secret_key=s3_server["secret_key"],
        **kw,
    )


async def _keys(backend, prefix: str = "") -> list[str]:
    return [o["Key"] async for o in backend._list(prefix)]


async def _uploads(backend) -> list[dict]:
    client = await backend._client()
    res = await client.list_multipart_uploads(Bucket=backend.bucket)
    return res.get("Uploads", [])


async def _drop(backend) -> None:
    """Empty and remove the test bucket, then close the client."""
    client = await backend._client()
    for up in await _uploads(backend):
        await client.abort_multipart_upload(Bucket=backend.bucket, Key=up["Key"], UploadId=up["UploadId"])
    for key in await _keys(backend):
        await client.delete_object(Bucket=backend.bucket, Key=key)
    await client.delete_bucket(Bucket=backend.bucket)
    await backend.close()


@pytest.fixture
async def s3(s3_server):
    backend = _backend(s3_server)
    await backend._client()
    yield backend
    await _drop(backend)


@pytest.fixture
async def s3ctx(s3_server, tmp_path: Path):
    """A real context whose blob store is S3, built through settings and ``make_backend``."""
    import suite.models  # noqa: F401

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'suite.db'}",
        bus_backend="memory",
        blob_backend="s3",
        s3_endpoint=s3_server["endpoint"],
        s3_bucket=f"suite-test-{secrets.token_hex(6)}",
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_part_size=5 * MiB,
        s3_max_concurrency=2,
    )
    engine = db.make_engine(settings.db_url)
    await db.migrate(engine)
    await engine.dispose()
    c = await open_context(settings)
    assert c.blobs.backend.name == "s3" and c.blobs.local_path("0" * 64) is None
    yield c
    await c.close()
    await _drop(c.blobs.backend)


def _hooks(backend, *ops: str) -> dict:
    """Count real requests per operation and the most in flight at once, via botocore's event hooks."""
    stats = {"calls": {op: 0 for op in ops}, "inflight": 0, "max_inflight": 0}

    def before(model, **_):
        stats["calls"][model.name] += 1
        stats["inflight"] += 1
        stats["max_inflight"] = max(stats["max_inflight"], stats["inflight"])

    def after(model, **_):
        stats["inflight"] -= 1

    events = backend._cl.meta.events
    for op in ops:
        events.register(f"before-call.s3.{op}", before)
        events.register(f"after-call.s3.{op}", after)
    return stats


# ----- the generic blob checks (test_blobs.py), on S3 -----


async def test_put_get_dedup_and_range(s3ctx):
    data = os.urandom(700_000)
    ref = await s3ctx.blobs.put(data)
    assert ref.digest == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert await s3ctx.blobs.read_bytes(ref.digest) == data
    assert await s3ctx.blobs.read_bytes(ref.digest, 1000, 300_000) == data[1000:300_000]
    again = await s3ctx.blobs.put(iter([data[:5], data[5:]]))
    assert again == ref
    assert [d async for d in s3ctx.blobs.backend.list_digests()] == [ref.digest]
    assert await _keys(s3ctx.blobs.backend, "tmp/") == []


async def test_streaming_reads_are_chunked(s3ctx):
    async def gen():
        for _ in range(40):
            yield b"x" * 100_000

    ref = await s3ctx.blobs.put(gen())
    sizes = [len(c) async for c in s3ctx.blobs.read(ref.digest, chunk=65536)]
    assert sum(sizes) == 4_000_000 and max(sizes) == 65536
    assert all(n == 65536 for n in sizes[:-1])


async def test_refcounts_and_gc(s3ctx):
    blobs = s3ctx.blobs
    keep = await blobs.put(b"keep me")
    drop = await blobs.put(b"drop me")
    orphan = await blobs.put(b"never referenced")
    async with s3ctx.sessions.begin() as s:
        await BlobStore.ref(s, keep)
        await BlobStore.ref(s, drop, 2)
    async with s3ctx.sessions.begin() as s:
        await BlobStore.unref(s, drop.digest, 2)
    assert await blobs.refcount(keep.digest) == 1
    assert await blobs.refcount(drop.digest) == 0
    # within the grace period nothing is deleted
    # a temp object a crashed writer left behind
    client = await blobs.backend._client()
    await client.put_object(Bucket=blobs.backend.bucket, Key="tmp/leftover", Body=b"z")
    assert await blobs.gc() == 0
    assert await blobs.backend.size(drop.digest) == len(b"drop me")
    assert await _keys(blobs.backend, "tmp/") == ["tmp/leftover"]
    # past it (LastModified cannot be set back, so move the cutoff forward instead) the
    # unreferenced and orphaned blobs go; the referenced one stays
    assert await blobs.gc(grace=-5) == 2
    assert await blobs.backend.size(drop.digest) is None
    assert await blobs.backend.size(orphan.digest) is None
    assert await blobs.read_bytes(keep.digest) == b"keep me"
    assert await _keys(blobs.backend, "tmp/") == []


async def test_every_visible_blob_matches_its_name(s3ctx):
    part = 5 * MiB
    for n in (0, 1, 65536, 300_001, part - 1, part, part + 1):
        await s3ctx.blobs.put(os.urandom(n))
    # a foreign key under blobs/ is not a blob (and must not trip gc)
    client = await s3ctx.blobs.backend._client()
    await client.put_object(Bucket=s3ctx.blobs.backend.bucket, Key="blobs/not-a-digest", Body=b"?")
    seen = 0
    async for digest in s3ctx.blobs.backend.list_digests():
        h = hashlib.sha256()
        async for c in s3ctx.blobs.read(digest):
            h.update(c)
        assert h.hexdigest() == digest
        seen += 1
    assert seen == 7
    assert await s3ctx.blobs.gc(grace=-5) == 7  # all unreferenced
    assert await _keys(s3ctx.blobs.backend) == ["blobs/not-a-digest"]


# ----- S3 specifics -----


async def test_40mb_multipart_keeps_memory_flat(s3):
    part, conc = s3.part_size, s3.max_concurrency
    assert (part, conc) == (5 * MiB, 2)
    # warm up: the client loads its operation models on first use
    w = await s3.open_writer()
    await w.write(os.urandom(part + 1))
    await w.commit()
    stats = _hooks(s3, "UploadPart")

    block = os.urandom(256 * 1024)
    expected = hashlib.sha256()
    tracemalloc.start()
    try:
        w = await s3.open_writer()
        for i in range(160):  # 40 MiB
            chunk = i.to_bytes(4, "big") + block[4:]
            expected.update(chunk)
            await w.write(chunk)
        ref = await w.commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ref.digest == expected.hexdigest() and ref.size == 40 * MiB
    assert stats["calls"]["UploadPart"] == 8
    assert 1 <= stats["max_inflight"] <= conc
    # the parts in flight plus the one being filled, with room for their buffers' growth slack;
    # the 40 MiB blob is far above this, and so is one extra copy of each part in flight
    bound = int(1.5 * (conc + 1) * part)
    print(f"tracemalloc peak {peak / MiB:.1f} MiB (bound {bound / MiB:.0f} MiB), max in flight {stats['max_inflight']}")
    assert peak < bound
    # streams back whole and right
    got = hashlib.sha256()
    async for c in s3.read(ref.digest, chunk=MiB):
        got.update(c)
    assert got.hexdigest() == ref.digest
    assert await s3.size(ref.digest) == 40 * MiB
    assert await _keys(s3, "tmp/") == [] and await _uploads(s3) == []


async def test_abort_leaves_nothing_visible(s3):
    w = await s3.open_writer()
    await w.write(os.urandom(12 * MiB))  # two parts shipped, a multipart upload is pending
    assert len(await _uploads(s3)) == 1
    await w.abort()
    assert [d async for d in s3.list_digests()] == []
    assert await _keys(s3) == [] and await _uploads(s3) == []
    with pytest.raises(RuntimeError):
        await w.write(b"more")

    # a producer that fails half-way through BlobStore.put: same
    async def failing():
        yield os.urandom(7 * MiB)
        raise OSError("client went away")

    with pytest.raises(OSError):
        await BlobStore(s3).put(failing())
    assert await _keys(s3) == [] and await _uploads(s3) == []


async def test_range_reads(s3):
    data = os.urandom(11 * MiB)  # three parts: the range crosses part boundaries
    ref = await BlobStore(s3).put(data)
    store = BlobStore(s3)
    n = len(data)
    for start, end in [(0, 1), (n - 1, n), (5 * MiB - 10, 10 * MiB + 10), (123, None), (0, n + 100), (n, n + 5)]:
        assert await store.read_bytes(ref.digest, start, end) == data[start:end], (start, end)
    assert await store.read_bytes(ref.digest, n + 10) == b""  # S3 answers 416; we answer empty
    assert await store.read_bytes(ref.digest, 50, 50) == b""
    sizes = [len(c) async for c in s3.read(ref.digest, 1, 1 + 3 * 65536 + 7, chunk=65536)]
    assert sizes == [65536, 65536, 65536, 7]
    # ``pieces``: the same bytes as they arrive, none larger than asked
    for start, end in [(0, n), (5 * MiB - 10, 10 * MiB + 10), (123, None), (n, n + 5), (50, 50)]:
        got = [c async for c in s3.pieces(ref.digest, start, end, MiB)]
        assert b"".join(got) == data[start:end] and all(0 < len(c) <= MiB for c in got), (start, end)
    # empty blob: a Range on a 0-byte object is a 416 too
    empty = await store.put(b"")
    assert await store.read_bytes(empty.digest) == b"" and await store.read_bytes(empty.digest, 0, 10) == b""


async def test_missing_blobs(s3):
    digest = hashlib.sha256(b"not stored").hexdigest()
    for start, end in [(0, None), (5, 10), (3, 3), (10**9, None)]:
        with pytest.raises(BlobNotFound):
            await BlobStore(s3).read_bytes(digest, start, end)
        with pytest.raises(BlobNotFound):
            [c async for c in s3.pieces(digest, start, end, MiB)]
    assert await s3.size(digest) is None
    assert await s3.delete(digest) is False
    with pytest.raises(ValueError):
        await s3.size("../etc/passwd")


async def test_delete_by_age(s3):
    ref = await BlobStore(s3).put(b"aged")
    assert await s3.delete(ref.digest, older_than=time.time() - 3600) is False
    assert await s3.size(ref.digest) == 4
    assert await s3.delete(ref.digest, older_than=time.time() + 5) is True
    assert await s3.size(ref.digest) is None


async def test_ceph_empty_complete_etag(s3):
    """Ceph RGW answers CompleteMultipartUpload with ETag "" — a commit must not depend on it."""
    client = await s3._client()
    up = await client.create_multipart_upload(Bucket=s3.bucket, Key="tmp/probe")
    p = await client.upload_part(Bucket=s3.bucket, Key="tmp/probe", UploadId=up["UploadId"], PartNumber=1, Body=b"x")
    res = await client.complete_multipart_upload(
        Bucket=s3.bucket,
        Key="tmp/probe",
        UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]},
    )
    head = await client.head_object(Bucket=s3.bucket, Key="tmp/probe")
    print(f"CompleteMultipartUpload ETag {res.get('ETag')!r}, HeadObject ETag {head['ETag']!r}")
    assert head["ETag"].strip('"').endswith("-1")
    await client.delete_object(Bucket=s3.bucket, Key="tmp/probe")
    # the backend's multipart commit works on this engine, whatever that answer was
    data = os.urandom(6 * MiB)
    ref = await BlobStore(s3).put(data)
    assert await BlobStore(s3).read_bytes(ref.digest) == data


async def test_upload_part_copy_above_copy_limit(s3):
    s3.copy_limit = 5 * MiB  # stand-in for S3's 5 GiB CopyObject limit
    s3.copy_part_size = 5 * MiB
    stats = _hooks(s3, "UploadPartCopy", "CopyObject")
    data = os.urandom(12 * MiB + 3)
    ref = await BlobStore(s3).put(data)
    assert stats["calls"] == {"UploadPartCopy": 3, "CopyObject": 0}
    assert await BlobStore(s3).read_bytes(ref.digest) == data
    assert await _keys(s3) == [f"blobs/{ref.digest}"] and await _uploads(s3) == []


async def test_dedup_refreshes_age(s3):
    store = BlobStore(s3)
    small, large = os.urandom(1000), os.urandom(6 * MiB)
    refs = [await store.put(small), await store.put(large)]
    before = [await s3.last_modified(r.digest) for r in refs]
    # LastModified has one-second resolution: put again once the clock is in a later second
    await async_wait_until(lambda: time.time() >= max(before) + 1, what="the next second")
    assert [await store.put(small), await store.put(large)] == refs
    after = [await s3.last_modified(r.digest) for r in refs]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert sorted(await _keys(s3)) == sorted(f"blobs/{r.digest}" for r in refs)


WRITER = textwrap.dedent(
    """
    import asyncio, os, sys
    from suite.storage.s3 import S3Backend

    async def main():
        b = S3Backend(sys.argv[1], endpoint=sys.argv[2], access_key=sys.argv[3], secret_key=sys.argv[4],
                      part_size=5 * 1024 * 1024, max_concurrency=2, create_bucket=False)
        w = await b.open_writer()
        block = os.urandom(1024 * 1024)
        for _ in range(12):
            await w.write(block)
        print("writing", flush=True)
        while True:  # never finishes: the test kills us mid-blob
            await w.write(block)
            await asyncio.sleep(0.01)  # pacing (not waiting): the parent kills us

    asyncio.run(main())
    """
)


async def test_kill_9_mid_blob_leaves_no_partial_blob(s3, s3_server):
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        s3.bucket,
        s3_server["endpoint"],
        s3_server["access_key"],
        s3_server["secret_key"],
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"writing"
        await async_wait_until(lambda: _uploads(s3), 20, what="a pending multipart upload")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    # the half-written data exists only as a pending upload under tmp/, never under a digest
    ups = await _uploads(s3)
    assert len(ups) == 1 and ups[0]["Key"].startswith("tmp/")
    assert [d async for d in s3.list_digests()] == []
    # gc's temp cleaning respects age, then removes the leftovers
    assert await s3.clean_tmp(older_than=time.time() - 3600) == 0
    assert await s3.clean_tmp(older_than=time.time() + 5) == 1
    assert await _uploads(s3) == [] and await _keys(s3) == []
    # a temp object left between CompleteMultipartUpload and the copy goes the same way
    client = await s3._client()
    await client.put_object(Bucket=s3.bucket, Key="tmp/leftover", Body=b"z")
    assert await s3.clean_tmp(older_than=time.time() - 3600) == 0
    assert await s3.clean_tmp(older_than=time.time() + 5) == 1
    assert await _keys(s3) == []


def test_settings_validation():
    try:
        from suite.storage.s3 import S3Backend
    except ImportError:
        missing("aiobotocore not installed (pip install aiobotocore)")

    with pytest.raises(ValueError, match="at least"):
        S3Backend("b", part_size=1024)
    with pytest.raises(ValueError):
        S3Backend("b", max_concurrency=0)


async def test_bodies_go_unsigned_to_a_loopback_provider(s3):
    """On a loopback endpoint no wire carries the body: botocore sends ``UNSIGNED-PAYLOAD`` (no
    SHA-256 of every byte of every copy, on either side), and the provider takes it — the small
    PutObject and the multipart parts alike."""
    sent: list[str] = []

    def before_send(request, **_):
        if request.method == "PUT":
            sent.append(request.headers.get("X-Amz-Content-SHA256", b"").decode())

    s3._cl.meta.events.register("before-send.s3", before_send)
    small = os.urandom(3000)
    ref = await s3.put_bytes(small)
    big = os.urandom(6 * MiB)  # a multipart upload (one part of 6 MiB, handed whole)
    big_ref = await s3.put_bytes(big)
    assert b"".join([c async for c in s3.read(ref.digest)]) == small
    assert hashlib.sha256(b"".join([c async for c in s3.read(big_ref.digest)])).hexdigest() == big_ref.digest
    assert len(sent) >= 3 and set(sent) == {"UNSIGNED-PAYLOAD"}, sent


def test_payload_signed_only_over_plain_http_to_another_host():
    from suite.storage.s3 import sign_payload

    for endpoint in ("", "https://s3.example.net", "http://127.0.0.1:7480", "http://[::1]:9000", "http://localhost"):
        assert not sign_payload(endpoint), endpoint
    for endpoint in ("http://10.0.0.5:7480", "http://s3.lan:9000", "http://[2001:db8::1]/"):
        assert sign_payload(endpoint), endpoint


async def test_whole_parts_and_buffered_writes_mix(s3):
    """A ``bytes`` of one part or a little more goes up as that part, without a copy into the
    buffer; writes of other sizes or types are gathered into parts as before — any mix makes the
    same blob."""
    stats = _hooks(s3, "UploadPart")
    pieces = [
        os.urandom(5 * MiB),  # whole: a part of its own
        bytearray(os.urandom(3 * MiB)),  # buffered
        os.urandom(6 * MiB),  # buffer not empty: buffered too
        os.urandom(7 * MiB),
    ]
    w = await s3.open_writer()
    for piece in pieces:
        await w.write(piece)
    ref = await w.commit()
    data = b"".join(bytes(p) for p in pieces)
    assert ref.digest == hashlib.sha256(data).hexdigest() and ref.size == len(data)
    assert b"".join([c async for c in s3.read(ref.digest)]) == data
    assert stats["calls"]["UploadPart"] == 5  # 5 (whole), then 5 + 5 + 5 gathered, then the last 1
