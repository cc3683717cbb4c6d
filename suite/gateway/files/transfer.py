"""Sending a file's content over HTTP: validators and conditional requests (RFC 9110 §13), Range
(§14: one range, or multipart/byteranges), streamed from the blob store in windows
(``BlobStore.windows``: mapped on disk, a ranged stream on S3) — memory stays flat whatever the size."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from suite.files import httpcore
from suite.files.tree import Node
from suite.gateway.errors import ApiError


async def send_node(
    request: Request, node: Node, *, inline: bool = False, on_body: Callable[[], Awaitable[None]] | None = None
) -> Response:
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
    st = request.app.state.ctx.settings.storage
    if st.redirect_downloads and ranges is None and not head:
        # storage.redirect_downloads: the provider's bandwidth serves the bytes (a short-lived URL)
        url = await blobs.presign(node.blob, st.redirect_ttl, base["Content-Disposition"], node.media_type)
        if url is not None:
            if on_body is not None:
                await on_body()
            return Response(status_code=307, headers={"Location": url, "Cache-Control": "no-store"})
    if on_body is not None and not head and (ranges is None or ranges[0].start == 0):
        await on_body()
    if ranges is None:
        headers = {**base, "Content-Length": str(size)}
        if head:
            return Response(status_code=200, headers=headers, media_type=node.media_type)
        return StreamingResponse(blobs.windows(node.blob, 0, size), headers=headers, media_type=node.media_type)
    if len(ranges) == 1:
        r = ranges[0]
        headers = {**base, "Content-Length": str(r.length), "Content-Range": r.content_range(size)}
        if head:
            return Response(status_code=206, headers=headers, media_type=node.media_type)
        return StreamingResponse(
            blobs.windows(node.blob, r.start, r.end), status_code=206, headers=headers, media_type=node.media_type
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
            async for chunk in blobs.windows(node.blob, r.start, r.end):
                yield chunk
            yield b"\r\n"
        yield tail

    headers = {**base, "Content-Length": str(total)}
    mt = f"multipart/byteranges; boundary={boundary}"
    if head:
        return Response(status_code=206, headers=headers, media_type=mt)
    return StreamingResponse(parts(), status_code=206, headers=headers, media_type=mt)
