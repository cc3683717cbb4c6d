"""``GET /api/mail/html/{emailId}?images=0|1``: a message's HTML body, sanitised on the server.

The web app's reader loads this into ``<iframe sandbox="allow-popups allow-popups-to-escape-sandbox">``:
no scripts, an opaque origin, and the document's own CSP (suite.mail.sanitize.frame_csp) forbids
every load except inline images (and remote ones once the reader clicks "Show images").

The gateway does not know how JMAP names messages: it asks a port, ``app.state.mail_raw``
(:class:`RawEmailSource`), which the JMAP side wires (``install_source``) to fetch a message's bytes
by its JMAP Email id, for that account only.

``&measure=1`` serves the same document for the reader's hidden measuring frame (``sandbox="allow-same-origin"``,
no scripts, nothing loaded; see suite.mail.sanitize.frame_csp): the app reads its laid-out height and gives the
visible frame exactly that, so the body never scrolls inside a frame inside the scrolling reader.

Opening a message asks for the same document up to three times at once (the reader's HEAD for the
image count and height hint, the visible frame, the measuring frame): the sanitised document is made
once per message blob and image setting and kept in a small bounded memory cache (``RenderCache``).
A message's bytes never change, so an entry is never stale; every request still checks, through the
port, that the account has this Email.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Protocol

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from suite.gateway import auth
from suite.gateway.errors import ApiError
from suite.mail.sanitize import Document, frame_csp, render_message

MAX_RAW = 64 * 1024 * 1024


class RawEmailSource(Protocol):
    async def email_blob(self, account_id: int, email_id: str) -> tuple[str, int] | None:
        """(blob digest, size) of the account's Email ``email_id`` (None when the account has no such Email)."""
        ...

    async def read(self, digest: str) -> bytes:
        """The RFC 5322 bytes of a message blob that ``email_blob`` named."""
        ...


class RenderCache:
    """Sanitised documents by (blob digest, images shown), least recently used first out, at most
    ``max_bytes`` of HTML; concurrent requests for one document share one render."""

    def __init__(self, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self.done: OrderedDict[tuple[str, bool], tuple[Document | None, int]] = OrderedDict()
        self.pending: dict[tuple[str, bool], asyncio.Future[Document | None]] = {}

    async def get(self, digest: str, images: bool, source: RawEmailSource) -> Document | None:
        key = (digest, images)
        if key in self.done:
            self.done.move_to_end(key)
            return self.done[key][0]
        if key in self.pending:
            return await asyncio.shield(self.pending[key])
        fut: asyncio.Future[Document | None] = asyncio.get_running_loop().create_future()
        self.pending[key] = fut
        try:
            raw = await source.read(digest)
            doc = await asyncio.to_thread(render_message, raw, images=images)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: a failure with no waiter is not logged as lost
            raise
        finally:
            del self.pending[key]
        fut.set_result(doc)
        size = len(doc.html) if doc is not None else 0
        if size <= self.max_bytes // 4:  # a huge document is not kept (it would evict all others)
            self.done[key] = (doc, size)
            self.used += size
            while self.used > self.max_bytes:
                _, (_, n) = self.done.popitem(last=False)
                self.used -= n
        return doc


def install_source(app, source: RawEmailSource) -> None:
    app.state.mail_raw = source
    app.state.mail_html_cache = RenderCache()


class JmapRawEmails:
    """The port over the JMAP mail store: an Email id of the account (``e<n>``, as suite.mail.jmap.methods
    .email_get makes them) → the message's bytes."""

    def __init__(self, store) -> None:
        self.store = store

    async def email_blob(self, account_id: int, email_id: str) -> tuple[str, int] | None:
        from suite.mail.jmap import emaildata
        from suite.mail.jmap.protocol import types

        n = types.parse("e", email_id)
        if n is None:
            return None
        rows = await emaildata.rows(self.store, account_id, [n])  # only this account's Emails
        row = rows.get(n)
        return (row.blob, row.size) if row is not None else None

    async def read(self, digest: str) -> bytes:
        return await self.store.raw(digest)


async def mail_html(request: Request) -> Response:
    c = await auth.require(request)
    email_id = request.path_params["email_id"]
    if not (0 < len(email_id) <= 255) or not all(ch.isalnum() or ch in "-_" for ch in email_id):
        raise ApiError(400, "not a JMAP id")  # RFC 8620 §1.2: 1-255 chars of URL-safe base64
    images = request.query_params.get("images", "0")
    if images not in ("0", "1"):
        raise ApiError(400, "images must be 0 or 1")
    measure = request.query_params.get("measure", "0")
    if measure not in ("0", "1"):
        raise ApiError(400, "measure must be 0 or 1")
    if measure == "1" and request.headers.get("sec-fetch-dest", "iframe") != "iframe":
        # the measuring copy keeps the app's origin: only ever a frame of the app, never a page of its own
        raise ApiError(400, "the measuring copy is only served to a frame")
    source: RawEmailSource | None = getattr(request.app.state, "mail_raw", None)
    if source is None:
        raise ApiError(404, "mail is not served by this process")
    found = await source.email_blob(c.account.id, email_id)
    if found is None:
        raise ApiError(404, "no such message")
    if found[1] > MAX_RAW:
        raise ApiError(413, "message too large to show")
    cache: RenderCache = request.app.state.mail_html_cache
    # the measuring copy never names a remote image (its <img> keep their width/height, not their src):
    # nothing to load, nothing for a browser to even try
    doc = await cache.get(found[0], images == "1" and measure == "0", source)
    if doc is None:
        raise ApiError(404, "the message has no HTML body", code="no_html")
    return HTMLResponse(
        doc.html,
        headers={
            "Content-Security-Policy": frame_csp(images == "1", measure=measure == "1"),
            "X-Frame-Options": "SAMEORIGIN",
            "Cache-Control": "private, no-store",
            "X-Blocked-Images": str(doc.blocked_images),
            "X-Height-Hint": str(doc.height_hint),
            "X-Unsized-Images": str(doc.unsized_remote_images),
        },
    )


ROUTES = [Route("/api/mail/html/{email_id}", mail_html)]
