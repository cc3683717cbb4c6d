"""tus 1.0 resumable uploads (/api/tus/): core protocol plus creation, creation-with-upload,
termination, expiration and checksum. The HTTP edge only: headers are parsed here into calls on
``suite.files.tus``, which keeps the partial bytes (a spool file fsynced per PATCH)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from suite.files import httpcore
from suite.files.names import BadName
from suite.files.tree import Conflict, FilesError, NotFound, QuotaExceeded, TooLarge
from suite.files.tus import (
    BadRequest,
    ChecksumMismatch,
    Gone,
    Locked,
    OffsetMismatch,
    parse_checksum,
    parse_metadata,
)
from suite.gateway.errors import ApiError
from suite.gateway.files.common import caller, files_of

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,creation-with-upload,termination,expiration,checksum"


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
    if isinstance(exc, Locked):
        return _tus_error(423, str(exc))
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
    files = files_of(request)
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
        c = await caller(request)
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
    files = files_of(request)
    if request.method == "OPTIONS":
        return await tus_root(request)
    try:
        c = await caller(request)
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
