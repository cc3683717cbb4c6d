"""The files JSON API (/api/files/...): list, stat, content (GET/HEAD/PUT), form uploads, mkdir,
move, copy, delete (to the trash), trash, versions, and share links (owner side).

Auth: the web session cookie (writes need X-CSRF-Token) or HTTP Basic with an app password of
scope "dav". Paths in URLs are "/"-separated names under the caller's root; every segment is
validated (no "..", ".", control characters), so no URL reaches another account or the disk.
Errors are JSON ``{"error", "message"}``; a full quota is 413 here (507 on WebDAV).
"""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from suite.files.names import BadName, split_path
from suite.files.shares import ShareInfo, link_url
from suite.files.tree import FilesError
from suite.gateway.errors import ApiError
from suite.gateway.files.common import (
    api_error,
    caller,
    files_of,
    int_field,
    json_body,
    node_json,
    parent_and_name,
    path_param,
    resolve,
    store_form_files,
    str_field,
)
from suite.gateway.files.transfer import send_node


async def api_list(request: Request) -> JSONResponse:
    c = await caller(request)
    path = path_param(request)
    n = await resolve(request, c.account.id, path)
    if not n.is_dir:
        raise ApiError(409, f"{n.name} is not a folder")
    children = await files_of(request).tree.list(c.account.id, n.id)
    base = "/" + "/".join(split_path(path))
    return JSONResponse(
        {
            "folder": node_json(n, base),
            "children": [node_json(x, f"{base.rstrip('/')}/{x.name}") for x in children],
        }
    )


async def api_stat(request: Request) -> JSONResponse:
    c = await caller(request)
    path = path_param(request)
    n = await resolve(request, c.account.id, path)
    return JSONResponse(node_json(n, "/" + "/".join(split_path(path))))


async def api_content(request: Request) -> Response:
    c = await caller(request)
    if request.method in ("GET", "HEAD"):
        n = await resolve(request, c.account.id, path_param(request))
        return await send_node(request, n, inline=request.query_params.get("inline") == "1")
    return await _put_content(request, c)


async def _put_content(request: Request, c) -> JSONResponse:
    """PUT raw bytes (curl -T): streamed into the blob store, size capped while reading."""
    files = files_of(request)
    try:
        parent_path, name = parent_and_name(path_param(request))
    except BadName as exc:
        raise api_error(exc) from None
    parent = await resolve(request, c.account.id, parent_path)
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
        raise api_error(exc) from None
    except ClientDisconnect:
        raise ApiError(400, "the upload was cut") from None
    return JSONResponse(node_json(node), status_code=201 if created else 200, headers={"ETag": f'"{node.etag}"'})


async def api_upload(request: Request) -> JSONResponse:
    """multipart/form-data upload of small files into the folder at the path (field ``file``)."""
    c = await caller(request)
    files = files_of(request)
    folder = await resolve(request, c.account.id, path_param(request))
    if not folder.is_dir:
        raise ApiError(409, f"{folder.name} is not a folder")
    nodes = await store_form_files(request, c.account.id, folder.id, files, unique_names=False)
    return JSONResponse({"files": [node_json(n) for n in nodes]}, status_code=201)


async def api_mkdir(request: Request) -> JSONResponse:
    c = await caller(request)
    data = await json_body(request)
    files = files_of(request)
    try:
        parent_path, name = parent_and_name(str_field(data, "path"))
        if data.get("parents"):
            n = await files.tree.makedirs(c.account.id, str_field(data, "path"))
        else:
            parent = await resolve(request, c.account.id, parent_path)
            n = await files.tree.mkdir(c.account.id, parent.id, name)
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse(node_json(n), status_code=201)


async def _move_or_copy(request: Request, copy: bool) -> JSONResponse:
    c = await caller(request)
    data = await json_body(request)
    files = files_of(request)
    try:
        src = await resolve(request, c.account.id, str_field(data, "from"))
        parent_path, name = parent_and_name(str_field(data, "to"))
        dest = await resolve(request, c.account.id, parent_path)
        op = files.tree.copy if copy else files.tree.move
        n = await op(c.account.id, src.id, dest.id, name, overwrite=bool(data.get("overwrite")))
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse(node_json(n), status_code=201 if copy else 200)


async def api_move(request: Request) -> JSONResponse:
    return await _move_or_copy(request, False)


async def api_copy(request: Request) -> JSONResponse:
    return await _move_or_copy(request, True)


async def api_delete(request: Request) -> JSONResponse:
    c = await caller(request)
    data = await json_body(request)
    try:
        n = await resolve(request, c.account.id, str_field(data, "path"))
        n = await files_of(request).tree.trash(c.account.id, n.id)
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse(node_json(n))


async def api_trash(request: Request) -> JSONResponse:
    c = await caller(request)
    return JSONResponse({"items": [node_json(n) for n in await files_of(request).tree.list_trash(c.account.id)]})


async def api_restore(request: Request) -> JSONResponse:
    c = await caller(request)
    data = await json_body(request)
    try:
        n = await files_of(request).tree.restore(c.account.id, int_field(data, "id"))
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse(node_json(n))


async def api_purge(request: Request) -> JSONResponse:
    c = await caller(request)
    data = await json_body(request)
    try:
        tree = files_of(request).tree
        if data.get("all"):
            freed = await tree.empty_trash(c.account.id)
        else:
            freed = await tree.purge(c.account.id, int_field(data, "id"))
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse({"freed_bytes": freed})


async def api_versions(request: Request) -> JSONResponse:
    c = await caller(request)
    files = files_of(request)
    n = await resolve(request, c.account.id, path_param(request))
    if request.method == "POST":
        data = await json_body(request)
        try:
            n = await files.tree.restore_version(c.account.id, n.id, int_field(data, "id"))
        except (FilesError, BadName) as exc:
            raise api_error(exc) from None
        return JSONResponse(node_json(n))
    try:
        vs = await files.tree.versions(c.account.id, n.id)
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse(
        {"versions": [{"id": v.id, "size": v.size, "media_type": v.media_type, "modified": v.modified_at} for v in vs]}
    )


# ---------------------------------------------------------------- shares (owner side)
def share_url(request_or_settings, token: str) -> str:
    return link_url(request_or_settings.base_url, token)


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
    c = await caller(request)
    files = files_of(request)
    if request.method == "GET":
        return JSONResponse({"shares": [share_json(i, p) for i, p in await files.shares.list(c.account.id)]})
    data = await json_body(request)
    n = await resolve(request, c.account.id, str_field(data, "path"))
    expires = data.get("expires_in")
    if expires is not None and (not isinstance(expires, (int, float)) or expires <= 0):
        raise ApiError(400, "expires_in is a number of seconds > 0")
    max_uses = data.get("max_uses")
    if max_uses is not None:
        max_uses = int_field(data, "max_uses")
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
        raise api_error(exc) from None
    body = share_json(info, await files.tree.path_of(c.account.id, n.id))
    body.update(token=token, url=share_url(request.app.state.ctx.settings, token))
    return JSONResponse(body, status_code=201)


async def api_share_one(request: Request) -> JSONResponse:
    c = await caller(request)
    files = files_of(request)
    share_id = request.path_params["id"]
    try:
        if request.method == "DELETE":
            await files.shares.revoke_id(c.account.id, share_id)
            return JSONResponse({"revoked": True})
        log = await files.shares.access_log(c.account.id, share_id)
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    return JSONResponse({"log": [{"at": e.at, "ip": e.ip, "action": e.action, "detail": e.detail} for e in log]})
