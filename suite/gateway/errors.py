"""JSON errors for every API answer: ``{"error": "<code>", "message": "<for a person>"}``."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from suite.storage.blobs import BlobUnavailable

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
    507: "insufficient_storage",
}


class ApiError(HTTPException):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(status, message, headers=headers)
        self.code = code or _CODES.get(status, "error")


def error_response(status: int, message: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": code or _CODES.get(status, "error"), "message": message}, status_code=status, headers=headers
    )


async def http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = getattr(exc, "code", None)
    return error_response(exc.status_code, str(exc.detail), code, dict(exc.headers or {}))


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, "internal error; the server log has the details")


async def storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # BlobUnavailable: nothing was stored or acknowledged; the client retries (RFC 9110 §15.6.4)
    return error_response(503, f"storage unavailable, try again later: {exc}", headers={"Retry-After": "30"})


HANDLERS = {HTTPException: http_exception, BlobUnavailable: storage_unavailable, Exception: server_error}
