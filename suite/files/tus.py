"""Resumable uploads, tus 1.0 (https://tus.io/protocols/resumable-upload): the store side.

The HTTP edge (suite.gateway.files.tus) parses headers into calls here. Partial bytes live in
``<spool_dir>/tus/<id>``; every PATCH is fsynced and its new offset committed before the client is
answered, so an acknowledged offset survives a crash. The body is written once: pieces are gathered
into blocks that a worker thread hashes (SHA-256 of the whole upload, carried from PATCH to PATCH;
rebuilt from the file after a restart) and writes while the next block arrives, the disk's
write-back started as it goes; the last block's write and the fsync are one thread hop.

A PATCH holds an exclusive ``flock`` on the spool file from before it reads the upload's offset until
that offset's successor is committed, so PATCHes of one upload in different worker processes never
interleave: a second one meanwhile gets 423 (tus-js-client retries it after a HEAD), one at a stale
offset 409, and neither touches the file. The upload's row is read and its offset advanced with plain
SQL on the driver (``db.raw``: a read on the event loop, the UPDATE in the group commit), not the ORM.

When the last byte arrives the spool file — fsynced, its digest known — is renamed into the blob store (``BlobStore.put_file``; streamed in only on S3 / the storage network)
and becomes a file node; the client's final 204 comes only after that commit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from suite.storage import db
from suite.storage.blobs import start_writeback

CHECKSUM_ALGORITHMS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1, "md5": hashlib.md5}
BLOCK = 8 * 1024 * 1024  # bytes gathered from the body per worker-thread write (one hop per block)
MAX_PIECES = 512  # ... or this many pieces, whichever comes first (writev's IOV_MAX is 1024)
WRITEBACK = BLOCK  # start the disk's write-back every this many bytes: a PATCH's fsync finds at most this much left


class Gone(FilesError):
    """The upload expired (tus expiration extension: 410 or 404)."""


class OffsetMismatch(FilesError):
    """Upload-Offset differs from the stored offset (tus core: 409)."""


class Locked(FilesError):
    """Another request (in another worker process) is writing this upload (423, as tusd answers)."""


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


_ROW = 'SELECT account_id, length, "offset", expires_at, name, node_id FROM tus_uploads WHERE id = ?'
# one statement advances the offset, and only from the offset this PATCH started at
_ADVANCE = 'UPDATE tus_uploads SET "offset" = ? WHERE id = ? AND "offset" = ?'


def _hash_file(path: Path, length: int) -> Any:
    """SHA-256 of the first ``length`` bytes of ``path`` (after a restart, or a PATCH handled by
    another process: the hash carried from PATCH to PATCH is rebuilt from the acknowledged bytes)."""
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        left = length
        while left > 0:
            data = f.read(min(BLOCK, left))
            if not data:
                raise FilesError("the upload's spool file is shorter than its offset")
            h.update(data)
            left -= len(data)
    return h


class _Sink:
    """The worker-thread side of one PATCH: hash and write whole blocks at the file's position
    (hashlib and writev release the GIL, so the event loop receives the next block meanwhile)."""

    def __init__(self, fd: int, pos: int, hashes: list[Any]) -> None:
        self.fd, self.pos, self.flushed, self.hashes = fd, pos, pos, hashes

    def put(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            for h in self.hashes:
                h.update(piece)
        views = [memoryview(p) for p in pieces]
        while views:
            n = os.pwritev(self.fd, views, self.pos)
            self.pos += n
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if n:
                views[0] = views[0][n:]
        if self.pos - self.flushed >= WRITEBACK:
            start_writeback(self.fd, self.flushed, self.pos - self.flushed)
            self.flushed = self.pos

    def finish(self, pieces: list[bytes]) -> None:
        """The last pieces and the fsync in one hop (a small PATCH costs one thread hop in all)."""
        if pieces:
            self.put(pieces)
        os.fsync(self.fd)


class TusStore:
    def __init__(self, ctx, tree: FileTree, *, max_size: int, expiry_seconds: float) -> None:
        self.ctx = ctx
        self.tree = tree
        self.max_size = max_size
        self.expiry_seconds = expiry_seconds
        self.dir = Path(ctx.settings.spool_dir) / "tus"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, asyncio.Lock] = {}
        # upload id -> (offset, SHA-256 of the bytes before it), kept between PATCHes of one process
        self._hashes: dict[str, tuple[int, Any]] = {}

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

    async def _row(self, account_id: int, upload_id: str) -> UploadInfo:
        async with db.raw(self.ctx.engine).read() as c:
            row = await c.one(_ROW, upload_id)
        if row is None or row[0] != account_id:
            raise NotFound("no such upload")
        if row[3] < time.time():
            raise Gone("the upload expired")
        return UploadInfo(upload_id, row[1], row[2], row[3], row[4], row[5])

    async def get(self, account_id: int, upload_id: str) -> UploadInfo:
        return await self._row(account_id, upload_id)

    def _open_locked(self, upload_id: str) -> int | None:
        """The spool file, open for writing under an exclusive flock (held until it is closed);
        None when there is no spool file (no such upload, or it is complete)."""
        try:
            fd = os.open(self._path(upload_id), os.O_WRONLY)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Locked("another request is writing this upload; ask HEAD for the offset and resume") from None
        except BaseException:
            os.close(fd)
            raise
        return fd

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
        The spool file's flock is taken before the offset is read and released after the new one
        is committed: the offset read is the one every process sees, and no other process writes
        meanwhile (PATCHes of one process wait for each other on an asyncio lock instead).
        """
        lock = self._locks.setdefault(upload_id, asyncio.Lock())
        async with lock:
            try:
                fd = self._open_locked(upload_id)
                if fd is None:
                    u = await self._row(account_id, upload_id)  # NotFound / Gone
                    if u.node_id is not None:
                        raise OffsetMismatch("the upload is complete")
                    raise NotFound("the upload's bytes are gone")
                try:
                    u = await self._row(account_id, upload_id)
                    if u.node_id is not None or u.offset >= u.length:
                        raise OffsetMismatch("the upload is complete")
                    if offset != u.offset:
                        raise OffsetMismatch(f"Upload-Offset {offset} differs from the server's {u.offset}")
                    content = await self._content_hash(u.id, u.offset)
                    new_offset = await self._write(fd, u, body, checksum, content)
                    async with db.raw(self.ctx.engine).write() as c:
                        if await c.run(_ADVANCE, new_offset, upload_id, u.offset) != 1:
                            raise OffsetMismatch("the upload was changed concurrently")
                finally:
                    os.close(fd)  # releases the flock: the new offset is committed (or nothing changed)
                if new_offset == u.length:
                    return await self._complete(account_id, upload_id, content.hexdigest())
                self._hashes[upload_id] = (new_offset, content)
                return UploadInfo(u.id, u.length, new_offset, u.expires_at, u.name, None)
            finally:
                if not getattr(lock, "_waiters", None):
                    self._locks.pop(upload_id, None)

    async def _content_hash(self, upload_id: str, offset: int) -> Any:
        """The SHA-256 of the upload's first ``offset`` bytes: carried over from the last PATCH when
        this process handled it, else rebuilt from the spool file (a worker thread)."""
        cached = self._hashes.pop(upload_id, None)
        if cached is not None and cached[0] == offset:
            return cached[1]
        return await asyncio.to_thread(_hash_file, self._path(upload_id), offset)

    async def _write(self, fd: int, u: UploadInfo, body: AsyncIterable[bytes], checksum, content: Any) -> int:
        """Append the body at the upload's offset to ``fd``: blocks of up to ``BLOCK`` bytes go to a
        worker thread (hash + write) while the next one is received, at most one block in flight, no
        copy of the pieces; the last block and the fsync in one hop. Returns the new offset."""
        h = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        sink = _Sink(fd, u.offset, [content] if h is None else [content, h])
        loop = asyncio.get_running_loop()
        pending: asyncio.Future | None = None
        ok = False
        try:
            os.ftruncate(fd, u.offset)  # drop any tail a cut PATCH left behind uncommitted
            pieces: list[bytes] = []
            gathered = 0
            received = u.offset
            try:
                async for chunk in body:
                    if not chunk:
                        continue
                    received += len(chunk)
                    if received > u.length:
                        raise BadRequest("the body goes past Upload-Length")
                    pieces.append(chunk)
                    gathered += len(chunk)
                    if gathered >= BLOCK or len(pieces) >= MAX_PIECES:
                        if pending is not None:
                            await pending
                        pending = loop.run_in_executor(None, sink.put, pieces)
                        pieces, gathered = [], 0
            except (BadRequest, asyncio.CancelledError):
                raise
            except Exception:  # the client went away mid-body: keep what came, unless it must be verified
                if h is not None:
                    raise
            if pending is not None:
                await pending
                pending = None
            pending = loop.run_in_executor(None, sink.finish, pieces)
            await pending
            pending = None
            if h is not None and h.digest() != checksum[1]:
                raise ChecksumMismatch("the chunk's checksum does not match")
            ok = True
        finally:
            if pending is not None:
                # Never cancel a block write: its thread still uses the descriptor the caller closes.
                await asyncio.wait({pending})
            if not ok:
                try:
                    os.ftruncate(fd, u.offset)
                except OSError:
                    pass
        return sink.pos

    async def _complete(self, account_id: int, upload_id: str, digest: str | None = None) -> UploadInfo:
        """The whole upload is in the (fsynced) spool file: it becomes a blob under ``digest`` (renamed
        on disk, not copied) and a file node; ``digest`` is computed here when not carried over."""
        async with self.ctx.sessions() as s:
            u = await s.get(TusUpload, upload_id)
        path = self._path(upload_id)
        self._hashes.pop(upload_id, None)
        if await asyncio.to_thread(lambda: os.stat(path).st_size) != u.length:
            raise FilesError("spooled upload is shorter than its length")
        if digest is None:
            digest = (await asyncio.to_thread(_hash_file, path, u.length)).hexdigest()
        ref = await self.ctx.blobs.put_file(path, digest)
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
        self._hashes.pop(upload_id, None)
        self._path(upload_id).unlink(missing_ok=True)

    async def expire(self, now: float | None = None) -> int:
        """Remove expired uploads and their spool files. Returns how many."""
        now = now or time.time()
        async with self.ctx.sessions.begin() as s:
            ids = list(await s.scalars(select(TusUpload.id).where(TusUpload.expires_at < now)))
            if ids:
                await s.execute(delete(TusUpload).where(TusUpload.id.in_(ids)))
        for i in ids:
            self._hashes.pop(i, None)
            self._path(i).unlink(missing_ok=True)
        return len(ids)
