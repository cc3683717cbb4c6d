"""The files service's HTTP edge, wired: the JSON API (``api``), content with Range (``transfer``),
public share pages (``shares``), tus uploads (``tus``) and the WebDAV mount (``suite.gateway.dav``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from suite.files.service import Files
from suite.gateway.files import api, shares, tus

if TYPE_CHECKING:
    from suite.context import Context


def routes(ctx: Context) -> list[BaseRoute]:
    """The files routes; ``create_app`` adds them and sets ``app.state.files`` via ``install``."""
    from suite.gateway.dav import DavApp

    return [
        Route("/api/files/list", api.api_list),
        Route("/api/files/list/{path:path}", api.api_list),
        Route("/api/files/stat/{path:path}", api.api_stat),
        Route("/api/files/content/{path:path}", api.api_content, methods=["GET", "HEAD", "PUT"]),
        Route("/api/files/upload", api.api_upload, methods=["POST"]),
        Route("/api/files/upload/{path:path}", api.api_upload, methods=["POST"]),
        Route("/api/files/mkdir", api.api_mkdir, methods=["POST"]),
        Route("/api/files/move", api.api_move, methods=["POST"]),
        Route("/api/files/copy", api.api_copy, methods=["POST"]),
        Route("/api/files/delete", api.api_delete, methods=["POST"]),
        Route("/api/files/trash", api.api_trash),
        Route("/api/files/trash/restore", api.api_restore, methods=["POST"]),
        Route("/api/files/trash/purge", api.api_purge, methods=["POST"]),
        Route("/api/files/versions/{path:path}", api.api_versions, methods=["GET", "POST"]),
        Route("/api/files/shares", api.api_shares, methods=["GET", "POST"]),
        Route("/api/files/shares/{id:int}", api.api_share_one, methods=["GET", "DELETE"]),
        Route("/api/tus", tus.tus_root, methods=["POST", "OPTIONS"]),
        Route("/api/tus/", tus.tus_root, methods=["POST", "OPTIONS"]),
        Route("/api/tus/{upload_id}", tus.tus_upload, methods=["HEAD", "PATCH", "DELETE", "OPTIONS"]),
        Route("/s/{token}", shares.share_page, methods=["GET", "HEAD", "POST"]),
        Mount("/dav", app=DavApp(ctx)),
    ]


def install(app: Starlette, ctx: Context) -> None:
    app.state.files = Files(ctx)
