"""Share links over a real socket: download, folder zip, password, expiry, limits, revoke, drop, CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile

import httpx
import pytest
from sqlalchemy import update

from suite.files.models import Share
from suite.files.shares import MAX_BAD_PASSWORDS_PER_IP
from suite.testing import serve_env


async def _share(c, **body):
    r = await c.post("/api/files/shares", json=body)
    assert r.status_code == 201, r.text
    j = r.json()
    assert len(j["token"]) >= 32 and j["url"].endswith("/p/" + j["token"])
    return j


async def test_file_share_download_and_limit(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.put("/api/files/content/report.pdf", content=b"%PDF-1.7 data")
        s = await _share(c, path="/report.pdf", max_uses=2)
        r = await anon.get(f"/s/{s['token']}")
        assert r.status_code == 200 and r.content == b"%PDF-1.7 data"
        assert "filename*=UTF-8''report.pdf" in r.headers["content-disposition"]
        r = await anon.get(f"/s/{s['token']}", headers={"Range": "bytes=5-"})  # a resumed download: not a use
        assert r.status_code == 206 and r.content == b"1.7 data"
        assert (await anon.get(f"/s/{s['token']}")).status_code == 200
        r = await anon.get(f"/s/{s['token']}")
        assert r.status_code == 410  # limit reached
        log = (await c.get(f"/api/files/shares/{s['id']}")).json()["log"]
        assert [e["action"] for e in log].count("download") == 2 and log[0]["action"] == "denied-limit"
        assert (await c.get("/api/files/shares")).json()["shares"][0]["uses"] == 2


async def test_unknown_revoked_expired(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.put("/api/files/content/a.txt", content=b"a")
        assert (await anon.get("/s/" + "x" * 32)).status_code == 404
        s = await _share(c, path="/a.txt")
        assert (await c.delete(f"/api/files/shares/{s['id']}")).status_code == 200
        assert (await anon.get(f"/s/{s['token']}")).status_code == 404  # revoked
        s = await _share(c, path="/a.txt", expires_in=3600)
        assert (await anon.get(f"/s/{s['token']}")).status_code == 200
        async with server.ctx.sessions.begin() as sess:
            await sess.execute(update(Share).where(Share.id == s["id"]).values(expires_at=time.time() - 1))
        assert (await anon.get(f"/s/{s['token']}")).status_code == 410  # expired
        # another account cannot revoke or read the log
        async with server.client("bob") as b:
            assert (await b.get(f"/api/files/shares/{s['id']}")).status_code == 404
            assert (await b.delete(f"/api/files/shares/{s['id']}")).status_code == 404


async def test_password_rules_and_rate_limit(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.put("/api/files/content/p.txt", content=b"secret")
        s = await _share(c, path="/p.txt", password="open sesame")
        url = f"/s/{s['token']}"
        r = await anon.get(url)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
        r = await anon.get(url + "?download", headers={"Accept": "text/html"})
        assert r.status_code == 401 and 'type="password"' in r.text
        assert (await anon.get(url, auth=("", "wrong"))).status_code == 403
        assert (await anon.post(url, data={"password": "wrong"})).status_code == 403
        r = await anon.post(url, data={"password": "open sesame"})
        assert r.status_code == 200 and r.content == b"secret"
        assert (await anon.get(url, auth=("x", "open sesame"))).content == b"secret"
        for _ in range(MAX_BAD_PASSWORDS_PER_IP - 2):
            assert (await anon.get(url, auth=("", "wrong"))).status_code == 403
        r = await anon.get(url, auth=("", "open sesame"))  # even the right one, once locked
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


async def test_folder_share_streams_zip(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.post("/api/files/mkdir", json={"path": "/album/sub", "parents": True})
        big = os.urandom(700_000)
        await c.put("/api/files/content/album/one.jpg", content=big)
        await c.put("/api/files/content/album/sub/two.txt", content="zwei ü".encode())
        await c.post("/api/files/mkdir", json={"path": "/album/empty"})
        s = await _share(c, path="/album")
        r = await anon.get(f"/s/{s['token']}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        z = zipfile.ZipFile(io.BytesIO(r.content))
        assert z.testzip() is None
        assert sorted(z.namelist()) == ["empty/", "one.jpg", "sub/two.txt"]
        assert z.read("one.jpg") == big and z.read("sub/two.txt") == "zwei ü".encode()


async def test_file_drop(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.post("/api/files/mkdir", json={"path": "/inbox"})
        await c.put("/api/files/content/inbox/cv.pdf", content=b"mine")
        s = await _share(c, path="/inbox", kind="drop", max_uses=2)
        url = f"/s/{s['token']}"
        r = await anon.get(url)
        assert r.status_code == 200 and 'type="file"' in r.text and "cv.pdf" not in r.text
        r = await anon.post(url, files={"file": ("cv.pdf", b"theirs", "application/pdf")})
        assert r.status_code == 201 and r.json()["received"] == ["cv (2).pdf"]
        assert (await c.get("/api/files/content/inbox/cv.pdf")).content == b"mine"  # never overwritten
        assert (await c.get("/api/files/content/inbox/cv (2).pdf")).content == b"theirs"
        assert (await anon.post(url, files={"file": ("b", b"2")})).status_code == 201
        assert (await anon.post(url, files={"file": ("c", b"3")})).status_code == 410
        # a share of a file cannot be a drop; traversal in a dropped name is refused
        s2 = await _share(c, path="/inbox", kind="drop")
        r = await anon.post(f"/s/{s2['token']}", files={"file": ("../../evil", b"x")})
        assert r.status_code == 400
        r = await c.post("/api/files/shares", json={"path": "/inbox/cv.pdf", "kind": "drop"})
        assert r.status_code == 400


async def test_drop_counts_against_owner_quota(server):
    await server.ctx.accounts.set_quota("alice@example.test", 100)
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.post("/api/files/mkdir", json={"path": "/inbox"})
        s = await _share(c, path="/inbox", kind="drop")
        r = await anon.post(f"/s/{s['token']}", files={"file": ("big", b"x" * 200)})
        assert r.status_code == 413


@pytest.mark.parametrize("db_url", ["sqlite-disk"], indirect=True)  # the CLI round trip runs once, on SQLite
def test_cli_share_create_list_revoke(tmp_path, db_url):
    env = serve_env()
    env.update(
        SUITE_DATA_DIR=str(tmp_path / "data"),
        SUITE_DATABASE_URL=db_url,
        SUITE_BUS_BACKEND="memory",
        SUITE_PUBLIC_URL="https://files.example.test",
    )

    def suite(*args, stdin=""):
        return subprocess.run(
            [sys.executable, "-m", "suite.cli", *args],
            env=env,
            input=stdin,
            text=True,
            capture_output=True,
            timeout=120,
            check=False,
        )

    assert suite("init").returncode == 0
    assert suite("domain", "add", "example.test").returncode == 0
    assert (
        suite("user", "add", "carol@example.test", "--password-stdin", stdin="correct horse battery\n").returncode == 0
    )
    import asyncio

    from suite.config import Settings
    from suite.context import open_context
    from suite.files.tree import FileTree

    async def put():
        ctx = await open_context(Settings(data_dir=tmp_path / "data", database_url=db_url, bus_backend="memory"))
        acct = await ctx.accounts.get("carol@example.test")
        tree = FileTree(ctx)
        await tree.write(acct.id, (await tree.root(acct.id)).id, "doc.txt", b"doc")
        await ctx.close()

    asyncio.run(put())
    r = suite(
        "share",
        "create",
        "--user",
        "carol@example.test",
        "/doc.txt",
        "--expires",
        "7d",
        "--max-downloads",
        "3",
        "--password-stdin",
        stdin="pw for the link\n",
    )
    assert r.returncode == 0, r.stderr
    url = r.stdout.strip()
    assert url.startswith("https://files.example.test/p/") and len(url.rsplit("/", 1)[1]) >= 32
    r = suite("share", "list", "--user", "carol@example.test")
    assert r.returncode == 0 and "/doc.txt" in r.stdout and "active" in r.stdout and "password" in r.stdout
    r = suite("share", "create", "--user", "carol@example.test", "/nope.txt")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no /nope.txt" in r.stderr
    assert suite("share", "revoke", url.rsplit("/", 1)[1]).returncode == 0
    assert "revoked" in suite("share", "list", "--user", "carol@example.test").stdout
    r = suite("share", "revoke", "not-a-token")
    assert r.returncode == 1 and r.stderr.startswith("suite: ")


async def test_links_point_at_the_page_and_each_path_sends_clients_to_the_other(server):
    """The link people get is the page /p/<token>; /s/<token> stays the direct download. A browser
    (Accept: text/html) opening /s/ is sent to the page unless it asks for ?download; a script or
    curl -L following a /p/ link lands on the bytes."""
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.put("/api/files/content/notes.txt", content=b"plain words")
        s = await _share(c, path="/notes.txt")
        token = s["token"]
        browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
        r = await anon.get(f"/s/{token}", headers=browser)
        assert r.status_code == 303 and r.headers["location"] == f"/p/{token}"
        r = await anon.head(f"/s/{token}", headers=browser)
        assert r.status_code == 303 and r.headers["location"] == f"/p/{token}"
        r = await anon.get(f"/s/{token}?download", headers=browser)
        assert r.status_code == 200 and r.content == b"plain words"
        r = await anon.get(f"/s/{token}")  # curl, scripts
        assert r.status_code == 200 and r.content == b"plain words"
        r = await anon.get(f"/p/{token}")
        assert r.status_code == 307 and r.headers["location"] == f"/s/{token}"
        r = await anon.get(s["url"].replace(server.url, ""), follow_redirects=True)
        assert r.status_code == 200 and r.content == b"plain words"
        r = await anon.get(f"/p/{token}", headers=browser)
        assert r.status_code in (200, 503) and r.headers["content-type"].startswith("text/html")
        # the page's own download (a form POST) is never redirected
        r = await anon.post(f"/s/{token}", headers=browser)
        assert r.status_code == 200 and r.content == b"plain words"
        # 3 downloads counted: ?download, the plain GET, the followed link (+ the POST)
        assert (await c.get("/api/files/shares")).json()["shares"][0]["uses"] == 4
