"""Content-addressed blob store: SHA-256 names, streaming reads and writes, reference counts.

Two layers:
- a ``BlobBackend`` keeps bytes under their digest (``DiskBackend`` here, ``S3Backend`` in s3.py) and promises
  that a blob is either absent or complete: writers go to a temporary object that becomes visible
  under its digest only once it is whole and durable;
- ``BlobStore`` adds reference counts in the SQL ``blobs`` table, taken and dropped inside the
  caller's transaction, so a row that points at a blob and the count move together.

Durability (mox store/account.go): write the temp file, fsync it, rename it, fsync the directory,
*then* the caller commits its row, *then* it answers the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import hashlib
import mmap
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from suite.storage import db
from suite.storage.models import BlobRow

CHUNK = 256 * 1024
# Bytes per window of ``BlobBackend.windows`` on disk: bigger windows mean fewer thread hops and
# event-loop turns per byte; a download holds at most two (the one being sent, the one mapped ahead).
WINDOW = 4 * 1024 * 1024

Bytes = bytes | bytearray | memoryview
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BlobRef:
    digest: str  # hex SHA-256 of the content
    size: int


class BlobNotFound(LookupError):
    pass


class BlobUnavailable(OSError):
    """The blob store cannot take or serve a blob right now (e.g. fewer healthy storage providers than
    copies required); nothing was acknowledged — answer "try again later" (HTTP 503, SMTP 451)."""


@runtime_checkable
class BlobWriter(Protocol):
    """A blob being written: bytes in, then ``commit`` (durable, visible under its digest) or
    ``abort`` (nothing visible)."""

    size: int

    async def write(self, data: Bytes) -> None: ...
    async def commit(self) -> BlobRef: ...
    async def abort(self) -> None: ...


@runtime_checkable
class BlobBackend(Protocol):
    """Where blob bytes live: everything the blob store's callers need, on every backend (disk,
    S3). A blob is either absent or complete under its digest. Callers never ask which backend
    they have; the one question with a backend-dependent answer is :meth:`local_path`."""

    name: str

    async def open_writer(self) -> BlobWriter:
        """A streaming writer; memory stays bounded whatever the blob's size."""
        ...

    async def put_bytes(self, data: bytes) -> BlobRef:
        """Store ``data`` whole (durable when this returns), in as few hops as the backend can."""
        ...

    async def put_bytes_with(self, data: bytes, work: Callable[[bytes], T]) -> tuple[T, BlobRef]:
        """:meth:`put_bytes`, and ``work(data)`` — CPU work on the same bytes, such as parsing a
        message — run in a worker thread, in as few hops as the backend can: on disk one thread
        hop does both; on S3 the work runs in a thread, then the upload on the loop. Work that
        raises stores nothing and its exception propagates as is."""
        ...

    async def put_file(self, path: Path, digest: str) -> BlobRef:
        """Take the complete, fsynced file at ``path`` (its SHA-256 ``digest`` computed by the caller
        while writing it) as a blob; the file is gone afterwards. On disk it is renamed into place — no
        second copy — when it lies on the blob store's file system; elsewhere it is streamed in (and
        the digest checked)."""
        ...

    def read(
        self, digest: str, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> AsyncGenerator[bytes, None]:
        """Bytes [start, end) in pieces of at most ``chunk``; raises BlobNotFound."""
        ...

    def windows(
        self, digest: str, start: int, end: int, window: int = WINDOW
    ) -> AsyncGenerator[bytes | memoryview, None]:
        """Bytes [start, end) in large pieces for sending on a socket: memory-mapped windows loaded
        ahead in a thread on disk, a ranged streaming GET on S3. ``end`` is the recorded size (or
        a range's end): a blob shorter than that is an error, not a short answer."""
        ...

    async def size(self, digest: str) -> int | None: ...

    async def delete(self, digest: str, *, older_than: float | None = None) -> bool:
        """Delete a blob (only when not modified after ``older_than``); True when it was deleted."""
        ...

    def local_path(self, digest: str) -> Path | None:
        """The blob's file when the backend keeps it on a local file system (WebDAV hands it to
        WsgiDAV as a file), else None."""
        ...

    def list_digests(self) -> AsyncIterator[str]: ...

    async def presign(self, digest: str, ttl: int, disposition: str, media_type: str) -> str | None:
        """A short-lived URL a client can GET the blob from directly (the provider's bandwidth
        serves the bytes), or None when the backend has none (disk)."""
        ...

    async def clean_tmp(self, older_than: float) -> int:
        """Remove what crashed writers left behind (never visible as blobs); returns the count."""
        ...

    async def close(self) -> None: ...


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a blob digest: {digest!r}")
    return digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_parents(folder: Path, root: Path) -> None:
    """Create ``folder`` (ab/cd under the root) and fsync the folders whose entries changed, so a
    new blob's path survives a power loss along with the blob."""
    if folder.is_dir():
        return
    new = []
    p = folder
    while p != root and not p.exists():
        new.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    for d in new:
        _fsync_dir(d.parent)


FILE_BLOCK = 8 * 1024 * 1024  # bytes per read when a file is streamed into a backend

_libc = ctypes.CDLL(None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)  # Linux; elsewhere the final fsync does it all
if _sync_file_range is not None:
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing [offset, offset+length) of ``fd`` to the disk without waiting (Linux
    sync_file_range(SYNC_FILE_RANGE_WRITE)): the disk works while more bytes arrive, so the fsync that
    makes a big write durable finds little left — the way ``dd conv=fdatasync`` gets its speed only
    when the writer is faster than the disk. Durability still comes from that fsync alone."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)


async def copy_file_in(backend: BlobBackend, path: Path, digest: str) -> BlobRef:
    """``BlobBackend.put_file`` for a backend that keeps no local files: stream ``path`` through a
    writer (large reads, one thread hop each), check the digest the caller computed, remove the file."""
    w = await backend.open_writer()
    try:
        f = await asyncio.to_thread(open, path, "rb", buffering=0)
        try:
            while data := await asyncio.to_thread(f.read, FILE_BLOCK):
                await w.write(data)
        finally:
            f.close()
        ref = await w.commit()
    except BaseException:
        await w.abort()
        raise
    if ref.digest != digest:
        raise OSError(f"{path} does not hash to {digest}")
    await asyncio.to_thread(path.unlink, True)
    return ref


def _work_then_put(backend: DiskBackend, data: bytes, work: Callable[[bytes], T]) -> tuple[T, BlobRef]:
    return work(data), backend.put_bytes_sync(data)


def _map_window(fd: int, offset: int, length: int) -> memoryview:
    """``length`` bytes of the file at ``offset``, mapped read-only and already resident
    (MAP_POPULATE reads them in here, in a worker thread, so the event loop never waits on the disk).
    The socket write then copies straight from the page cache: one copy per byte instead of two
    (read into a buffer, then send it). Blobs are immutable and never truncated, so the mapping
    cannot go short; the memoryview keeps it alive until the transport has sent it."""
    skip = offset % mmap.ALLOCATIONGRANULARITY
    m = mmap.mmap(
        fd,
        length + skip,
        flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0),  # MAP_POPULATE: Linux only
        prot=mmap.PROT_READ,
        offset=offset - skip,
    )
    view = memoryview(m)
    return view[skip:] if skip else view


