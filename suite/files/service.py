"""The files service's parts, built once per process from the shared Context."""

from __future__ import annotations

from dataclasses import dataclass

from suite.files.shares import ShareStore
from suite.files.tree import FileTree
from suite.files.tus import TusStore


@dataclass
class FilesLimits:
    max_upload_bytes: int = 50 * 1024**3  # one file, any route (tus Tus-Max-Size, PUT, WebDAV)
    max_form_bytes: int = 100 * 1024**2  # a plain multipart upload (small files), whole body
    keep_versions: int = 10
    trash_days: float = 30
    tus_expiry_seconds: float = 24 * 3600


class Files:
    def __init__(self, ctx, limits: FilesLimits | None = None) -> None:
        self.ctx = ctx
        self.limits = limits or FilesLimits()
        self.tree = FileTree(ctx, keep_versions=self.limits.keep_versions, trash_days=self.limits.trash_days)
        self.tus = TusStore(
            ctx, self.tree, max_size=self.limits.max_upload_bytes, expiry_seconds=self.limits.tus_expiry_seconds
        )
        self.shares = ShareStore(ctx, self.tree)

    async def housekeeping(self) -> dict[str, int]:
        """Purge old trash and expired uploads, then collect unreferenced blobs past their grace
        period (the blob store's ``gc``, for mail and files alike: the files service is the one
        that runs periodic upkeep). Run periodically."""
        return {
            "trash_purged": await self.tree.purge_expired(),
            "uploads_expired": await self.tus.expire(),
            "blobs_collected": await self.ctx.blobs.gc(),
        }
