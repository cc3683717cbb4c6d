"""Downloads go out in windows (``BlobStore.windows``: mapped from the file on disk, a ranged stream on S3): bytes
must be exact across window edges, at unaligned Range offsets and in multipart answers, and a
client that leaves mid-file must not leave the server unable to serve the next one."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

WINDOW = 64 * 1024  # small windows so a few hundred KiB cross many edges


@pytest.fixture
def small_windows(server):
    server.ctx.blobs.window = WINDOW


DATA = os.urandom(5 * WINDOW + 4321)


async def test_whole_and_ranges_across_windows(server, small_windows):
    async with server.client() as c:
        assert (await c.put("/api/files/content/w.bin", content=DATA)).status_code == 201
        r = await c.get("/api/files/content/w.bin")
        assert r.status_code == 200 and r.content == DATA
        for a, b in [
            (0, 0),
            (1, WINDOW),
            (4095, 4096),
            (WINDOW - 1, 3 * WINDOW + 17),
            (4097, len(DATA) - 1),
            (len(DATA) - 5, len(DATA) - 1),
        ]:
            r = await c.get("/api/files/content/w.bin", headers={"Range": f"bytes={a}-{b}"})
            assert r.status_code == 206, (a, b)
            assert r.content == DATA[a : b + 1], (a, b)
        r = await c.get("/api/files/content/w.bin", headers={"Range": f"bytes=10-20,{WINDOW + 3}-{2 * WINDOW + 9}"})
        assert r.status_code == 206
        assert DATA[10:21] in r.content and DATA[WINDOW + 3 : 2 * WINDOW + 10] in r.content
        r = await c.get("/api/files/content/w.bin", headers={"Range": "bytes=-4321"})
        assert r.content == DATA[-4321:]


async def test_client_leaving_mid_file(server, small_windows):
    big = os.urandom(64 * WINDOW)
    async with server.client() as c:
        assert (await c.put("/api/files/content/big.bin", content=big)).status_code == 201
    host, port = server.url.removeprefix("http://").split(":")
    cred = base64.b64encode(f"alice@example.test:{server.alice}".encode()).decode()
    for _ in range(5):  # several clients go away after the first bytes
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /api/files/content/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {cred}\r\n\r\n".encode()
        )
        await writer.drain()
        assert (await reader.readexactly(12)).startswith(b"HTTP/1.1 200")
        await reader.read(WINDOW)
        writer.close()
        await writer.wait_closed()
    async with server.client() as c:
        r = await c.get("/api/files/content/big.bin")
        assert r.status_code == 200 and r.content == big
