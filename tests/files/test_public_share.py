"""The public share page's API (suite.gateway.public_share) and the owner's folder ZIP
(suite.gateway.files_web) over HTTP with httpx, on every store combination of the files suite."""

from __future__ import annotations

import base64
import io
import zipfile

import httpx

from suite.files import e2ee_format as fmt
from suite.gateway import webapp


async def _share(c, **body):
    r = await c.post("/api/files/shares", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _basic(pw: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{pw}".encode()).decode()}


async def test_folder_info_listing_files_and_previews(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.post("/api/files/mkdir", json={"path": "/album/sub", "parents": True})
        await c.put("/api/files/content/album/a <b>.txt", content=b"alpha")
        await c.put("/api/files/content/album/sub/two.txt", content=b"two")
        await c.put(
            "/api/files/content/album/r.pdf", content=b"%PDF-1.4 x", headers={"Content-Type": "application/pdf"}
        )
        await c.put("/api/files/content/secret.txt", content=b"not shared")
        s = await _share(c, path="/album")
        api = f"/api/public/shares/{s['token']}"
        info = (await anon.get(api)).json()
        assert info["kind"] == "download" and info["type"] == "folder" and not info["encrypted"]
        assert sorted((x["name"], x["type"], x["path"]) for x in info["children"]) == [
            ("a <b>.txt", "file", "a <b>.txt"),
            ("r.pdf", "file", "r.pdf"),
            ("sub", "folder", "sub"),
        ]
        sub = (await anon.get(api, params={"path": "sub"})).json()
        assert [x["path"] for x in sub["children"]] == ["sub/two.txt"]
        # nothing outside the shared folder
        assert (await anon.get(api, params={"path": "../secret.txt"})).status_code == 400
        assert (await anon.get(f"{api}/content/..%2Fsecret.txt")).status_code in (400, 404)
        assert (await anon.get(f"{api}/content/nope.txt")).status_code == 404
        # listing and previews are not uses; a download of one file is
        r = await anon.get(f"{api}/content/sub/two.txt", params={"preview": "1"})
        assert r.status_code == 200 and r.content == b"two" and r.headers["content-disposition"].startswith("inline")
        assert "sandbox" in r.headers["content-security-policy"]
        # a PDF's preview is drawn by pdf.js in the page from these bytes: an attachment, never a document
        r = await anon.get(f"{api}/content/r.pdf", params={"preview": "1"})
        assert r.status_code == 200 and r.content == b"%PDF-1.4 x"
        assert r.headers["content-disposition"].startswith("attachment") and r.headers["x-frame-options"] == "DENY"
        assert "sandbox" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
        assert (await c.get("/api/files/shares")).json()["shares"][0]["uses"] == 0
        r = await anon.get(f"{api}/content/a%20%3Cb%3E.txt")
        assert (
            r.status_code == 200 and r.content == b"alpha" and r.headers["content-disposition"].startswith("attachment")
        )
        assert (await c.get("/api/files/shares")).json()["shares"][0]["uses"] == 1
        # a folder is not content
        assert (await anon.get(f"{api}/content/sub")).status_code == 409


async def test_limits_passwords_drop_and_unknown(server):
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        await c.put("/api/files/content/p.txt", content=b"pw")
        await c.post("/api/files/mkdir", json={"path": "/inbox"})
        s = await _share(c, path="/p.txt", password="open sesame", max_uses=1)
        api = f"/api/public/shares/{s['token']}"
        r = await anon.get(api)
        assert r.status_code == 401 and r.json()["error"] == "password_required"
        assert "www-authenticate" not in r.headers  # the page asks, not the browser
        assert (await anon.get(api, headers=_basic("wrong"))).status_code == 403
        info = (await anon.get(api, headers=_basic("open sesame"))).json()
        assert info["password"] and info["limited"] and info["type"] == "file"
        # a link that counts downloads gives no uncounted previews
        r = await anon.get(f"{api}/content", params={"preview": "1"}, headers=_basic("open sesame"))
        assert r.status_code == 403
        assert (await anon.get(f"{api}/content", headers=_basic("open sesame"))).content == b"pw"
        assert (await anon.get(api, headers=_basic("open sesame"))).status_code == 410
        d = await _share(c, path="/inbox", kind="drop")
        info = (await anon.get(f"/api/public/shares/{d['token']}")).json()
        assert info["kind"] == "drop" and "children" not in info
        assert (await anon.get(f"/api/public/shares/{d['token']}/content")).status_code == 403
        assert (await anon.get("/api/public/shares/" + "x" * 32)).status_code == 404
        # the head of a file that is not an encrypted link
        assert (await anon.get(f"/api/public/shares/{d['token']}/head")).status_code == 404


async def test_encrypted_file_head_and_ciphertext(server):
    key = bytes(range(32))
    plain = b"top secret " * 10_000
    blob = fmt.encrypt(plain, key, "plan <x>.pdf", "application/pdf")
    async with server.client() as c, httpx.AsyncClient(base_url=server.url) as anon:
        r = await c.put("/api/files/content/plan.e2ee", content=blob, headers={"Content-Type": fmt.MEDIA_TYPE})
        assert r.status_code == 201
        s = await _share(c, path="/plan.e2ee")
        api = f"/api/public/shares/{s['token']}"
        info = (await anon.get(api)).json()
        assert info["encrypted"] and info["size"] == len(blob)
        head = (await anon.get(f"{api}/head")).content
        assert blob.startswith(head) and len(head) >= fmt.FIXED_LEN + 256 + 16
        h, _ = fmt.read_header(io.BytesIO(head), key)
        assert h.meta == {"name": "plan <x>.pdf", "type": "application/pdf", "size": len(plain)}
        assert (await c.get("/api/files/shares")).json()["shares"][0]["uses"] == 0
        r = await anon.get(f"/s/{s['token']}")
        assert fmt.decrypt(r.content, key)[1] == plain


async def test_owner_folder_zip_and_page(server):
    async with server.client() as c, server.client("bob") as bob, httpx.AsyncClient(base_url=server.url) as anon:
        await c.post("/api/files/mkdir", json={"path": "/docs/inner", "parents": True})
        await c.put("/api/files/content/docs/inner/x.txt", content=b"x")
        r = await c.get("/api/files/zip/docs")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        assert 'filename="docs.zip"' in r.headers["content-disposition"]
        assert zipfile.ZipFile(io.BytesIO(r.content)).read("inner/x.txt") == b"x"
        assert (await c.get("/api/files/zip/docs/inner/x.txt")).status_code == 409
        assert (await bob.get("/api/files/zip/docs")).status_code == 404
        assert (await anon.get("/api/files/zip/docs")).status_code == 401
        # search by name, anywhere in the tree: case-insensitive, % and _ literal, trash and others' left out
        await c.put("/api/files/content/docs/Report_100%.TXT", content=b"r")
        await c.put("/api/files/content/docs/inner/report-old.txt", content=b"o")
        await c.post("/api/files/mkdir", json={"path": "/old/deep", "parents": True})
        await c.put("/api/files/content/old/deep/report-gone.txt", content=b"g")
        await c.post("/api/files/delete", json={"path": "/old"})
        await bob.put("/api/files/content/report-bob.txt", content=b"b")
        found = (await c.get("/api/files/search", params={"q": "REPORT"})).json()["results"]
        assert [x["path"] for x in found] == ["/docs/Report_100%.TXT", "/docs/inner/report-old.txt"]
        assert [x["path"] for x in (await c.get("/api/files/search", params={"q": "_100%"})).json()["results"]] == [
            "/docs/Report_100%.TXT"
        ]
        assert (await c.get("/api/files/search", params={"q": "report_old"})).json()[
            "results"
        ] == []  # "_" is no wildcard
        assert (await c.get("/api/files/search", params={"q": ""})).json()["results"] == []
        assert (await c.get("/api/files/search", params={"q": "x" * 300})).status_code == 400
        # no route serves an owner's PDF to be framed (the preview fetches the attachment; pdf.js draws it)
        await c.put("/api/files/content/docs/a.pdf", content=b"%PDF-1.4 x", headers={"Content-Type": "application/pdf"})
        assert (await c.get("/api/files/pdf/docs/a.pdf")).status_code == 404
        r = await c.get("/api/files/content/docs/a.pdf")
        assert (
            r.headers["content-disposition"].startswith("attachment")
            and r.headers["x-content-type-options"] == "nosniff"
        )
        page = await anon.get("/p/whatever", headers={"Accept": "text/html"})
        if (webapp.DIST / "share.html").is_file():
            assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
            assert "unsafe-inline" not in page.headers["content-security-policy"]
            assert "worker-src 'self'" in page.headers["content-security-policy"]  # pdf.js's worker
            assert (
                page.headers["referrer-policy"] == "no-referrer" and page.headers["x-content-type-options"] == "nosniff"
            )
            assert "<script" in page.text and "<script>" not in page.text  # the bundle, no inline script
            sw = await anon.get("/p/sw.js")  # the page's Service Worker, at a URL whose scope covers /p/
            assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
            assert "_dl" in sw.text and "respondWith" in sw.text
        else:
            assert page.status_code == 503
