"""The files HTTP API over a real socket: listing, upload, Range, validators, traversal, quota."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from suite.files import httpcore
from suite.testing import require_tool


def test_parse_range_rules():
    R = httpcore.ByteRange
    assert httpcore.parse_range("bytes=0-9", 100) == [R(0, 10)]
    assert httpcore.parse_range("bytes=-10", 100) == [R(90, 100)]
    assert httpcore.parse_range("bytes=90-", 100) == [R(90, 100)]
    assert httpcore.parse_range("bytes=95-200", 100) == [R(95, 100)]
    assert httpcore.parse_range("bytes=0-1,5-6", 100) == [R(0, 2), R(5, 7)]
    assert httpcore.parse_range("bytes=0-5,3-9", 100) is None  # overlapping: whole
    assert httpcore.parse_range("items=0-5", 100) is None
    assert httpcore.parse_range("bytes=5-1", 100) is None
    with pytest.raises(httpcore.Unsatisfiable):
        httpcore.parse_range("bytes=100-", 100)
    cd = httpcore.content_disposition('naïve "x";.txt')
    assert cd == "attachment; filename=\"na_ve _x__.txt\"; filename*=UTF-8''na%C3%AFve%20%22x%22%3B.txt"


async def test_put_list_get_range_etag(server):
    async with server.client() as c:
        assert (await c.post("/api/files/mkdir", json={"path": "/Docs"})).status_code == 201
        data = os.urandom(300_000)
        r = await c.put("/api/files/content/Docs/r.bin", content=data)
        assert r.status_code == 201, r.text
        etag = r.headers["etag"]
        lst = (await c.get("/api/files/list/Docs")).json()
        assert [x["name"] for x in lst["children"]] == ["r.bin"] and lst["children"][0]["size"] == 300_000
        r = await c.get("/api/files/content/Docs/r.bin")
        assert r.content == data and r.headers["etag"] == etag and r.headers["accept-ranges"] == "bytes"
        r = await c.get("/api/files/content/Docs/r.bin", headers={"Range": "bytes=1000-1999"})
        assert r.status_code == 206 and r.content == data[1000:2000]
        assert r.headers["content-range"] == "bytes 1000-1999/300000"
        r = await c.get("/api/files/content/Docs/r.bin", headers={"Range": "bytes=300000-"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */300000"
        r = await c.get("/api/files/content/Docs/r.bin", headers={"Range": "bytes=0-0,-1"})
        assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/byteranges")
        assert data[:1] in r.content and data[-1:] in r.content
        assert (await c.get("/api/files/content/Docs/r.bin", headers={"If-None-Match": etag})).status_code == 304
        # If-Range with a stale validator: the whole file
        r = await c.get("/api/files/content/Docs/r.bin", headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
        assert r.status_code == 200 and len(r.content) == 300_000
        # overwrite → new ETag, one version
        r = await c.put("/api/files/content/Docs/r.bin", content=b"new")
        assert r.status_code == 200 and r.headers["etag"] != etag
        assert len((await c.get("/api/files/versions/Docs/r.bin")).json()["versions"]) == 1


async def test_multipart_upload_move_copy_trash(server):
    async with server.client() as c:
        r = await c.post("/api/files/upload", files={"file": ("hé llo.txt", b"hello", "text/plain")})
        assert r.status_code == 201, r.text
        r = await c.get("/api/files/content/hé llo.txt")
        assert r.content == b"hello" and "filename*=UTF-8''h%C3%A9%20llo.txt" in r.headers["content-disposition"]
        assert (await c.post("/api/files/copy", json={"from": "/hé llo.txt", "to": "/copy.txt"})).status_code == 201
        assert (await c.post("/api/files/move", json={"from": "/copy.txt", "to": "/moved.txt"})).status_code == 200
        assert (await c.post("/api/files/move", json={"from": "/moved.txt", "to": "/hé llo.txt"})).status_code == 409
        r = await c.post("/api/files/delete", json={"path": "/moved.txt"})
        assert r.status_code == 200
        trash = (await c.get("/api/files/trash")).json()["items"]
        assert [t["name"] for t in trash] == ["moved.txt"]
        assert (await c.post("/api/files/trash/restore", json={"id": trash[0]["id"]})).status_code == 200
        assert (await c.get("/api/files/content/moved.txt")).content == b"hello"
        # size capped before reading: Content-Length over the form limit
        server.files.limits.max_form_bytes = 1000
        r = await c.post("/api/files/upload", files={"file": ("big", b"x" * 5000)})
        assert r.status_code == 413


@pytest.mark.parametrize(
    "path",
    [
        "/api/files/content/..%2f..%2fetc%2fpasswd",
        "/api/files/content/%2e%2e/%2e%2e/etc/passwd",
        "/api/files/content/a/%2e%2e/b",
        "/api/files/list/%2e%2e",
        "/api/files/content/a%00b",
    ],
)
async def test_traversal_refused(server, path):
    async with server.client() as c:
        r = await c.get(path)
        assert r.status_code in (400, 404), r.text
        assert b"root:" not in r.content


async def test_other_account_cannot_reach(server):
    async with server.client("alice") as a, server.client("bob") as b:
        await a.put("/api/files/content/secret.txt", content=b"alice only")
        node = (await a.get("/api/files/stat/secret.txt")).json()
        assert (await b.get("/api/files/content/secret.txt")).status_code == 404
        assert (await b.post("/api/files/trash/restore", json={"id": node["id"]})).status_code == 404
        assert (await b.post("/api/files/trash/purge", json={"id": node["id"]})).status_code == 404
        assert (await a.get("/api/files/content/secret.txt")).content == b"alice only"
    async with server.client("alice") as a:
        a.auth = None
        assert (await a.get("/api/files/list")).status_code == 401


async def test_quota_413(server):
    await server.ctx.accounts.set_quota("alice@example.test", 1000)
    async with server.client() as c:
        assert (await c.put("/api/files/content/ok", content=b"x" * 900)).status_code == 201
        r = await c.put("/api/files/content/no", content=b"y" * 200)
        assert r.status_code == 413 and r.json()["error"] == "quota_exceeded"

        async def chunked():  # no Content-Length: checked when stored
            yield b"z" * 200

        r = await c.put("/api/files/content/no2", content=chunked())
        assert r.status_code == 413
        assert (await c.get("/api/files/stat/no2")).status_code == 404
    assert (await server.ctx.accounts.get("alice@example.test")).used_bytes == 900


async def test_curl_upload_range_if_none_match(server, tmp_path):
    curl = require_tool("curl")
    src = tmp_path / "src.bin"
    data = os.urandom(1_000_000)
    src.write_bytes(data)
    auth = f"alice@example.test:{server.alice}"

    async def run(*args):
        p = await asyncio.create_subprocess_exec(
            curl, "-sS", "-u", auth, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await p.communicate()
        assert p.returncode == 0, err
        return out

    code = await run("-o", "/dev/null", "-w", "%{http_code}", "-T", str(src), f"{server.url}/api/files/content/c.bin")
    assert code == b"201"
    out = tmp_path / "out.bin"
    await run("-o", str(out), f"{server.url}/api/files/content/c.bin")
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(data).digest()
    part = await run("-r", "500000-500099", f"{server.url}/api/files/content/c.bin")
    assert part == data[500000:500100]
    head = (await run("-D", "-", "-o", "/dev/null", f"{server.url}/api/files/content/c.bin")).decode()
    etag = next(l.split(":", 1)[1].strip() for l in head.splitlines() if l.lower().startswith("etag:"))
    code = await run(
        "-o", "/dev/null", "-w", "%{http_code}", "-H", f"If-None-Match: {etag}", f"{server.url}/api/files/content/c.bin"
    )
    assert code == b"304"
