"""WebDAV at /dav/ over a real socket: litmus (the whole suite), rclone round trip, quota 507, auth."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re

import httpx

from suite.testing import require_tool

LITMUS_EXPECTED = 104  # basic 16 + copymove 13 + props 30 + locks 41 + http 4; fail on any regression


async def _run(*args, cwd=None, timeout=300):
    p = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(p.communicate(), timeout)
    return p.returncode, out.decode(errors="replace")


async def test_litmus_all_pass(server, tmp_path):
    litmus = require_tool("litmus")
    code, out = await _run(litmus, f"{server.url}/dav/", "alice@example.test", server.alice, cwd=tmp_path)
    passed = sum(int(m.group(2)) for m in re.finditer(r"of (\d+) tests run: (\d+) passed", out))
    suites = re.findall(r"summary for `(\w+)'", out)
    assert suites == ["basic", "copymove", "props", "locks", "http"], out[-3000:]
    assert passed == LITMUS_EXPECTED, out[-3000:]
    assert code == 0


async def test_rclone_copy_round_trip(server, tmp_path):
    rclone = require_tool("rclone")
    _, obscured = await _run(rclone, "obscure", server.alice)
    src = tmp_path / "src"
    (src / "deep" / "er").mkdir(parents=True)
    files = {"a.bin": os.urandom(3_000_000), "deep/b.txt": "grüße\n".encode(), "deep/er/empty": b""}
    for name, data in files.items():
        (src / name).write_bytes(data)
    remote = [
        f"--webdav-url={server.url}/dav/",
        "--webdav-vendor=other",
        "--webdav-user=alice@example.test",
        f"--webdav-pass={obscured.strip()}",
        "--config=/dev/null",
    ]
    code, out = await _run(rclone, "copy", str(src), ":webdav:backup", *remote)
    assert code == 0, out
    tree = server.files.tree
    node = await tree.resolve(server.alice_id, "/backup/deep/b.txt")
    assert node is not None and node.size == len(files["deep/b.txt"])
    back = tmp_path / "back"
    code, out = await _run(rclone, "copy", ":webdav:backup", str(back), *remote)
    assert code == 0, out
    for name, data in files.items():
        assert hashlib.sha256((back / name).read_bytes()).digest() == hashlib.sha256(data).digest(), name
    code, out = await _run(rclone, "check", str(src), ":webdav:backup", *remote)
    assert code == 0, out


async def test_dav_auth_quota_and_isolation(server):
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as anon:
        r = await anon.request("PROPFIND", "/dav/", headers={"Depth": "0"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        # the account password is not enough: DAV needs an app password of scope dav
        r = await anon.request(
            "PROPFIND", "/dav/", headers={"Depth": "0"}, auth=("alice@example.test", "correct horse battery")
        )
        assert r.status_code == 401
    await server.ctx.accounts.set_quota("alice@example.test", 1000)
    async with server.client() as c, server.client("bob") as b:
        assert (await c.put("/dav/small.txt", content=b"x" * 900)).status_code == 201
        r = await c.put("/dav/big.txt", content=b"y" * 200)
        assert r.status_code == 507  # RFC 4918 §11.5, from Content-Length

        async def chunked():
            yield b"z" * 200

        r = await c.put("/dav/big2.txt", content=chunked())
        assert r.status_code == 507  # when stored
        r = await c.request("PROPFIND", "/dav/", headers={"Depth": "1"})
        assert r.status_code == 207 and b"big" not in r.content and b"small.txt" in r.content
        assert b"quota-available-bytes>100<" in r.content.replace(b"ns0:", b"")
        # bob sees his own (empty) root, not alice's file
        r = await b.request("PROPFIND", "/dav/", headers={"Depth": "1"})
        assert r.status_code == 207 and b"small.txt" not in r.content
        assert (await b.get("/dav/small.txt")).status_code == 404
        for bad in ("/dav/..%2f..%2fetc%2fpasswd", "/dav/%2e%2e/%2e%2e/etc/passwd"):
            r = await b.get(bad)
            assert r.status_code in (400, 403, 404) and b"root:" not in r.content
        # the same tree as the HTTP API
        r = await c.get("/api/files/content/small.txt")
        assert r.content == b"x" * 900
        # a dead property survives MOVE (stored by node)
        body = (
            b'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:suite:test"><D:set><D:prop>'
            b"<Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>"
        )
        assert (await c.request("PROPPATCH", "/dav/small.txt", content=body)).status_code == 207
        r = await c.request("MOVE", "/dav/small.txt", headers={"Destination": f"{server.url}/dav/moved.txt"})
        assert r.status_code == 201
        r = await c.request("PROPFIND", "/dav/moved.txt", headers={"Depth": "0"})
        assert b"blue" in r.content
