"""Files routes the web app adds: ``GET /api/files/zip/<path>``, the owner's download of one of their
folders as a streamed ZIP (same ZIP writer as a folder share link, suite.files.shares), and
``GET /api/files/search?q=``, files and folders by name anywhere in the tree. (A PDF preview is drawn by
pdf.js in the page from the file's bytes, fetched as an attachment: no route serves a PDF to be framed.)"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from suite.files import httpcore
from suite.files.names import BadName
from suite.files.search import search_names
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


async def search(request: Request) -> JSONResponse:
    c = await auth.require(request, basic_scope="dav")
    q = request.query_params.get("q", "")
    if len(q) > 255:
        raise ApiError(400, "the search is limited to 255 characters")
    found = await search_names(request.app.state.files.tree, c.account.id, q)
    return JSONResponse(
        {
            "results": [
                {
                    "id": n.id,
                    "name": n.name,
                    "path": path,
                    "type": "folder" if n.is_dir else "file",
                    "size": n.size,
                    "media_type": n.media_type,
                    "modified": n.modified_at,
                }
                for n, path in found
            ]
        }
    )


def routes() -> list:
    return [
        Route("/api/files/zip", zip_download),
        Route("/api/files/zip/{path:path}", zip_download),
        Route("/api/files/search", search),
    ]
