"""HTTP edge of the files service: the JSON API (/api/files/...), tus 1.0 uploads (/api/tus/),
public share pages (/s/<token>) and the WebDAV mount (/dav/).

Auth: the web session cookie (writes need X-CSRF-Token) or HTTP Basic with an app password of
scope "dav". Paths in URLs are "/"-separated names under the caller's root; every segment is
validated (no "..", ".", control characters), so no URL reaches another account or the disk.
Errors are JSON ``{"error", "message"}``; a full quota is 413 here (507 on WebDAV).
"""

from __future__ import annotations

import asyncio
import html
import mmap
import os
import secrets
import time
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from suite.files import httpcore
from suite.files.names import BadName, check_name, split_path
from suite.files.service import Files
from suite.files.shares import (
    PasswordRequired,
    ShareError,
    ShareInfo,
    folder_size,
    zip_folder,
)
from suite.files.tree import (
    Conflict,
    FilesError,
    Node,
    NotFound,
    QuotaExceeded,
    TooLarge,
)
from suite.files.tus import (
    BadRequest,
    ChecksumMismatch,
    Gone,
    OffsetMismatch,
    parse_checksum,
    parse_metadata,
)
from suite.gateway import auth
from suite.gateway.errors import ApiError

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"


def _files(request: Request) -> Files:
    return request.app.state.files


def _api_error(exc: FilesError) -> ApiError:
    if isinstance(exc, BadName):
        return ApiError(400, str(exc), code="bad_name")
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, Conflict):
        return ApiError(409, str(exc))
    if isinstance(exc, QuotaExceeded):
        return ApiError(413, str(exc), code="quota_exceeded")
    if isinstance(exc, TooLarge):
        return ApiError(413, str(exc))
    if isinstance(exc, ShareError):
        return ApiError(exc.status, str(exc))
    return ApiError(400, str(exc))


def node_json(n: Node, path: str | None = None) -> dict:
    d = {
        "id": n.id,
        "name": n.name,
        "type": "folder" if n.is_dir else "file",
        "size": n.size,
        "media_type": n.media_type,
        "etag": f'"{n.etag}"',
        "created": n.created_at,
        "modified": n.modified_at,
    }
    if path is not None:
        d["path"] = path
    if n.trashed_at is not None:
        d["trashed"] = n.trashed_at
    return d


async def _caller(request: Request):
    return await auth.require(request, basic_scope="dav")


async def _resolve(request: Request, account_id: int, path: str) -> Node:
    try:
        n = await _files(request).tree.resolve(account_id, path)
    except BadName as exc:
        raise _api_error(exc) from None
    if n is None:
        raise ApiError(404, "no such file or folder")
    return n


def _parent_and_name(path: str) -> tuple[str, str]:
    parts = split_path(path)
    if not parts:
        raise BadName("the root folder has no name")
    return "/" + "/".join(parts[:-1]), parts[-1]


def _path_param(request: Request) -> str:
    return request.path_params.get("path", "") or "/"


async def _json(request: Request) -> dict:
    from suite.gateway.app import read_json

    return await read_json(request)


def _str(data: dict, key: str) -> str:
    v = data.get(key)
    if not isinstance(v, str):
        raise ApiError(400, f"send {key!r} as a string")
    return v


# ---------------------------------------------------------------- downloads
# Bytes per window on the disk fast path. Bigger windows mean fewer thread hops and event-loop turns
# per byte; a download holds at most two (the one being sent, the one mapped ahead).
DOWNLOAD_WINDOW = 4 * 1024 * 1024


