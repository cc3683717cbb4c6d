"""The web's "Export my data" (and Admin → Users → Export): the export ``suite export --user``
makes, as one zip (``mail/<name>.mbox`` per mailbox, ``files/...``) streamed to the browser.

Two steps, because a download the browser saves itself cannot send the CSRF header:
``POST`` (cookie session + ``X-CSRF-Token``) answers a download URL carrying a ticket, an HMAC of
the exported address and an expiry keyed with the session's CSRF token — so it is bound to this
session, needs no server state and works on any gateway process; ``GET`` of that URL (same cookie
session) streams the zip. The zip is written by :func:`suite.ops.export.export_zip` into a pipe
whose chunks go to the response through a bounded queue: memory stays at a few chunks whatever the
account's size. One export at a time per exported account (per gateway process): 409 otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import StreamingResponse

from suite.gateway import auth
from suite.gateway.errors import ApiError
from suite.ops.export import CHUNK, export_zip

TICKET_SECONDS = 120
QUEUE_CHUNKS = 4


def _running(request: Request) -> set[str]:
    state = request.app.state
    if not hasattr(state, "exports_running"):
        state.exports_running = set()
    return state.exports_running


def _sign(c: auth.Caller, address: str, expires: int) -> str:
    key = (c.csrf_token or "").encode()
    return hmac.new(key, f"export\n{address}\n{expires}".encode(), hashlib.sha256).hexdigest()


def ticket_url(request: Request, c: auth.Caller, address: str, path: str) -> dict:
    """The answer to the POST: where to GET the zip within TICKET_SECONDS."""
    if c.via != "session" or not c.csrf_token:
        raise ApiError(403, "exports need a web session, not an app password", code="forbidden")
    if address in _running(request):
        raise ApiError(409, f"an export of {address} is already running; wait for it to finish", code="busy")
    expires = int(time.time()) + TICKET_SECONDS
    return {"url": f"{path}?expires={expires}&ticket={_sign(c, address, expires)}", "expires": expires}


class _ZipResponse(StreamingResponse):
    """Frees the account's export slot when the answer ends, however it ends. The body frees it
    first (before the last body message, see :func:`download`); this covers a body that never
    started (the client gone before the first chunk)."""

    def __init__(self, body: AsyncIterator[bytes], headers: dict, release) -> None:
        super().__init__(body, media_type="application/zip", headers=headers)
        self.release = release

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


class _Pipe:
    """The zip's output: zipfile writes here (no seek, no tell), ``drain`` hands full chunks on."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(QUEUE_CHUNKS)

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def flush(self) -> None:
        pass

    async def drain(self, final: bool = False) -> None:
        if self.buf and (final or len(self.buf) >= CHUNK):
            chunk = bytes(self.buf)
            self.buf.clear()
            await self.queue.put(chunk)


def _filename(address: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._@-]", "_", address)
    return f"suite-export-{safe}-{time.strftime('%Y-%m-%d', time.gmtime())}.zip"


async def download(request: Request, c: auth.Caller, address: str) -> StreamingResponse:
    """The GET: check the ticket, take the per-account slot, stream the zip."""
    if c.via != "session" or not c.csrf_token:
        raise ApiError(403, "exports need a web session, not an app password", code="forbidden")
    try:
        expires = int(request.query_params.get("expires", ""))
    except ValueError:
        raise ApiError(403, "missing or wrong export ticket; start the export again", code="csrf") from None
    sent = request.query_params.get("ticket", "")
    if expires < time.time() or not hmac.compare_digest(sent, _sign(c, address, expires)):
        raise ApiError(403, "missing or expired export ticket; start the export again", code="csrf")
    running = _running(request)
    if address in running:
        raise ApiError(409, f"an export of {address} is already running; wait for it to finish", code="busy")
    running.add(address)
    ctx = request.app.state.ctx
    pipe = _Pipe()

    def release() -> None:
        running.discard(address)

    async def produce() -> None:
        try:
            await export_zip(ctx, address, pipe, pipe.drain)  # type: ignore[arg-type]
            await pipe.drain(final=True)
            await pipe.queue.put(None)
        except Exception as exc:  # handed to the response, which aborts (a truncated zip, never a silent one)
            await pipe.queue.put(exc)

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.create_task(produce())
        try:
            while (item := await pipe.queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            task.cancel()
            # freed here, before the response's last (empty) body message goes out: the client has
            # the whole zip only after that, so a next export it starts at once finds the slot free
            release()

    name = _filename(address)
    headers = {
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(name)}",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    return _ZipResponse(body(), headers, release)
