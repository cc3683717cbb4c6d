"""What the files routes share: the files service of the app, the caller, path parameters, JSON
fields, the JSON shape of a node, multipart form uploads, and files errors as HTTP errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.datastructures import FormData, UploadFile
from starlette.requests import ClientDisconnect, Request

from suite.files.names import BadName, check_name, split_path
from suite.files.service import Files
from suite.files.shares import ShareError
from suite.files.tree import Conflict, FilesError, Node, NotFound, QuotaExceeded, TooLarge
from suite.gateway import auth
from suite.gateway.errors import ApiError


def files_of(request: Request) -> Files:
    return request.app.state.files


def api_error(exc: FilesError | BadName) -> ApiError:
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


async def caller(request: Request) -> auth.Caller:
    return await auth.require(request, basic_scope="dav")


async def resolve(request: Request, account_id: int, path: str) -> Node:
    try:
        n = await files_of(request).tree.resolve(account_id, path)
    except BadName as exc:
        raise api_error(exc) from None
    if n is None:
        raise ApiError(404, "no such file or folder")
    return n


def parent_and_name(path: str) -> tuple[str, str]:
    parts = split_path(path)
    if not parts:
        raise BadName("the root folder has no name")
    return "/" + "/".join(parts[:-1]), parts[-1]


def path_param(request: Request) -> str:
    return request.path_params.get("path", "") or "/"


async def json_body(request: Request) -> dict:
    from suite.gateway.app import read_json

    return await read_json(request)


def str_field(data: dict, key: str) -> str:
    v = data.get(key)
    if not isinstance(v, str):
        raise ApiError(400, f"send {key!r} as a string")
    return v


def int_field(data: dict, key: str) -> int:
    v = data.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise ApiError(400, f"send {key!r} as an integer")
    return v


async def read_form(request: Request, files: Files) -> FormData:
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


async def store_form_files(
    request: Request,
    account_id: int,
    folder_id: int,
    files: Files,
    *,
    unique_names: bool,
    form: FormData | None = None,
    on_each: Callable[[str], Awaitable[None]] | None = None,
) -> list[Node]:
    form = form if form is not None else await read_form(request, files)
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

            async def chunks(up: UploadFile = up) -> AsyncIterator[bytes]:
                while data := await up.read(256 * 1024):
                    yield data

            media = (up.content_type or "").split(";")[0].strip() or None
            node, _ = await files.tree.write(
                account_id, folder_id, name, chunks(), media, max_size=files.limits.max_upload_bytes
            )
            out.append(node)
    except (FilesError, BadName) as exc:
        raise api_error(exc) from None
    finally:
        await form.close()
    return out
