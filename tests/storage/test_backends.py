"""The ``BlobBackend`` protocol, checked the same way on both real backends (disk, and S3 on a real
Ceph RGW): streaming writes, whole puts, ranged and chunked reads, windows for sending, local paths,
missing blobs, deletion by age, and the cleanup of what a crashed writer leaves behind.

Callers never ask which backend they have, so everything they rely on is asserted here for both."""

from __future__ import annotations

import hashlib
import os
import secrets
import time

import pytest

from suite.storage.blobs import CHUNK, BlobBackend, BlobNotFound, BlobStore, DiskBackend

MiB = 1024 * 1024
DATA = os.urandom(12 * MiB + 12345)  # more than two S3 parts of 5 MiB: a real multipart upload


@pytest.fixture(params=["disk", "s3"])
async def backend(request, tmp_path):
    if request.param == "disk":
        b: BlobBackend = DiskBackend(tmp_path / "blobs")
        yield b
        await b.close()
        return
    s3 = request.getfixturevalue("s3_server")
    from suite.storage.s3 import S3Backend

    b = S3Backend(
        f"suite-test-{secrets.token_hex(6)}",
        endpoint=s3["endpoint"],
        access_key=s3["access_key"],
        secret_key=s3["secret_key"],
        part_size=5 * MiB,
        max_concurrency=2,
    )
    yield b
    # empty the bucket through the protocol itself, then remove it
    async for digest in b.list_digests():
        await b.delete(digest)
    await b.clean_tmp(time.time() + 60)
    client = await b._client()
    await client.delete_bucket(Bucket=b.bucket)
    await b.close()


async def _stored(backend: BlobBackend, data: bytes = DATA, piece: int = 100_003):
    w = await backend.open_writer()
    for i in range(0, len(data), piece):  # odd-sized pieces: parts never line up with writes
        await w.write(memoryview(data)[i : i + piece])
    assert w.size == len(data)
    return await w.commit()


def test_both_backends_satisfy_the_protocol(tmp_path):
    from suite.storage.s3 import S3Backend

    assert isinstance(DiskBackend(tmp_path), BlobBackend)
    assert isinstance(S3Backend("bucket", endpoint="http://127.0.0.1:9"), BlobBackend)


async def test_streaming_write_then_ranged_reads(backend):
    ref = await _stored(backend)
    assert ref.digest == hashlib.sha256(DATA).hexdigest() and ref.size == len(DATA)
    assert await backend.size(ref.digest) == len(DATA)
    assert [d async for d in backend.list_digests()] == [ref.digest]
    pieces = [c async for c in backend.read(ref.digest, chunk=65536)]
    assert b"".join(pieces) == DATA and max(len(c) for c in pieces) == 65536
    n = len(DATA)
    for start, end in [(0, 1), (5 * MiB - 1, 5 * MiB + 1), (n - 1, n), (12345, None), (n, None), (7, 7)]:
        got = b"".join([c async for c in backend.read(ref.digest, start, end)])
        assert got == DATA[start:end], (start, end)


async def test_put_bytes_is_the_same_blob_and_dedups(backend):
    small = os.urandom(70_000)
    ref = await backend.put_bytes(small)
    assert ref.digest == hashlib.sha256(small).hexdigest()
    assert await backend.put_bytes(small) == ref
    assert await _stored(backend, small, 999) == ref
    assert [d async for d in backend.list_digests()] == [ref.digest]
    big = await backend.put_bytes(DATA)  # a whole put larger than a part goes through the writer
    assert b"".join([c async for c in backend.read(big.digest)]) == DATA
    empty = await backend.put_bytes(b"")
    assert empty.size == 0 and b"".join([c async for c in backend.read(empty.digest)]) == b""


async def test_windows_for_sending(backend):
    ref = await _stored(backend)
    window = 64 * 1024
    n = len(DATA)
    for start, end in [(0, n), (1, window), (window - 1, 3 * window + 17), (n - 5, n), (9, 9)]:
        pieces = [bytes(p) async for p in backend.windows(ref.digest, start, end, window)]
        assert b"".join(pieces) == DATA[start:end], (start, end)
        assert all(len(p) <= max(window, CHUNK) for p in pieces)
    # a recorded size larger than the blob is an error, never a short answer
    with pytest.raises(OSError):
        async for _ in backend.windows(ref.digest, 0, n + 10, window):
            pass


