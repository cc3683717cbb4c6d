"""tus 1.0 over a real socket: tuspy interrupted at 40% and resumed, offsets, checksums, limits, and
PATCHes of one upload from two worker processes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os

import pytest

from suite.files.tus import Locked, OffsetMismatch, TusStore
from suite.testing import async_wait_until

TUS = {"Tus-Resumable": "1.0.0"}


def _meta(**kw) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kw.items())


async def test_options_capabilities(server):
    async with server.client() as c:
        r = await c.options("/api/tus/")
        assert r.status_code == 204 and r.headers["tus-resumable"] == "1.0.0"
        assert r.headers["tus-version"] == "1.0.0"
        assert set(r.headers["tus-extension"].split(",")) >= {
            "creation",
            "creation-with-upload",
            "termination",
            "expiration",
            "checksum",
        }
        assert "sha256" in r.headers["tus-checksum-algorithm"]
        assert int(r.headers["tus-max-size"]) > 0


async def test_tuspy_interrupt_at_40_percent_and_resume(server, tmp_path):
    from tusclient import client as tus_client
    from tusclient.uploader import Uploader

    class Sha256Uploader(Uploader):
        CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)

    data = os.urandom(2_500_000)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    basic = base64.b64encode(f"alice@example.test:{server.alice}".encode()).decode()
    c = tus_client.TusClient(f"{server.url}/api/tus/", headers={"Authorization": f"Basic {basic}"})

    def first_part():
        up = Sha256Uploader(
            file_path=str(src),
            client=c,
            chunk_size=256 * 1024,
            upload_checksum=True,
            metadata={"filename": "big.bin", "folder": "/uploads"},
        )
        up.upload(stop_at=int(len(data) * 0.4))
        return up.url, up.offset

    url, offset = await asyncio.to_thread(first_part)
    assert 0.4 * len(data) <= offset < len(data)
    assert await server.files.tree.resolve(server.alice_id, "/uploads/big.bin") is None  # not yet a file

    def resume():
        up = Sha256Uploader(file_path=str(src), client=c, url=url, chunk_size=256 * 1024, upload_checksum=True)
        start = up.offset  # from HEAD
        up.upload()
        return start

    assert await asyncio.to_thread(resume) == offset
    async with server.client() as cl:
        got = (await cl.get("/api/files/content/uploads/big.bin")).content
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    assert not any((server.ctx.settings.spool_dir / "tus").iterdir())  # spool cleaned


async def test_cut_patch_keeps_received_bytes(server):
    data = os.urandom(200_000)
    async with server.client() as c:
        r = await c.post("/api/tus/", headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": ""})
        assert r.status_code == 201
        loc = r.headers["location"]
    # A raw socket: announce 200000 bytes, send 80000, hang up.
    _reader, writer = await asyncio.open_connection("127.0.0.1", int(server.url.rsplit(":", 1)[1]))
    basic = base64.b64encode(f"alice@example.test:{server.alice}".encode()).decode()
    writer.write(
        (
            f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        + data[:80_000]
    )
    await writer.drain()
    writer.close()  # the 80000 bytes go out before the FIN
    async with server.client() as c:

        async def offset() -> int:
            return int((await c.head(loc, headers=TUS)).headers["upload-offset"])

        off = await async_wait_until(offset, what="the server kept the received bytes")
        assert 0 < off <= 80_000
        r = await c.patch(
            loc,
            content=data[off:],
            headers={**TUS, "Upload-Offset": str(off), "Content-Type": "application/offset+octet-stream"},
        )
        assert r.status_code == 204 and r.headers["upload-offset"] == str(len(data))
        assert (await c.get("/api/files/content/upload")).content == data


async def test_offsets_checksums_and_errors(server):
    async with server.client() as c:
        h = {**TUS, "Content-Type": "application/offset+octet-stream"}
        assert (await c.post("/api/tus/", headers={"Upload-Length": "10"})).status_code == 412
        r = await c.post(
            "/api/tus/", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": _meta(filename="t.txt")}
        )
        assert r.status_code == 201 and r.headers["tus-resumable"] == "1.0.0" and "upload-expires" in r.headers
        loc = r.headers["location"]
        assert (await c.patch(loc, content=b"abc", headers={**h, "Upload-Offset": "5"})).status_code == 409
        bad = "sha256 " + base64.b64encode(hashlib.sha256(b"xxx").digest()).decode()
        r = await c.patch(loc, content=b"abc", headers={**h, "Upload-Offset": "0", "Upload-Checksum": bad})
        assert r.status_code == 460
        assert (await c.head(loc, headers=TUS)).headers["upload-offset"] == "0"
        good = "sha256 " + base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
        r = await c.patch(loc, content=b"abc", headers={**h, "Upload-Offset": "0", "Upload-Checksum": good})
        assert r.status_code == 204 and r.headers["upload-offset"] == "3"
        r = await c.patch(loc, content=b"d" * 20, headers={**h, "Upload-Offset": "3"})
        assert r.status_code == 400  # past Upload-Length
        r = await c.patch(loc, content=b"defghij", headers={**h, "Upload-Offset": "3"})
        assert r.status_code == 204 and r.headers["upload-offset"] == "10"
        assert (await c.get("/api/files/content/t.txt")).content == b"abcdefghij"
        # creation-with-upload
        r = await c.post(
            "/api/tus/",
            content=b"hello",
            headers={**h, "Upload-Length": "5", "Upload-Metadata": _meta(filename="w.txt")},
        )
        assert r.status_code == 201 and r.headers["upload-offset"] == "5"
        assert (await c.get("/api/files/content/w.txt")).content == b"hello"
        # termination
        r = await c.post("/api/tus/", headers={**TUS, "Upload-Length": "10"})
        loc = r.headers["location"]
        assert (await c.delete(loc, headers=TUS)).status_code == 204
        assert (await c.head(loc, headers=TUS)).status_code == 404
        # quota and max size are checked from Upload-Length, before any data
        r = await c.post("/api/tus/", headers={**TUS, "Upload-Length": str(11 * 1024**2)})
        assert r.status_code == 413 and r.headers["tus-resumable"] == "1.0.0"
        server.files.tus.max_size = 100
        assert (await c.post("/api/tus/", headers={**TUS, "Upload-Length": "101"})).status_code == 413
        # expiration
        server.files.tus.expiry_seconds = -1
        r = await c.post("/api/tus/", headers={**TUS, "Upload-Length": "10"})
        loc = r.headers["location"]
        assert (await c.head(loc, headers=TUS)).status_code == 410
        assert await server.files.tus.expire() >= 1
        assert (await c.head(loc, headers=TUS)).status_code == 404
    async with server.client("bob") as b:  # another account's upload id is unknown
        r = await b.head(loc, headers=TUS)
        assert r.status_code == 404


async def test_patch_bodies_go_straight_to_the_blob(server):
    """The body is written once: PATCHes of odd sizes (one crossing the store's 8 MiB block), the
    carried hash lost in between (as after a restart or a PATCH served by another process: rebuilt
    from the acknowledged bytes), and on disk the finished spool file *is* the blob (renamed, not
    copied: same inode)."""
    data = os.urandom(9 * 1024**2 + 512 * 1024)
    cut = 1024**2 + 1
    h = {**TUS, "Content-Type": "application/offset+octet-stream"}
    async with server.client() as c:
        r = await c.post("/api/tus/", headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": ""})
        loc = r.headers["location"]
        r = await c.patch(loc, content=data[:cut], headers={**h, "Upload-Offset": "0"})
        assert r.status_code == 204 and r.headers["upload-offset"] == str(cut)
        server.files.tus._hashes.clear()  # what a restart loses
        spool = server.ctx.settings.spool_dir / "tus" / loc.rsplit("/", 1)[1]
        inode = spool.stat().st_ino
        r = await c.patch(loc, content=data[cut:], headers={**h, "Upload-Offset": str(cut)})
        assert r.status_code == 204 and r.headers["upload-offset"] == str(len(data))
        assert (await c.get("/api/files/content/upload")).content == data
    digest = hashlib.sha256(data).hexdigest()
    assert await server.ctx.blobs.backend.size(digest) == len(data)
    if (blob := server.ctx.blobs.local_path(digest)) is not None:
        assert blob.stat().st_ino == inode
    assert not spool.exists()


async def test_a_second_worker_never_interleaves_or_appends_at_a_stale_offset(server):
    """Another worker process (its own TusStore: no shared locks or carried hashes) writes this
    upload: while its PATCH is mid-body a PATCH here gets 423 and the file is left alone; once its
    offset is committed, a PATCH at the stale offset gets 409 and its bytes are not appended; the
    upload then finishes from the offset HEAD gives, on either worker."""
    other = TusStore(server.ctx, server.files.tree, max_size=1 << 30, expiry_seconds=3600)
    h = {**TUS, "Content-Type": "application/offset+octet-stream"}
    async with server.client() as c:
        r = await c.post("/api/tus/", headers={**TUS, "Upload-Length": "10", "Upload-Metadata": _meta(filename="w2")})
        loc = r.headers["location"]
        upload_id = loc.rsplit("/", 1)[1]
        spool = server.ctx.settings.spool_dir / "tus" / upload_id
        midway, go_on = asyncio.Event(), asyncio.Event()

        async def slow_body():
            yield b"abc"
            midway.set()
            await go_on.wait()
            yield b"de"

        task = asyncio.create_task(other.append(server.alice_id, upload_id, 0, slow_body()))
        await asyncio.wait_for(midway.wait(), 10)
        r = await c.patch(loc, content=b"XXXXX", headers={**h, "Upload-Offset": "0"})
        assert r.status_code == 423 and r.headers["tus-resumable"] == "1.0.0"
        go_on.set()
        assert (await task).offset == 5
        assert spool.read_bytes() == b"abcde"
        r = await c.patch(loc, content=b"XXXXX", headers={**h, "Upload-Offset": "0"})
        assert r.status_code == 409
        assert spool.read_bytes() == b"abcde"
        assert (await c.head(loc, headers=TUS)).headers["upload-offset"] == "5"
        # the same through the other store (a PATCH routed to the other worker)
        with pytest.raises(OffsetMismatch):
            await other.append(server.alice_id, upload_id, 0, slow_body())
        assert spool.read_bytes() == b"abcde"
        # a spool file held by a writer elsewhere: refused without waiting
        fd = other._open_locked(upload_id)
        assert fd is not None
        try:
            with pytest.raises(Locked):
                await server.files.tus.append(server.alice_id, upload_id, 5, slow_body())
        finally:
            os.close(fd)
        r = await c.patch(loc, content=b"fghij", headers={**h, "Upload-Offset": "5"})
        assert r.status_code == 204 and r.headers["upload-offset"] == "10"
        assert (await c.get("/api/files/content/w2")).content == b"abcdefghij"
        r = await c.patch(loc, content=b"k", headers={**h, "Upload-Offset": "10"})
        assert r.status_code == 409  # complete: its spool file is the blob now
