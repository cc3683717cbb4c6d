"""Resumable uploads, tus 1.0 (https://tus.io/protocols/resumable-upload): the store side.

The HTTP edge (suite.gateway.files.tus) parses headers into calls here. Partial bytes live in
``<spool_dir>/tus/<id>``; every PATCH is fsynced and its new offset committed before the client is
answered, so an acknowledged offset survives a crash. When the last byte arrives the spool file is
streamed into the blob store (hashed while written) and becomes a file node in the same step; the
client's final 204 comes only after that commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update

from suite.files.models import TusUpload
from suite.files.names import check_name
from suite.files.tree import (
    FilesError,
    FileTree,
    NotFound,
    QuotaExceeded,
    TooLarge,
    guess_type,
)

CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
SPOOL_CHUNK = 1024 * 1024  # read back per thread hop when the upload completes


class Gone(FilesError):
    """The upload expired (tus expiration extension: 410 or 404)."""


class OffsetMismatch(FilesError):
    """Upload-Offset differs from the stored offset (tus core: 409)."""


class ChecksumMismatch(FilesError):
    """tus checksum extension: 460 Checksum Mismatch."""


class BadRequest(FilesError):
    pass


@dataclass(frozen=True, slots=True)
class UploadInfo:
    id: str
    length: int
    offset: int
    expires_at: float
    name: str
    node_id: int | None


def parse_metadata(header: str | None) -> dict[str, str]:
    """tus core "Upload-Metadata": comma-separated ``key base64value`` pairs; the value may be
    absent; an empty header is an empty mapping."""
    out: dict[str, str] = {}
    if header is None or not header.strip():
        return out
    for pair in header.split(","):
        pair = pair.strip()
        if not pair:
            continue
        key, _, value = pair.partition(" ")
        if not key or " " in value.strip() or key in out:
            raise BadRequest("malformed Upload-Metadata")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8") if value.strip() else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata value of {key!r} is not base64 UTF-8") from None
    return out


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """tus checksum extension: ``Upload-Checksum: <algorithm> <base64 digest>``."""
    if header is None:
        return None
    algo, _, value = header.strip().partition(" ")
    algo = algo.lower()
    if algo not in CHECKSUM_ALGORITHMS:
        raise BadRequest(f"unsupported checksum algorithm {algo!r}")
    try:
        return algo, base64.b64decode(value.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum digest is not base64") from None


def _info(u: TusUpload) -> UploadInfo:
    return UploadInfo(u.id, u.length, u.offset, u.expires_at, u.name, u.node_id)


class TusStore:
    def __init__(self, ctx, tree: FileTree, *, max_size: int, expiry_seconds: float) -> None:
        self.ctx = ctx
        self.tree = tree
        self.max_size = max_size
        self.expiry_seconds = expiry_seconds
        self.dir = Path(ctx.settings.spool_dir) / "tus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}

    def _path(self, upload_id: str) -> Path:
        if not upload_id.isalnum() and not all(c.isalnum() or c in "-_" for c in upload_id):
            raise NotFound("no such upload")
        return self.dir / upload_id

    async def create(self, account_id: int, *, length: int, metadata: dict[str, str]) -> UploadInfo:
        if length < 0:
            raise BadRequest("Upload-Length must not be negative")
        if length > self.max_size:
            raise TooLarge(f"uploads are limited to {self.max_size} bytes")
        acct = await self.ctx.accounts.get_by_id(account_id)
        if acct is None or acct.used_bytes + length > acct.quota_bytes:
            raise QuotaExceeded("quota exceeded: the upload does not fit in the account's storage")
        name = check_name(metadata.get("filename") or metadata.get("name") or "upload")
        folder = await self.tree.makedirs(account_id, metadata.get("folder") or metadata.get("path") or "/")
        media_type = (metadata.get("filetype") or metadata.get("type") or "").strip()[:255] or guess_type(name)
        upload_id = secrets.token_urlsafe(24)
        now = time.time()
        fd = os.open(self._path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        async with self.ctx.sessions.begin() as s:
            u = TusUpload(
                id=upload_id,
                account_id=account_id,
                folder_id=folder.id,
                name=name,
                media_type=media_type,
                length=length,
                offset=0,
                created_at=now,
                expires_at=now + self.expiry_seconds,
            )
            s.add(u)
            await s.flush()
            info = _info(u)
        if length == 0:
            return await self._complete(account_id, upload_id)
        return info

    async def _row(self, account_id: int, upload_id: str) -> TusUpload:
        async with self.ctx.sessions() as s:
            u = await s.get(TusUpload, upload_id)
        if u is None or u.account_id != account_id:
            raise NotFound("no such upload")
        if u.expires_at < time.time():
            raise Gone("the upload expired")
        return u

    async def get(self, account_id: int, upload_id: str) -> UploadInfo:
        return _info(await self._row(account_id, upload_id))

    async def append(
        self,
        account_id: int,
        upload_id: str,
        offset: int,
        body: AsyncIterable[bytes],
        checksum: tuple[str, bytes] | None = None,
    ) -> UploadInfo:
        """Write the PATCH body at ``offset``; fsync; commit the new offset; complete at the end.

        Without a checksum, bytes received before a client disconnects are kept (tus core: the
        client resumes from HEAD's offset). With one, a cut or mismatching chunk is discarded.
        """
        lock = self._locks.setdefault(upload_id, asyncio.Lock())
        async with lock:
            try:
                u = await self._row(account_id, upload_id)
                if u.node_id is not None or u.offset >= u.length:
                    raise OffsetMismatch("the upload is complete")
                if offset != u.offset:
                    raise OffsetMismatch(f"Upload-Offset {offset} differs from the server's {u.offset}")
                new_offset = await self._write(u, body, checksum)
                async with self.ctx.sessions.begin() as s:
                    res = await s.execute(
                        update(TusUpload)
                        .where(TusUpload.id == upload_id, TusUpload.offset == u.offset)
                        .values(offset=new_offset)
                    )
                    if res.rowcount != 1:
                        raise OffsetMismatch("the upload was changed concurrently")
                if new_offset == u.length:
                    return await self._complete(account_id, upload_id)
                return UploadInfo(u.id, u.length, new_offset, u.expires_at, u.name, None)
            finally:
                if not getattr(lock, "_waiters", None):
                    self._locks.pop(upload_id, None)

    async def _write(self, u: TusUpload, body: AsyncIterable[bytes], checksum) -> int:
        path = self._path(u.id)
        h = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        fd = await asyncio.to_thread(os.open, path, os.O_WRONLY)
        pos = u.offset
        ok = False
        try:
            os.lseek(fd, pos, os.SEEK_SET)
            os.ftruncate(fd, pos)  # drop any tail a cut PATCH left behind uncommitted
            try:
                async for chunk in body:
                    if pos + len(chunk) > u.length:
                        raise BadRequest("the body goes past Upload-Length")
                    if h is not None:
                        h.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        n = await asyncio.to_thread(os.write, fd, view) if len(view) > 65536 else os.write(fd, view)
                        view = view[n:]
                    pos += len(chunk)
            except (BadRequest, asyncio.CancelledError):
                raise
            except Exception:  # the client went away mid-body: keep what came, unless it must be verified
                if h is not None:
                    raise
            if h is not None and h.digest() != checksum[1]:
                raise ChecksumMismatch("the chunk's checksum does not match")
            await asyncio.to_thread(os.fsync, fd)
            ok = True
        finally:
            if not ok:
                try:
                    os.ftruncate(fd, u.offset)
                except OSError:
                    pass
            os.close(fd)
        return pos

    async def _complete(self, account_id: int, upload_id: str) -> UploadInfo:
        async with self.ctx.sessions() as s:
            u = await s.get(TusUpload, upload_id)
        path = self._path(upload_id)

        async def chunks():
            f = await asyncio.to_thread(open, path, "rb", buffering=0)
            try:
                while data := await asyncio.to_thread(f.read, SPOOL_CHUNK):
                    yield data
            finally:
                f.close()

        w = await self.ctx.blobs.writer()
        try:
            async for data in chunks():
                await w.write(data)
            if w.size != u.length:
                raise FilesError("spooled upload is shorter than its length")
            ref = await w.commit()
        except BaseException:
            await w.abort()
            raise
        try:
            node, _ = await self.tree.put_file(account_id, u.folder_id, u.name, ref, u.media_type)
        except FilesError:
            await self.terminate(account_id, upload_id)
            raise
        async with self.ctx.sessions.begin() as s:
            await s.execute(update(TusUpload).where(TusUpload.id == upload_id).values(node_id=node.id, offset=u.length))
        path.unlink(missing_ok=True)
        self.ctx.metrics.upload("tus", u.length)
        return UploadInfo(u.id, u.length, u.length, u.expires_at, u.name, node.id)

    async def terminate(self, account_id: int, upload_id: str) -> None:
        async with self.ctx.sessions.begin() as s:
            u = await s.get(TusUpload, upload_id)
            if u is None or u.account_id != account_id:
                raise NotFound("no such upload")
            await s.delete(u)
        self._path(upload_id).unlink(missing_ok=True)

    async def expire(self, now: float | None = None) -> int:
        """Remove expired uploads and their spool files. Returns how many."""
        now = now or time.time()
        async with self.ctx.sessions.begin() as s:
            ids = list(await s.scalars(select(TusUpload.id).where(TusUpload.expires_at < now)))
            if ids:
                await s.execute(delete(TusUpload).where(TusUpload.id.in_(ids)))
        for i in ids:
            self._path(i).unlink(missing_ok=True)
        return len(ids)