async def test_a_stream_closed_early_frees_it(backend):
    ref = await _stored(backend)
    it = backend.read(ref.digest, chunk=65536)
    assert len(await anext(it)) == 65536
    await it.aclose()
    win = backend.windows(ref.digest, 0, len(DATA), 65536)
    assert len(await anext(win)) > 0
    await win.aclose()
    assert b"".join([c async for c in backend.read(ref.digest, 0, 10)]) == DATA[:10]


async def test_missing_blob(backend):
    digest = "0" * 64
    with pytest.raises(BlobNotFound):
        async for _ in backend.read(digest):
            pass
    with pytest.raises(BlobNotFound):
        async for _ in backend.windows(digest, 0, 10):
            pass
    assert await backend.size(digest) is None
    assert await backend.delete(digest) is False
    assert backend.local_path(digest) is None
    with pytest.raises(ValueError):
        await backend.size("../../etc/passwd")


async def test_local_path_only_where_there_is_a_file(backend):
    ref = await backend.put_bytes(b"on a disk, or not")
    path = backend.local_path(ref.digest)
    if backend.name == "disk":
        assert path is not None and path.read_bytes() == b"on a disk, or not"
    else:
        assert backend.name == "s3" and path is None


async def test_delete_by_age(backend):
    ref = await backend.put_bytes(b"young blob")
    assert await backend.delete(ref.digest, older_than=time.time() - 3600) is False  # written just now
    assert await backend.size(ref.digest) == len(b"young blob")
    assert await backend.delete(ref.digest, older_than=time.time() + 60) is True
    assert await backend.size(ref.digest) is None


async def test_abort_and_crashed_writers_leave_nothing(backend):
    w = await backend.open_writer()
    await w.write(DATA[: 6 * MiB])  # past one S3 part: a multipart upload is in progress
    await w.abort()
    assert [d async for d in backend.list_digests()] == []
    assert await backend.clean_tmp(time.time() + 60) == 0  # abort left nothing behind
    crashed = await backend.open_writer()  # never committed nor aborted: a crash
    await crashed.write(DATA[: 6 * MiB])
    assert await backend.clean_tmp(time.time() - 3600) == 0  # too young to be a crash's leftover
    assert await backend.clean_tmp(time.time() + 60) >= 1
    assert await backend.clean_tmp(time.time() + 60) == 0
    assert [d async for d in backend.list_digests()] == []


async def test_blob_store_puts_bytes_and_streams_alike(backend):
    store = BlobStore(backend)
    one = await store.put(DATA[:300_000])

    async def agen():
        yield DATA[:100_000]
        yield DATA[100_000:300_000]

    assert await store.put(agen()) == one
    assert await store.put(iter([DATA[:1], DATA[1:300_000]])) == one
    assert await store.read_bytes(one.digest, 5, 70_000) == DATA[5:70_000]
    store.window = 65536
    assert b"".join([bytes(p) async for p in store.windows(one.digest, 3, 200_000)]) == DATA[3:200_000]
    await store.close()


async def test_put_bytes_with_work_on_the_same_bytes(backend):
    data = os.urandom(6 * MiB)  # more than one S3 part
    n, ref = await backend.put_bytes_with(data, len)
    assert n == len(data) and ref.digest == hashlib.sha256(data).hexdigest()
    assert await backend.size(ref.digest) == len(data)

    def broken(_data: bytes) -> int:
        raise ValueError("unparsable")

    other = os.urandom(6 * MiB)
    with pytest.raises(ValueError, match="unparsable"):  # the work's own error, nothing wrapped
        await backend.put_bytes_with(other, broken)
    # nothing of the failed put is left: no blob, no temp file or pending upload to clean
    assert await backend.clean_tmp(time.time() + 60) == 0
    assert await backend.size(hashlib.sha256(other).hexdigest()) is None
    assert [d async for d in backend.list_digests()] == [ref.digest]
