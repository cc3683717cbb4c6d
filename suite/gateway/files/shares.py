"""Direct downloads of share links (/s/<token>; browsers are sent to the page /p/<token>): a download link (a file, or a folder as a zip), a password
form or HTTP Basic for protected links, and the file drop (upload only, the folder stays unseen).
HTML for browsers, JSON errors for other clients; pages under a strict CSP, never framed."""

from __future__ import annotations

import html
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from suite.files import httpcore
from suite.files.shares import PasswordRequired, ShareError, ShareInfo, folder_size, zip_folder
from suite.files.tree import Node
from suite.gateway import auth
from suite.gateway.files.common import files_of, read_form, store_form_files
from suite.gateway.files.transfer import send_node

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width"><meta name="referrer" content="no-referrer"></head>
<body style="font-family:sans-serif;max-width:36em;margin:3em auto"><h1>{title}</h1>{body}</body></html>"""
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _page(title: str, body: str, status: int = 200, headers: dict | None = None) -> HTMLResponse:
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), body=body),
        status_code=status,
        headers={**_PAGE_HEADERS, **(headers or {})},
    )


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _basic_password(request: Request) -> str | None:
    import base64
    import binascii

    h = request.headers.get("authorization", "")
    if h[:6].lower() != "basic ":
        return None
    try:
        return base64.b64decode(h[6:], validate=True).decode("utf-8").partition(":")[2]
    except (binascii.Error, UnicodeDecodeError):
        return None


def _share_error(request: Request, exc: ShareError) -> Response:
    headers = {}
    if exc.status == 429:
        headers["Retry-After"] = "900"
    if isinstance(exc, PasswordRequired) or exc.status == 403:
        if _wants_html(request):
            msg = "" if isinstance(exc, PasswordRequired) else "<p>Wrong password.</p>"
            form = (
                f'{msg}<form method="post"><label>Password <input type="password" name="password" autofocus>'
                "</label> <button>Open</button></form>"
            )
            return _page("Password needed", form, exc.status, headers)
        headers["WWW-Authenticate"] = 'Basic realm="share", charset="UTF-8"'
    if _wants_html(request):
        return _page(
            {404: "Not found", 410: "Link no longer available"}.get(exc.status, "Not available"),
            f"<p>{html.escape(str(exc))}</p>",
            exc.status,
            headers,
        )
    return JSONResponse(
        {
            "error": {
                404: "not_found",
                410: "gone",
                401: "password_required",
                403: "wrong_password",
                429: "rate_limited",
            }.get(exc.status, "error"),
            "message": str(exc),
        },
        status_code=exc.status,
        headers=headers,
    )


def wants_page(request: Request) -> bool:
    """A browser navigating to a link (``Accept: text/html``) gets the web app's page; ``?download``
    asks for the bytes whatever the Accept header says. Scripts and curl send ``*/*``."""
    return _wants_html(request) and "download" not in request.query_params


async def share_page(request: Request) -> Response:
    files = files_of(request)
    token = request.path_params["token"]
    if request.method in ("GET", "HEAD") and wants_page(request):
        # Old links and hand-typed URLs: the page people should see is /p/<token> (preview, password
        # prompt, folder browser, drop with progress). 303: the page is another resource.
        return RedirectResponse(f"/p/{quote(token, safe='')}", status_code=303, headers={"Cache-Control": "no-store"})
    ip = auth.client_ip(request)
    password = _basic_password(request)
    form = None
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            form = await read_form(request, files)
        elif ctype.startswith("application/x-www-form-urlencoded"):
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > 4096:
                return _share_error(request, ShareError("send the password form (at most 4 KiB)"))
            form = await request.form(max_files=0, max_fields=5)
        if form is not None and isinstance(pw := form.get("password"), str):
            password = pw
    try:
        share, node = await files.shares.open(token, password=password, ip=ip)
    except ShareError as exc:
        if form is not None:
            await form.close()
        return _share_error(request, exc)
    if share.kind == "drop":
        return await _drop(request, share, node, form, password)
    if form is not None:
        await form.close()

    async def count() -> None:
        await files.shares.use(share, ip, "download", node.name)

    try:
        if not node.is_dir:
            return await send_node(request, node, on_body=count)
        if request.method == "HEAD":
            return Response(headers={"Content-Type": "application/zip"})
        await count()
    except ShareError as exc:
        return _share_error(request, exc)
    stream = zip_folder(files.tree, share.account_id, node)
    return StreamingResponse(
        stream,
        media_type="application/zip",
        headers={
            "Content-Disposition": httpcore.content_disposition(f"{node.name}.zip"),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
            "X-Uncompressed-Size": str(await folder_size(files.tree, share.account_id, node)),
        },
    )


async def _drop(request: Request, share: ShareInfo, folder: Node, form, password: str | None) -> Response:
    files = files_of(request)
    if (
        request.method in ("GET", "HEAD")
        or form is None
        or not any(not isinstance(v, str) for _, v in form.multi_items())
    ):
        if form is not None:
            await form.close()
        pw = f'<input type="hidden" name="password" value="{html.escape(password)}">' if password else ""
        body = (
            f"<p>Upload files into “{html.escape(folder.name or 'shared folder')}”. You cannot see what is there.</p>"
            f'<form method="post" enctype="multipart/form-data">{pw}<input type="file" name="file" multiple> '
            "<button>Upload</button></form>"
        )
        return _page("File drop", body)
    ip = auth.client_ip(request)

    async def each(name: str) -> None:
        await files.shares.use(share, ip, "upload", name)

    try:
        nodes = await store_form_files(
            request, share.account_id, folder.id, files, unique_names=True, form=form, on_each=each
        )
    except ShareError as exc:
        return _share_error(request, exc)
    if _wants_html(request):
        return _page("Thank you", f"<p>{len(nodes)} file(s) received.</p>", 201)
    return JSONResponse({"received": [n.name for n in nodes]}, status_code=201)
