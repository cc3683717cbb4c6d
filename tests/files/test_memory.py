"""Memory stays flat whatever the size: a 64 MiB file goes up (PUT, WebDAV PUT) and down (GET,
WebDAV GET, share ZIP) while Python's allocation peak stays a few MiB (client and server share
this process, so the bound covers both)."""

from __future__ import annotations

import tracemalloc

import pytest

SIZE = 64 * 1024**2
CHUNK = 256 * 1024
LIMIT = 12 * 1024**2


async def _body():
    block = bytes(range(256)) * (CHUNK // 256)
    for _ in range(SIZE // CHUNK):
        yield block


@pytest.fixture
async def big_server(server):
    await server.ctx.accounts.set_quota("alice@example.test", 10 * SIZE)
    st = server.ctx.settings
    # S3 uploads hold at most (parts in flight + the one filling) x part size by design, and botocore
    # keeps up to three copies of a part in flight (body, payload hash, request) — still independent
    # of the file's size: the bound stays below the 64 MiB file.
    server.limit = LIMIT  # per test: an S3 run must not raise the bound of the runs after it
    if st.blob_backend == "s3":
        server.limit = LIMIT + 3 * (st.s3_max_concurrency + 1) * st.s3_part_size
        assert server.limit < SIZE
    return server


async def _peak(coro) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        await coro
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def _download(c, url, **kw) -> int:
    n = 0
    async with c.stream("GET", url, **kw) as r:
        assert r.status_code == 200
        async for chunk in r.aiter_raw():
            n += len(chunk)
    return n


@pytest.mark.parametrize("db_url", ["sqlite-disk", "sqlite-s3"], indirect=True)  # memory is independent of the database
async def test_http_put_get_flat(big_server, db_url):
    async with big_server.client() as c:

        async def put():
            r = await c.put("/api/files/content/big.bin", content=_body())
            assert r.status_code == 201, r.text

        assert await _peak(put()) < big_server.limit
        got = {}

        async def get():
            got["n"] = await _download(c, "/api/files/content/big.bin")

        assert await _peak(get()) < big_server.limit and got["n"] == SIZE

        async def dav():
            r = await c.put("/dav/big2.bin", content=_body())
            assert r.status_code == 201
            got["dav"] = await _download(c, "/dav/big2.bin")

        assert await _peak(dav()) < big_server.limit and got["dav"] == SIZE
        s = (await c.post("/api/files/shares", json={"path": "/", "kind": "drop"})).json()  # root: drop only
        assert "token" in s
        await c.post("/api/files/mkdir", json={"path": "/z"})
        await c.post("/api/files/copy", json={"from": "/big.bin", "to": "/z/big.bin"})
        share = (await c.post("/api/files/shares", json={"path": "/z"})).json()

        async def zipdl():
            got["zip"] = await _download(c, f"/s/{share['token']}")

        assert await _peak(zipdl()) < big_server.limit and got["zip"] > SIZE
