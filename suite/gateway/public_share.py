"""The public page of a share link for people without an account: ``/p/<token>`` (the web app's second
bundle, web/src/share/) and the small JSON/bytes API it reads under ``/api/public/shares/<token>``.

The page shows a file (preview + "Download"), a folder (browse + ZIP) or a drop link (upload with
progress), and decrypts encrypted links in the browser (docs/ENCRYPTED-LINKS.md): the key is in the
URL's fragment, which browsers never send; this module only ever handles ciphertext. A file is an
encrypted link's ciphertext when its media type is ``application/vnd.suite.e2ee`` (set by the
uploading browser through tus metadata).

Downloads and drops still go through ``/s/<token>`` (counted uses, ZIP, password forms); this module
adds what a script-driven page needs: the link's facts without counting a use, a folder's listing,
one file of a shared folder, an uncounted inline preview when the link has no use limit, and the
first bytes of an encrypted file (its header). Passwords come as HTTP Basic, as on ``/s/``; a missing
one is a 401 JSON answer *without* ``WWW-Authenticate`` (the page asks, not the browser).
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from suite.files.e2ee_format import FIXED_LEN, MAX_META, MEDIA_TYPE
from suite.files.names import BadName, split_path
from suite.files.shares import ShareError
from suite.files.tree import Node
from suite.gateway import auth, webapp
from suite.gateway.errors import ApiError
from suite.gateway.files.transfer import send_node

#: The page's own policy: our bundle only, media and images from our origin or the page's blobs; pdf.js's
#: worker from our origin (a PDF preview).
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    "connect-src 'self'; worker-src 'self'; frame-src 'self' blob:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
HEAD_BYTES = FIXED_LEN + MAX_META + 16


def _password(request: Request) -> str | None:
    import base64
    import binascii

    h = request.headers.get("authorization", "")
    if h[:6].lower() != "basic ":
        return None
    try:
        return base64.b64decode(h[6:], validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "malformed Authorization header") from None


_SHARE_CODES = {401: "password_required", 403: "wrong_password", 404: "not_found", 410: "gone", 429: "rate_limited"}


async def _open(request: Request):
    files = request.app.state.files
    try:
        return await files.shares.open(
            request.path_params["token"], password=_password(request), ip=auth.client_ip(request)
        )
    except ShareError as exc:
        headers = {"Retry-After": "900"} if exc.status == 429 else None
        raise ApiError(exc.status, str(exc), code=_SHARE_CODES.get(exc.status), headers=headers) from None


async def _inside(request: Request, share, node: Node, sub: str) -> Node:
    """The node at ``sub`` under the shared folder (names validated: no way out of the share)."""
    if not sub.strip("/"):
        return node
    if not node.is_dir:
        raise ApiError(404, "no such file in this share")
    try:
        parts = split_path(sub)
        tree = request.app.state.files.tree
        base = await tree.path_of(share.account_id, node.id)
        n = await tree.resolve(share.account_id, base.rstrip("/") + "/" + "/".join(parts))
    except BadName as exc:
        raise ApiError(400, str(exc), code="bad_name") from None
    if n is None:
        raise ApiError(404, "no such file in this share")
    return n


def _node(n: Node, path: str) -> dict:
    return {
        "name": n.name,
        "path": path,
        "type": "folder" if n.is_dir else "file",
        "size": n.size,
        "media_type": n.media_type,
        "modified": n.modified_at,
    }


async def page(request: Request) -> Response:
    if "text/html" not in request.headers.get("accept", ""):
        # The link in a mail or the CLI's output fetched by curl -L, wget or a script: they want the
        # bytes, which live at /s/<token> (a browser always sends text/html when it navigates).
        token = quote(request.path_params["token"], safe="")
        return RedirectResponse(f"/s/{token}", status_code=307, headers={"Cache-Control": "no-store"})
    shell = webapp.DIST / "share.html"
    if not shell.is_file():
        return HTMLResponse(webapp.NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    return FileResponse(shell, media_type="text/html", headers=PAGE_HEADERS)


async def service_worker(request: Request) -> Response:
    """The page's Service Worker (web/src/share/sw.js, hashed by the build) at a fixed URL whose scope
    covers /p/: it streams decrypted downloads (see web/src/share/decrypt-save.js)."""
    found = sorted((webapp.DIST / "assets").glob("share-sw-*.js"))
    if not found:
        raise ApiError(404, "the web app is not built (make web)")
    return FileResponse(found[-1], media_type="text/javascript", headers={"Cache-Control": "no-cache"})


async def info(request: Request) -> JSONResponse:
    share, node = await _open(request)
    sub = request.query_params.get("path", "")
    here = await _inside(request, share, node, sub)
    body: dict = {
        "kind": share.kind,
        "name": node.name or "Shared folder",
        "type": "folder" if node.is_dir else "file",
        "size": node.size,
        "media_type": node.media_type,
        "encrypted": (not node.is_dir) and node.media_type == MEDIA_TYPE,
        "expires": share.expires_at,
        "limited": share.max_uses is not None,
        "password": share.has_password,
    }
    if share.kind == "download" and here.is_dir:
        prefix = "/".join(split_path(sub)) if sub.strip("/") else ""
        children = await request.app.state.files.tree.list(share.account_id, here.id)
        body["path"] = prefix
        body["children"] = [_node(c, f"{prefix}/{c.name}".lstrip("/")) for c in children]
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def head(request: Request) -> Response:
    """The first bytes of an encrypted file (its header and encrypted metadata); not a counted use."""
    share, node = await _open(request)
    if share.kind != "download" or node.is_dir or node.media_type != MEDIA_TYPE:
        raise ApiError(404, "this link is not an encrypted file")
    n = min(node.size, HEAD_BYTES)
    out = bytearray()
    async for chunk in request.app.state.ctx.blobs.read(node.blob, 0, n):
        out += chunk
    return Response(bytes(out), media_type="application/octet-stream", headers={"Cache-Control": "no-store"})


async def content(request: Request) -> Response:
    """A file of a shared folder (``path`` under it), or the shared file itself. ``?preview=1``: inline
    and not counted, only for links without a use limit; otherwise a counted download."""
    share, node = await _open(request)
    if share.kind != "download":
        raise ApiError(403, "a drop link shows nothing")
    n = await _inside(request, share, node, request.path_params.get("path", ""))
    if n.is_dir:
        raise ApiError(409, "a folder downloads as a ZIP from the link itself")
    preview = request.query_params.get("preview") == "1"
    if preview:
        if share.max_uses is not None:
            raise ApiError(403, "this link counts downloads: no previews")
        # a PDF is drawn by pdf.js from its fetched bytes: sent as an attachment, never a document here
        return await send_node(request, n, inline=n.media_type != "application/pdf")
    files = request.app.state.files
    ip = auth.client_ip(request)

    async def count() -> None:
        await files.shares.use(share, ip, "download", n.name)

    try:
        return await send_node(request, n, on_body=count)
    except ShareError as exc:
        raise ApiError(exc.status, str(exc), code=_SHARE_CODES.get(exc.status)) from None


def routes() -> list:
    return [
        Route("/p/sw.js", service_worker),  # before /p/{token}
        Route("/p/{token}", page, methods=["GET", "HEAD"]),
        Route("/api/public/shares/{token}", info),
        Route("/api/public/shares/{token}/head", head),
        Route("/api/public/shares/{token}/content", content, methods=["GET", "HEAD"]),
        Route("/api/public/shares/{token}/content/{path:path}", content, methods=["GET", "HEAD"]),
    ]