class _DiskWriter:
    """Writes to ``tmp/<random>``; ``commit`` fsyncs and renames to ``ab/cd/<digest>``."""

    def __init__(self, backend: DiskBackend, tmp: Path, fd: int) -> None:
        self._backend = backend
        self._tmp = tmp
        self._fd = fd
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    def _write_all(self, data: Bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    async def write(self, data: Bytes) -> None:
        if not data:
            return
        self._hash.update(data)
        self.size += len(data)
        if len(data) < 16 * 1024:
            self._write_all(data)  # a small write to the page cache costs less than a thread hop
        else:
            await asyncio.to_thread(self._write_all, data)

    def _finish(self) -> BlobRef:
        digest = self._hash.hexdigest()
        os.fsync(self._fd)
        os.close(self._fd)
        final = self._backend._path(digest)
        if final.exists():
            # Same content stored already; refresh its age so a concurrent gc keeps it.
            os.unlink(self._tmp)
            os.utime(final)
        else:
            _make_parents(final.parent, self._backend.root)
            os.rename(self._tmp, final)
            _fsync_dir(final.parent)
        return BlobRef(digest, self.size)

    async def commit(self) -> BlobRef:
        if self._done:
            raise RuntimeError("blob writer used after commit/abort")
        self._done = True
        return await asyncio.to_thread(self._finish)

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        os.close(self._fd)
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    async def __aenter__(self) -> _DiskWriter:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.abort()


class DiskBackend:
    name = "disk"

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.tmp = self.root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    async def open_writer(self) -> _DiskWriter:
        tmp = self.tmp / f"{secrets.token_hex(16)}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return _DiskWriter(self, tmp, fd)

    def local_path(self, digest: str) -> Path | None:
        p = self._path(digest)
        return p if p.exists() else None

    async def put_bytes(self, data: bytes) -> BlobRef:
        return await asyncio.to_thread(self.put_bytes_sync, data)

    async def put_bytes_with(self, data: bytes, work: Callable[[bytes], T]) -> tuple[T, BlobRef]:
        return await asyncio.to_thread(_work_then_put, self, data, work)

    async def put_file(self, path: Path, digest: str) -> BlobRef:
        try:
            return await asyncio.to_thread(self._adopt, Path(path), digest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        return await copy_file_in(self, Path(path), digest)  # another file system: one copy

    def _adopt(self, path: Path, digest: str) -> BlobRef:
        """Rename a complete, fsynced file to its digest's path and fsync the folder (the caller's
        file is already durable; only its new name has to be)."""
        size = os.stat(path).st_size
        final = self._path(digest)
        if final.exists():
            os.unlink(path)
            os.utime(final)  # refresh its age so a concurrent gc keeps it
            return BlobRef(digest, size)
        _make_parents(final.parent, self.root)
        os.rename(path, final)
        _fsync_dir(final.parent)
        return BlobRef(digest, size)

    def put_bytes_sync(self, data: bytes) -> BlobRef:
        """Store ``data`` whole, in the caller's thread (one hop for the caller instead of one per
        chunk): hash, write, fsync, rename, fsync the directory. Content already stored is not
        written again — a blob at its final path is always complete and durable."""
        digest = hashlib.sha256(data).hexdigest()
        final = self._path(digest)
        if final.exists():
            os.utime(final)  # refresh its age so a concurrent gc keeps it
            return BlobRef(digest, len(data))
        tmp = self.tmp / f"{secrets.token_hex(16)}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.close(fd)
        _make_parents(final.parent, self.root)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        return BlobRef(digest, len(data))

    async def size(self, digest: str) -> int | None:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            return None

    async def read(
        self, digest: str, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> AsyncGenerator[bytes, None]:
        """Yield bytes [start, end) in chunks; memory stays at one chunk whatever the size."""
        path = self._path(digest)
        try:
            f = await asyncio.to_thread(open, path, "rb", buffering=0)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        try:
            pos = start
            if start:
                f.seek(start)
            while end is None or pos < end:
                want = chunk if end is None else min(chunk, end - pos)
                data = await asyncio.to_thread(f.read, want)
                if not data:
                    break
                pos += len(data)
                yield data
        finally:
            f.close()

    async def windows(
        self, digest: str, start: int, end: int, window: int = WINDOW
    ) -> AsyncGenerator[bytes | memoryview, None]:
        """Bytes [start, end) of the blob file, one mapped window at a time, the next one mapped
        while the current one is being sent (one thread hop per window)."""
        path = self._path(digest)
        loop = asyncio.get_running_loop()
        try:
            fd = await loop.run_in_executor(None, os.open, path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFound(digest) from None
        pending = None
        try:
            if os.fstat(fd).st_size < end:
                raise OSError(f"blob {digest} is shorter than its recorded size")
            pos = start
            if pos < end:
                pending = loop.run_in_executor(None, _map_window, fd, pos, min(window, end - pos))
            while pending is not None:
                view = await pending
                pending = None
                pos += len(view)
                if pos < end:
                    pending = loop.run_in_executor(None, _map_window, fd, pos, min(window, end - pos))
                yield view
                del view
        finally:
            # A mapping stays valid after its descriptor is closed; a window still being mapped (the
            # client went away) needs the descriptor until it is done.
            if pending is not None and not pending.done():
                pending.add_done_callback(lambda _f: os.close(fd))
            else:
                os.close(fd)

    async def delete(self, digest: str, *, older_than: float | None = None) -> bool:
        path = self._path(digest)
        try:
            if older_than is not None and path.stat().st_mtime > older_than:
                return False
            os.unlink(path)
            return True
        except FileNotFoundError:
            return False

    async def presign(self, digest: str, ttl: int, disposition: str, media_type: str) -> str | None:
        return None  # served by us

    async def list_digests(self) -> AsyncIterator[str]:
        for first in sorted(self.root.iterdir()):
            if first.name == "tmp" or not first.is_dir():
                continue
            for second in sorted(first.iterdir()):
                for f in sorted(second.iterdir()):
                    yield f.name

    async def clean_tmp(self, older_than: float) -> int:
        return await asyncio.to_thread(self._clean_tmp, older_than)

    async def close(self) -> None:
        pass  # nothing held open between calls

    def _clean_tmp(self, older_than: float) -> int:
        """Remove temp files a crashed writer left behind (never visible as blobs)."""
        n = 0
        for f in self.tmp.iterdir():
            try:
                if f.stat().st_mtime < older_than:
                    f.unlink()
                    n += 1
            except FileNotFoundError:
                pass
        return n


if TYPE_CHECKING:  # mypy checks that the backend satisfies the protocol
    _disk_is_a_backend: type[BlobBackend] = DiskBackend


class BlobStore:
    """Blobs with SQL reference counts. Put, then ``ref`` inside the transaction that stores the row.

    ``ref`` / ``unref`` / ``ref_many`` / ``unref_many`` take the caller's transaction (an ORM session
    or a RawDB connection, see ``suite.storage.db.Tx``): the count moves with the row that points at
    the blob, in one statement and no round trip of its own. Several blobs are counted in digest
    order — the last step of the lock order (account row, the caller's rows, blob rows by digest)."""

    # A blob written but not yet referenced is safe from gc for this long.
    GRACE_SECONDS = 3600

    _REF_SQL = (
        "INSERT INTO blobs (digest, size, refcount, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (digest) DO UPDATE SET refcount = blobs.refcount + excluded.refcount"
    )
    _UNREF_SQL = "UPDATE blobs SET refcount = refcount - ? WHERE digest = ?"

    def __init__(self, backend: BlobBackend, sessions: async_sessionmaker[AsyncSession] | None = None) -> None:
        self.backend = backend
        self._sessions = sessions
        self.window = WINDOW  # bytes per piece of ``windows``

    async def writer(self) -> BlobWriter:
        return await self.backend.open_writer()

    async def put_with(self, data: bytes, work: Callable[[bytes], T]) -> tuple[T, BlobRef]:
        """Store ``data`` and run ``work(data)`` in a worker thread (see ``BlobBackend.put_bytes_with``)."""
        return await self.backend.put_bytes_with(data, work)

    async def put(self, data: Bytes | Iterable[bytes] | AsyncIterable[bytes]) -> BlobRef:
        if isinstance(data, (bytes, bytearray, memoryview)):
            return await self.backend.put_bytes(bytes(data))
        w = await self.backend.open_writer()
        try:
            if isinstance(data, AsyncIterable):
                async for chunk in data:
                    await w.write(chunk)
            else:
                for chunk in data:
                    await w.write(chunk)
            return await w.commit()
        except BaseException:
            await w.abort()
            raise

    async def put_file(self, path: Path, digest: str) -> BlobRef:
        """Take a complete, fsynced file whose SHA-256 the caller computed (see ``BlobBackend.put_file``)."""
        return await self.backend.put_file(path, _check_digest(digest))

    def read(
        self, digest: str, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> AsyncGenerator[bytes, None]:
        return self.backend.read(digest, start, end, chunk)

    def windows(self, digest: str, start: int, end: int) -> AsyncGenerator[bytes | memoryview, None]:
        """Bytes [start, end) for sending (see ``BlobBackend.windows``)."""
        return self.backend.windows(digest, start, end, self.window)

    async def read_bytes(self, digest: str, start: int = 0, end: int | None = None) -> bytes:
        parts = [c async for c in self.backend.read(digest, start, end)]
        return b"".join(parts)

    def local_path(self, digest: str) -> Path | None:
        return self.backend.local_path(digest)

    async def presign(self, digest: str, ttl: int, disposition: str, media_type: str) -> str | None:
        """A presigned URL of a provider holding the blob (see ``BlobBackend.presign``), or None."""
        return await self.backend.presign(digest, ttl, disposition, media_type)

    async def close(self) -> None:
        await self.backend.close()

    # ------------------------------------------------------------ reference counts
    @classmethod
    async def ref(cls, tx: db.Tx, blob: BlobRef, n: int = 1) -> None:
        """Take ``n`` references to ``blob`` in the caller's transaction."""
        c = await db.conn(tx)
        await c.run(cls._REF_SQL, blob.digest, blob.size, n, time.time())

    @classmethod
    async def ref_many(cls, tx: db.Tx, blobs: Iterable[BlobRef]) -> None:
        """One reference per item (a blob listed twice gets two), in digest order, one statement."""
        counts = Counter(blobs)
        if counts:
            c = await db.conn(tx)
            now = time.time()
            rows = [(b.digest, b.size, counts[b], now) for b in sorted(counts, key=lambda b: b.digest)]
            await c.many(cls._REF_SQL, rows)

    @classmethod
    async def unref(cls, tx: db.Tx, digest: str, n: int = 1) -> None:
        """Drop references; a blob at zero is deleted by ``gc`` after the grace period."""
        c = await db.conn(tx)
        await c.run(cls._UNREF_SQL, n, digest)

    @classmethod
    async def unref_many(cls, tx: db.Tx, digests: Iterable[str]) -> None:
        """Drop one reference per item (a digest listed twice loses two), in digest order, one statement."""
        counts = Counter(digests)
        if counts:
            c = await db.conn(tx)
            await c.many(cls._UNREF_SQL, [(counts[d], d) for d in sorted(counts)])

    async def refcount(self, digest: str) -> int:
        assert self._sessions is not None
        async with self._sessions() as s:
            return await s.scalar(select(BlobRow.refcount).where(BlobRow.digest == digest)) or 0

    async def gc(self, grace: float | None = None) -> int:
        """Delete unreferenced blobs whose files are older than the grace period. Returns the count."""
        assert self._sessions is not None
        cutoff = time.time() - (self.GRACE_SECONDS if grace is None else grace)
        removed = 0
        async with self._sessions() as s:
            zero = list(await s.scalars(select(BlobRow.digest).where(BlobRow.refcount <= 0)))
            known = set(await s.scalars(select(BlobRow.digest)))
        for digest in zero:
            async with self._sessions.begin() as s:
                c = await db.conn(s)
                if not await c.run("DELETE FROM blobs WHERE digest = ? AND refcount <= 0", digest):
                    continue
            if await self.backend.delete(digest, older_than=cutoff):
                removed += 1
        # Orphans: written but never referenced (a crash between put and commit).
        async for digest in self.backend.list_digests():
            if digest not in known and await self.backend.delete(digest, older_than=cutoff):
                removed += 1
        await self.backend.clean_tmp(cutoff)
        return removed


def make_backend(settings) -> BlobBackend:
    if settings.blob_backend == "disk":
        return DiskBackend(settings.blob_dir)
    if settings.blob_backend == "s3":
        from suite.storage.s3 import S3Backend

        return S3Backend.from_settings(settings)
    if settings.blob_backend == "network":
        from suite.storage.network import NetworkBackend

        return NetworkBackend.from_settings(settings)
    raise ValueError(f"unknown blob backend {settings.blob_backend!r} (have: disk, s3, network)")
