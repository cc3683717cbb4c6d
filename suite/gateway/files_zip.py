"""``GET /api/files/zip/<path>``: the owner's download of one of their folders as a streamed ZIP (the
web app's "Download" on a folder). Same ZIP writer as a folder share link (suite.files.shares)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from suite.files import httpcore
from suite.files.names import BadName
from suite.files.shares import folder_size, zip_folder
from suite.gateway import auth
from suite.gateway.errors import ApiError


async def zip_download(request: Request) -> StreamingResponse:
    c = await auth.require(request, basic_scope="dav")
    files = request.app.state.files
    try:
        node = await files.tree.resolve(c.account.id, request.path_params.get("path", "") or "/")
    except BadName as exc:
        raise ApiError(400, str(exc), code="bad_name") from None
    if node is None:
        raise ApiError(404, "no such folder")
    if not node.is_dir:
        raise ApiError(409, f"{node.name} is a file; download it from /api/files/content/")
    name = node.name or "Files"
    return StreamingResponse(
        zip_folder(files.tree, c.account.id, node),
        media_type="application/zip",
        headers={
            "Content-Disposition": httpcore.content_disposition(f"{name}.zip"),
            "Cache-Control": "private, no-store",
            "X-Uncompressed-Size": str(await folder_size(files.tree, c.account.id, node)),
        },
    )


def routes() -> list:
    return [Route("/api/files/zip", zip_download), Route("/api/files/zip/{path:path}", zip_download)]