def _map_window(fd: int, offset: int, length: int) -> memoryview:
    """``length`` bytes of the file at ``offset``, mapped read-only and already resident
    (MAP_POPULATE reads them in here, in a worker thread, so the event loop never waits on the disk).
    The socket write then copies straight from the page cache: one copy per byte instead of two
    (read into a buffer, then send it). Blobs are immutable and never truncated, so the mapping
    cannot go short; the memoryview keeps it alive until the transport has sent it."""
    skip = offset % mmap.ALLOCATIONGRANULARITY
    m = mmap.mmap(
        fd,
        length + skip,
        flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),
        prot=mmap.PROT_READ,
        offset=offset - skip,
    )
    view = memoryview(m)
    return view[skip:] if skip else view


async def _file_windows(path, start: int, end: int, window: int = DOWNLOAD_WINDOW) -> AsyncIterator[memoryview]:
    """Bytes [start, end) of a local blob file, one mapped window at a time, the next one mapped
    while the current one is being sent (one thread hop per window)."""
    loop = asyncio.get_running_loop()
    fd = await loop.run_in_executor(None, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
    pending = None
    try:
        if os.fstat(fd).st_size < end:
            raise OSError(f"blob {path.name} is shorter than its recorded size")
        pos = start
        if pos < end:
            pending = loop.run_in_executor(None, _map_window, fd, pos, min(window, end - pos))
        while pending is not None:
            view = await pending
            pending = None
            pos += len(view)
            if pos < end:
                pending = loop.run_in_executor(None, _map_window, fd, pos, min(window, end - pos))
            yield view
            del view
    finally:
        # A mapping stays valid after its descriptor is closed; a window still being mapped (the
        # client went away) needs the descriptor until it is done.
        if pending is not None and not pending.done():
            pending.add_done_callback(lambda _f: os.close(fd))
        else:
            os.close(fd)


def _content(blobs, digest: str, start: int = 0, end: int | None = None, size: int = 0) -> AsyncIterator[bytes]:
    """A blob's bytes: straight from the file when the backend is on local disk, else the backend's
    own streaming read (S3)."""
    path = blobs.local_path(digest)
    if path is not None:
        return _file_windows(path, start, size if end is None else end)
    return blobs.read(digest, start, end)


async def send_node(request: Request, node: Node, *, inline: bool = False, on_body=None) -> Response:
    """A file's content with ETag, conditional requests and Range; streamed from the blob store
    (memory: one chunk whatever the size). ``on_body`` runs before a body that starts at 0."""
    if node.is_dir:
        raise ApiError(409, "a folder has no content; list it instead")
    blobs = request.app.state.ctx.blobs
    etag = f'"{node.etag}"'
    size = node.size
    base = {
        "ETag": etag,
        "Last-Modified": httpcore.http_date(node.modified_at),
        "Accept-Ranges": "bytes",
        "Content-Disposition": httpcore.content_disposition(node.name, inline=inline),
        "X-Content-Type-Options": "nosniff",
        # Shared and user content never runs as a page of our origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-cache",
    }
    h = request.headers
    if httpcore.if_match_fails(h.get("if-match"), etag):
        return Response(status_code=412, headers=base)
    inm = h.get("if-none-match")
    if httpcore.none_match(inm, etag) or (
        inm is None and httpcore.not_modified_since(h.get("if-modified-since"), node.modified_at)
    ):
        return Response(
            status_code=304, headers={k: v for k, v in base.items() if k in ("ETag", "Last-Modified", "Cache-Control")}
        )
    ranges = None
    if httpcore.if_range_ok(h.get("if-range"), etag, node.modified_at):
        try:
            ranges = httpcore.parse_range(h.get("range"), size)
        except httpcore.Unsatisfiable:
            return Response(status_code=416, headers={**base, "Content-Range": f"bytes */{size}"})
    head = request.method == "HEAD"
    if on_body is not None and not head and (ranges is None or ranges[0].start == 0):
        await on_body()
    if ranges is None:
        headers = {**base, "Content-Length": str(size)}
        if head:
            return Response(status_code=200, headers=headers, media_type=node.media_type)
        return StreamingResponse(_content(blobs, node.blob, size=size), headers=headers, media_type=node.media_type)
    if len(ranges) == 1:
        r = ranges[0]
        headers = {**base, "Content-Length": str(r.length), "Content-Range": r.content_range(size)}
        if head:
            return Response(status_code=206, headers=headers, media_type=node.media_type)
        return StreamingResponse(
            _content(blobs, node.blob, r.start, r.end), status_code=206, headers=headers, media_type=node.media_type
        )
    # multipart/byteranges, RFC 9110 §14.6
    boundary = secrets.token_hex(16)
    heads = [
        (f"--{boundary}\r\nContent-Type: {node.media_type}\r\nContent-Range: {r.content_range(size)}\r\n\r\n").encode()
        for r in ranges
    ]
    tail = f"--{boundary}--\r\n".encode()
    total = sum(len(x) for x in heads) + sum(r.length + 2 for r in ranges) + len(tail)

    async def parts() -> AsyncIterator[bytes]:
        for hd, r in zip(heads, ranges, strict=True):
            yield hd
            async for chunk in _content(blobs, node.blob, r.start, r.end):
                yield chunk
            yield b"\r\n"
        yield tail

    headers = {**base, "Content-Length": str(total)}
    mt = f"multipart/byteranges; boundary={boundary}"
    if head:
        return Response(status_code=206, headers=headers, media_type=mt)
    return StreamingResponse(parts(), status_code=206, headers=headers, media_type=mt)


# ---------------------------------------------------------------- JSON API
async def api_list(request: Request) -> JSONResponse:
    c = await _caller(request)
    path = _path_param(request)
    n = await _resolve(request, c.account.id, path)
    if not n.is_dir:
        raise ApiError(409, f"{n.name} is not a folder")
    children = await _files(request).tree.list(c.account.id, n.id)
    base = "/" + "/".join(split_path(path))
    return JSONResponse(
        {
            "folder": node_json(n, base),
            "children": [node_json(x, f"{base.rstrip('/')}/{x.name}") for x in children],
        }
    )


async def api_stat(request: Request) -> JSONResponse:
    c = await _caller(request)
    path = _path_param(request)
    n = await _resolve(request, c.account.id, path)
    return JSONResponse(node_json(n, "/" + "/".join(split_path(path))))


async def api_content(request: Request) -> Response:
    c = await _caller(request)
    if request.method in ("GET", "HEAD"):
        n = await _resolve(request, c.account.id, _path_param(request))
        return await send_node(request, n, inline=request.query_params.get("inline") == "1")
    return await _put_content(request, c)


async def _put_content(request: Request, c) -> JSONResponse:
    """PUT raw bytes (curl -T): streamed into the blob store, size capped while reading."""
    files = _files(request)
    try:
        parent_path, name = _parent_and_name(_path_param(request))
    except BadName as exc:
        raise _api_error(exc) from None
    parent = await _resolve(request, c.account.id, parent_path)
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise ApiError(400, "bad Content-Length")
        if int(length) > files.limits.max_upload_bytes:
            raise ApiError(413, f"files are limited to {files.limits.max_upload_bytes} bytes")
        acct = await request.app.state.ctx.accounts.get_by_id(c.account.id)
        if acct.used_bytes + int(length) > acct.quota_bytes:
            raise ApiError(413, "quota exceeded: the file does not fit in the account's storage", code="quota_exceeded")
    media_type = request.headers.get("content-type", "").split(";")[0].strip() or None
    try:
        node, created = await files.tree.write(
            c.account.id, parent.id, name, request.stream(), media_type, max_size=files.limits.max_upload_bytes
        )
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    except ClientDisconnect:
        raise ApiError(400, "the upload was cut") from None
    return JSONResponse(node_json(node), status_code=201 if created else 200, headers={"ETag": f'"{node.etag}"'})


async def api_upload(request: Request) -> JSONResponse:
    """multipart/form-data upload of small files into the folder at the path (field ``file``)."""
    c = await _caller(request)
    files = _files(request)
    folder = await _resolve(request, c.account.id, _path_param(request))
    if not folder.is_dir:
        raise ApiError(409, f"{folder.name} is not a folder")
    nodes = await _store_form_files(request, c.account.id, folder.id, files, unique_names=False)
    return JSONResponse({"files": [node_json(n) for n in nodes]}, status_code=201)


async def _read_form(request: Request, files: Files):
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise ApiError(415, "send multipart/form-data")
    length = request.headers.get("content-length")
    if length is None:
        raise ApiError(411, "send Content-Length (use PUT or tus for streamed uploads)")
    if not length.isdigit() or int(length) > files.limits.max_form_bytes:
        raise ApiError(413, f"form uploads are limited to {files.limits.max_form_bytes} bytes; use tus (/api/tus/)")
    try:
        return await request.form(max_files=100, max_fields=20, max_part_size=64 * 1024)
    except ClientDisconnect:
        raise ApiError(400, "the upload was cut") from None
    except Exception as exc:
        raise ApiError(400, f"malformed multipart body: {exc}".splitlines()[0][:200]) from None


async def _store_form_files(
    request: Request, account_id: int, folder_id: int, files: Files, *, unique_names: bool, form=None, on_each=None
) -> list[Node]:
    from starlette.datastructures import UploadFile

    form = form if form is not None else await _read_form(request, files)
    uploads = [v for k, v in form.multi_items() if isinstance(v, UploadFile)]
    if not uploads:
        raise ApiError(400, "no file in the form (field 'file')")
    out = []
    try:
        for up in uploads:
            name = check_name(up.filename or "upload")
            if unique_names:
                name = await files.shares.free_name(account_id, folder_id, name)
            if on_each is not None:
                await on_each(name)

            async def chunks(up=up):
                while data := await up.read(256 * 1024):
                    yield data

            media = (up.content_type or "").split(";")[0].strip() or None
            node, _ = await files.tree.write(
                account_id, folder_id, name, chunks(), media, max_size=files.limits.max_upload_bytes
            )
            out.append(node)
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    finally:
        await form.close()
    return out


async def api_mkdir(request: Request) -> JSONResponse:
    c = await _caller(request)
    data = await _json(request)
    files = _files(request)
    try:
        parent_path, name = _parent_and_name(_str(data, "path"))
        if data.get("parents"):
            n = await files.tree.makedirs(c.account.id, _str(data, "path"))
        else:
            parent = await _resolve(request, c.account.id, parent_path)
            n = await files.tree.mkdir(c.account.id, parent.id, name)
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse(node_json(n), status_code=201)


async def _move_or_copy(request: Request, copy: bool) -> JSONResponse:
    c = await _caller(request)
    data = await _json(request)
    files = _files(request)
    try:
        src = await _resolve(request, c.account.id, _str(data, "from"))
        parent_path, name = _parent_and_name(_str(data, "to"))
        dest = await _resolve(request, c.account.id, parent_path)
        op = files.tree.copy if copy else files.tree.move
        n = await op(c.account.id, src.id, dest.id, name, overwrite=bool(data.get("overwrite")))
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse(node_json(n), status_code=201 if copy else 200)


async def api_move(request: Request) -> JSONResponse:
    return await _move_or_copy(request, False)


async def api_copy(request: Request) -> JSONResponse:
    return await _move_or_copy(request, True)


async def api_delete(request: Request) -> JSONResponse:
    c = await _caller(request)
    data = await _json(request)
    try:
        n = await _resolve(request, c.account.id, _str(data, "path"))
        n = await _files(request).tree.trash(c.account.id, n.id)
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse(node_json(n))


def _int(data: dict, key: str) -> int:
    v = data.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ApiError(400, f"send {key!r} as an integer")
    return v


async def api_trash(request: Request) -> JSONResponse:
    c = await _caller(request)
    return JSONResponse({"items": [node_json(n) for n in await _files(request).tree.list_trash(c.account.id)]})


async def api_restore(request: Request) -> JSONResponse:
    c = await _caller(request)
    data = await _json(request)
    try:
        n = await _files(request).tree.restore(c.account.id, _int(data, "id"))
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse(node_json(n))


async def api_purge(request: Request) -> JSONResponse:
    c = await _caller(request)
    data = await _json(request)
    try:
        tree = _files(request).tree
        if data.get("all"):
            freed = await tree.empty_trash(c.account.id)
        else:
            freed = await tree.purge(c.account.id, _int(data, "id"))
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse({"freed_bytes": freed})


async def api_versions(request: Request) -> JSONResponse:
    c = await _caller(request)
    files = _files(request)
    n = await _resolve(request, c.account.id, _path_param(request))
    if request.method == "POST":
        data = await _json(request)
        try:
            n = await files.tree.restore_version(c.account.id, n.id, _int(data, "id"))
        except (FilesError, BadName) as exc:
            raise _api_error(exc) from None
        return JSONResponse(node_json(n))
    try:
        vs = await files.tree.versions(c.account.id, n.id)
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse(
        {"versions": [{"id": v.id, "size": v.size, "media_type": v.media_type, "modified": v.modified_at} for v in vs]}
    )


# ---------------------------------------------------------------- shares (owner side)
def share_url(request_or_settings, token: str) -> str:
    st = request_or_settings
    return f"{st.base_url.rstrip('/')}/s/{token}"


def share_json(info: ShareInfo, path: str) -> dict:
    return {
        "id": info.id,
        "path": path,
        "kind": info.kind,
        "has_password": info.has_password,
        "expires": info.expires_at,
        "max_uses": info.max_uses,
        "uses": info.uses,
        "created": info.created_at,
        "revoked": info.revoked_at,
        "active": info.active,
    }


async def api_shares(request: Request) -> JSONResponse:
    c = await _caller(request)
    files = _files(request)
    if request.method == "GET":
        return JSONResponse({"shares": [share_json(i, p) for i, p in await files.shares.list(c.account.id)]})
    data = await _json(request)
    n = await _resolve(request, c.account.id, _str(data, "path"))
    expires = data.get("expires_in")
    if expires is not None and (not isinstance(expires, (int, float)) or expires <= 0):
        raise ApiError(400, "expires_in is a number of seconds > 0")
    max_uses = data.get("max_uses")
    if max_uses is not None:
        max_uses = _int(data, "max_uses")
    pw = data.get("password")
    if pw is not None and not isinstance(pw, str):
        raise ApiError(400, "password must be a string")
    try:
        info, token = await files.shares.create(
            c.account.id,
            n.id,
            kind=data.get("kind") or "download",
            password=pw or None,
            expires_at=time.time() + expires if expires else None,
            max_uses=max_uses,
        )
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    body = share_json(info, await files.tree.path_of(c.account.id, n.id))
    body.update(token=token, url=share_url(request.app.state.ctx.settings, token))
    return JSONResponse(body, status_code=201)


async def api_share_one(request: Request) -> JSONResponse:
    c = await _caller(request)
    files = _files(request)
    share_id = request.path_params["id"]
    try:
        if request.method == "DELETE":
            await files.shares.revoke_id(c.account.id, share_id)
            return JSONResponse({"revoked": True})
        log = await files.shares.access_log(c.account.id, share_id)
    except (FilesError, BadName) as exc:
        raise _api_error(exc) from None
    return JSONResponse({"log": [{"at": e.at, "ip": e.ip, "action": e.action, "detail": e.detail} for e in log]})


# ---------------------------------------------------------------- public share pages
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


async def share_page(request: Request) -> Response:
    files = _files(request)
    token = request.path_params["token"]
    ip = auth.client_ip(request)
    password = _basic_password(request)
    form = None
    if request.method == "POST":
        ctype = request.headers.get("content-type", "").lower()
        if ctype.startswith("multipart/form-data"):
            form = await _read_form(request, files)
        elif ctype.startswith("application/x-www-form-urlencoded"):
            length = request.headers.get("content-length", "")
            if not length.isdigit() or int(length) > 4096:
                return _share_error(request, ShareError("send the password form (at most 4 KiB)"))
            form = await request.form(max_files=0, max_fields=5)
        if form is not None and isinstance(form.get("password"), str):
            password = form.get("password")
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
    files = _files(request)
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
        nodes = await _store_form_files(
            request, share.account_id, folder.id, files, unique_names=True, form=form, on_each=each
        )
    except ShareError as exc:
        return _share_error(request, exc)
    if _wants_html(request):
        return _page("Thank you", f"<p>{len(nodes)} file(s) received.</p>", 201)
    return JSONResponse({"received": [n.name for n in nodes]}, status_code=201)


# ---------------------------------------------------------------- tus 1.0
def _tus_headers(extra: dict | None = None) -> dict:
    h = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
    if extra:
        h.update(extra)
    return h


def _tus_error(status: int, message: str, extra: dict | None = None) -> Response:
    return JSONResponse({"error": str(status), "message": message}, status_code=status, headers=_tus_headers(extra))


def _tus_exc(exc: Exception) -> Response:
    if isinstance(exc, OffsetMismatch):
        return _tus_error(409, str(exc))
    if isinstance(exc, ChecksumMismatch):
        return _tus_error(460, str(exc))
    if isinstance(exc, Gone):
        return _tus_error(410, str(exc))
    if isinstance(exc, (QuotaExceeded, TooLarge)):
        return _tus_error(413, str(exc))
    if isinstance(exc, NotFound):
        return _tus_error(404, str(exc))
    if isinstance(exc, Conflict):
        return _tus_error(409, str(exc))
    return _tus_error(400, str(exc))


def _check_tus_version(request: Request) -> Response | None:
    # tus core: a request without the supported Tus-Resumable gets 412 (except OPTIONS).
    if request.method != "OPTIONS" and request.headers.get("tus-resumable") != TUS_VERSION:
        return _tus_error(412, "send Tus-Resumable: 1.0.0", {"Tus-Version": TUS_VERSION})
    return None


def _int_header(request: Request, name: str) -> int | None:
    v = request.headers.get(name)
    if v is None:
        return None
    if not v.strip().isdigit():
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(v)


def _expires(info) -> str:
    return httpcore.http_date(info.expires_at)


async def tus_root(request: Request) -> Response:
    files = _files(request)
    if request.method == "OPTIONS":
        return Response(
            status_code=204,
            headers=_tus_headers(
                {
                    "Tus-Version": TUS_VERSION,
                    "Tus-Extension": TUS_EXTENSIONS,
                    "Tus-Max-Size": str(files.tus.max_size),
                    "Tus-Checksum-Algorithm": "sha256,sha1,md5",
                }
            ),
        )
    try:
        c = await _caller(request)
    except ApiError as exc:
        return _tus_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    if (bad := _check_tus_version(request)) is not None:
        return bad
    try:
        length = _int_header(request, "upload-length")
        if length is None:
            return _tus_error(400, "send Upload-Length (Upload-Defer-Length is not supported)")
        meta = parse_metadata(request.headers.get("upload-metadata"))
        body_len = _int_header(request, "content-length") or 0
        has_body = body_len > 0
        if has_body and request.headers.get("content-type") != "application/offset+octet-stream":
            return _tus_error(415, "creation-with-upload needs Content-Type: application/offset+octet-stream")
        checksum = parse_checksum(request.headers.get("upload-checksum")) if has_body else None
        info = await files.tus.create(c.account.id, length=length, metadata=meta)
        if has_body:
            info = await files.tus.append(c.account.id, info.id, 0, request.stream(), checksum)
    except (FilesError, BadName) as exc:
        return _tus_exc(exc)
    location = f"{request.url.path.rstrip('/')}/{info.id}"
    return Response(
        status_code=201,
        headers=_tus_headers(
            {
                "Location": location,
                "Upload-Offset": str(info.offset),
                "Upload-Expires": _expires(info),
                **({"X-File-Id": str(info.node_id)} if info.node_id else {}),
            }
        ),
    )


async def tus_upload(request: Request) -> Response:
    files = _files(request)
    if request.method == "OPTIONS":
        return await tus_root(request)
    try:
        c = await _caller(request)
    except ApiError as exc:
        return _tus_error(exc.status_code, str(exc.detail), dict(exc.headers or {}))
    if (bad := _check_tus_version(request)) is not None:
        return bad
    upload_id = request.path_params["upload_id"]
    try:
        if request.method == "HEAD":
            info = await files.tus.get(c.account.id, upload_id)
            return Response(
                status_code=200,
                headers=_tus_headers(
                    {
                        "Upload-Offset": str(info.offset),
                        "Upload-Length": str(info.length),
                        "Upload-Expires": _expires(info),
                    }
                ),
            )
        if request.method == "DELETE":
            await files.tus.terminate(c.account.id, upload_id)
            return Response(status_code=204, headers=_tus_headers())
        # PATCH
        if request.headers.get("content-type") != "application/offset+octet-stream":
            return _tus_error(415, "send Content-Type: application/offset+octet-stream")
        offset = _int_header(request, "upload-offset")
        if offset is None:
            return _tus_error(400, "send Upload-Offset")
        checksum = parse_checksum(request.headers.get("upload-checksum"))
        info = await files.tus.append(c.account.id, upload_id, offset, request.stream(), checksum)
    except (FilesError, BadName) as exc:
        return _tus_exc(exc)
    return Response(
        status_code=204,
        headers=_tus_headers(
            {
                "Upload-Offset": str(info.offset),
                "Upload-Expires": _expires(info),
                **({"X-File-Id": str(info.node_id)} if info.node_id else {}),
            }
        ),
    )


# ---------------------------------------------------------------- wiring
def routes(ctx) -> list:
    """The files routes; ``create_app`` adds them and sets ``app.state.files`` via ``install``."""
    from suite.gateway.dav import DavApp

    return [
        Route("/api/files/list", api_list),
        Route("/api/files/list/{path:path}", api_list),
        Route("/api/files/stat/{path:path}", api_stat),
        Route("/api/files/content/{path:path}", api_content, methods=["GET", "HEAD", "PUT"]),
        Route("/api/files/upload", api_upload, methods=["POST"]),
        Route("/api/files/upload/{path:path}", api_upload, methods=["POST"]),
        Route("/api/files/mkdir", api_mkdir, methods=["POST"]),
        Route("/api/files/move", api_move, methods=["POST"]),
        Route("/api/files/copy", api_copy, methods=["POST"]),
        Route("/api/files/delete", api_delete, methods=["POST"]),
        Route("/api/files/trash", api_trash),
        Route("/api/files/trash/restore", api_restore, methods=["POST"]),
        Route("/api/files/trash/purge", api_purge, methods=["POST"]),
        Route("/api/files/versions/{path:path}", api_versions, methods=["GET", "POST"]),
        Route("/api/files/shares", api_shares, methods=["GET", "POST"]),
        Route("/api/files/shares/{id:int}", api_share_one, methods=["GET", "DELETE"]),
        Route("/api/tus", tus_root, methods=["POST", "OPTIONS"]),
        Route("/api/tus/", tus_root, methods=["POST", "OPTIONS"]),
        Route("/api/tus/{upload_id}", tus_upload, methods=["HEAD", "PATCH", "DELETE", "OPTIONS"]),
        Route("/s/{token}", share_page, methods=["GET", "HEAD", "POST"]),
        Mount("/dav", app=DavApp(ctx)),
    ]


def install(app, ctx) -> None:
    app.state.files = Files(ctx)
