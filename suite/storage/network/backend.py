"""The storage network: the ``BlobBackend`` protocol over several independent S3 providers.

Each provider is an ``S3Backend`` (its own endpoint, bucket and keys). A blob's copies belong on the
providers ``placement.place(digest, …)`` names; where they actually are is recorded in
``blob_locations`` (digest, provider, state good/bad/pending).

Writes. The digest is known only at the end of a stream, so:
- a blob smaller than one part is kept in memory and put, in parallel, on its first ``replicas``
  providers in placement order;
- a larger one streams, in parallel, to ``replicas`` providers ranked by a random token (load still
  goes ∝ weight) as multipart uploads (memory: ``replicas × (concurrency + 1) × part_size``); the
  repair loop later moves the copies to the digest's placement.
A provider that fails mid-write is dropped; at commit, missing copies are made on the next providers
in the digest's placement order (copied from a copy that did complete). ``commit`` returns only when
``replicas`` copies are durable *and* their location rows are committed — in a transaction of their
own, before the caller's transaction (which takes the reference) commits. A crash between the two
leaves an unreferenced blob with location rows, which ``BlobStore.gc`` removes after the grace period
(``list_digests`` yields the digests of ``blob_locations``).

Fewer than ``replicas`` healthy providers: the write is REFUSED (``NetworkUnavailable``, an
``OSError``: SMTP answers 451, HTTP 503) — as Garage does — never accepted degraded. The copies that
were made are recorded and stay until gc; nothing acknowledged has fewer than ``replicas`` copies.

Reads go to the good copy with the lowest latency (EWMA of the time to first byte, per provider) and,
on an error or ``read_timeout`` without a byte, continue from the next copy at the same byte offset.
A full read is checked against the digest: small blobs (≤ ``VERIFY_BUFFER``) are verified before a
byte is handed out, so a corrupted copy is marked bad and the next copy answers; on a larger blob a
mismatch is detected at the end (the reader gets an error) and the copy is marked bad. Either way
the digest is queued for repair.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from suite.storage import db
from suite.storage.blobs import (
    CHUNK,
    WINDOW,
    BlobBackend,
    BlobNotFound,
    BlobRef,
    BlobUnavailable,
    BlobWriter,
    Bytes,
    T,
    _check_digest,
    copy_file_in,
    make_backend,
)
from suite.storage.network.placement import Place, allowed, place, ranked
from suite.storage.s3 import S3Backend

if TYPE_CHECKING:
    from suite.config import ProviderSettings, Settings

log = structlog.get_logger("suite.storage.network")

VERIFY_BUFFER = 4 * 1024**2  # full reads up to this size are verified before the first byte goes out
DOWN_SECONDS = 15.0  # a provider that failed is tried last for this long


class NetworkUnavailable(BlobUnavailable):
    """Fewer than ``replicas`` providers could take a write, or no copy could be read."""


class CorruptCopy(OSError):
    """A full read did not match the blob's digest."""


@dataclass
class Provider:
    name: str
    place: Place
    backend: S3Backend
    state: str = "active"
    conn: tuple[str, ...] = ()  # endpoint, bucket, keys, region: a change needs a new client
    ewma: float = 0.0  # seconds to first byte, smoothed
    write_ewma: float = 0.0  # seconds to put a small blob, smoothed
    down_until: float = 0.0
    failures: int = 0
    last_error: str = ""

    def up(self, now: float | None = None) -> bool:
        return (now or time.monotonic()) >= self.down_until

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        self.down_until = time.monotonic() + DOWN_SECONDS
        log.warning("storage.provider_failed", provider=self.name, error=self.last_error)

    def answered(self, seconds: float) -> None:
        self.ewma = seconds if self.ewma == 0 else 0.8 * self.ewma + 0.2 * seconds
        self.down_until = 0.0

    def wrote(self, seconds: float) -> None:
        self.write_ewma = seconds if self.write_ewma == 0 else 0.8 * self.write_ewma + 0.2 * seconds
        self.down_until = 0.0


def _conn(p: ProviderSettings) -> tuple[str, ...]:
    return (p.endpoint, p.bucket, p.access_key, p.secret_key, p.region)


def provider_from(p: ProviderSettings, settings: Settings) -> Provider:
    """A ``Provider`` (with its own S3 client) from its ``[[storage.providers]]`` entry."""
    return Provider(
        name=p.name,
        place=Place(p.name, p.weight, p.zone, p.state == "active"),
        state=p.state,
        conn=_conn(p),
        backend=S3Backend(
            p.bucket,
            endpoint=p.endpoint,
            access_key=p.access_key,
            secret_key=p.secret_key,
            region=p.region,
            part_size=settings.s3_part_size,
            max_concurrency=settings.s3_max_concurrency,
            retries=2,
            connect_timeout=min(5.0, settings.storage.read_timeout),
        ),
    )


class _NetWriter:
    """Hashes the stream once and gathers it into parts of ``part_size``; each part, one
    immutable ``bytes``, goes to every copy's multipart upload as is (one buffer for all copies:
    no copy of the bytes per copy). Below one part nothing is opened: ``commit`` puts the blob
    whole, like a small write."""

    def __init__(self, net: NetworkBackend) -> None:
        self._net = net
        self._hash = hashlib.sha256()
        self._pieces: list[bytes] = []  # the part being gathered
        self._gathered = 0
        self._opened = False
        self._live: list[tuple[Provider, Any]] = []
        self._done = False
        self.size = 0

    async def write(self, data: Bytes) -> None:
        if self._done:
            raise RuntimeError("blob writer used after commit/abort")
        if not data:
            return
        self._hash.update(data)
        self.size += len(data)
        # kept past this call: a caller's bytearray or view may change once it returns
        self._pieces.append(data if type(data) is bytes else bytes(data))
        self._gathered += len(data)
        if self._gathered >= self._net.part_size:
            part = self._take()
            if not self._opened:
                self._opened = True
                await self._open_streams()
            await self._fan(part)

    def _take(self) -> bytes:
        # one piece of a whole part (a caller writing in part-size chunks) is not copied
        part = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
        self._pieces, self._gathered = [], 0
        return part

    async def _open_streams(self) -> None:
        net = self._net
        order = net.write_order(secrets.token_hex(16))
        for p in order:
            if len(self._live) >= net.replicas:
                break
            try:
                # the stream is hashed once, here: the providers' writers take our digest
                self._live.append((p, await p.backend.open_writer(hashing=False)))
            except Exception as exc:
                p.failed(exc)
        if not self._live:
            raise NetworkUnavailable("no storage provider takes writes")

    async def _fan(self, data: bytes) -> None:
        """The same bytes to every live copy in parallel; a failing provider is dropped."""
        results = await asyncio.gather(*(w.write(data) for _, w in self._live), return_exceptions=True)
        keep = []
        for (p, w), r in zip(self._live, results, strict=True):
            if isinstance(r, BaseException):
                p.failed(r)
                asyncio.get_running_loop().create_task(_quiet_abort(w))
            else:
                keep.append((p, w))
        self._live = keep
        if not keep:
            raise NetworkUnavailable("every storage provider failed during the write")

    async def commit(self) -> BlobRef:
        if self._done:
            raise RuntimeError("blob writer used after commit/abort")
        self._done = True
        digest = self._hash.hexdigest()
        ref = BlobRef(digest, self.size)
        rest = self._take()
        if not self._opened:
            await self._net._put_small(ref, rest)
            return ref
        if rest:
            await self._fan(rest)
        results = await asyncio.gather(*(w.commit(digest) for _, w in self._live), return_exceptions=True)
        good: list[Provider] = []
        for (p, _), r in zip(self._live, results, strict=True):
            if isinstance(r, BaseException):
                p.failed(r)
            else:
                good.append(p)
        self._live = []
        await self._net._complete(ref, good, None)
        return ref

    async def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._pieces, self._gathered = [], 0
        live, self._live = self._live, []
        await asyncio.gather(*(_quiet_abort(w) for _, w in live))

    async def __aenter__(self) -> _NetWriter:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.abort()


async def _pipe(src: BlobBackend, digest: str, w: BlobWriter, throttle: Callable[[int], Any] | None) -> BlobRef:
    """Stream blob ``digest`` of ``src`` into writer ``w`` and commit it (abort on any failure)."""
    try:
        async for chunk in src.read(digest, chunk=1024**2):
            if throttle is not None:
                await throttle(len(chunk))
            await w.write(chunk)
        return await w.commit()
    except BaseException:
        await w.abort()
        raise


async def _quiet_abort(w: Any) -> None:
    with contextlib.suppress(Exception):
        await w.abort()


class NetworkBackend:
    name = "network"

    def __init__(
        self,
        providers: list[Provider],
        *,
        db_url: str,
        replicas: int = 2,
        exclude_zones: list[str] | None = None,
        read_timeout: float = 10.0,
        part_size: int = 8 * 1024**2,
        engine: AsyncEngine | None = None,
    ) -> None:
        if not providers:
            raise ValueError("the storage network needs at least one [[storage.providers]] entry")
        self.providers = {p.name: p for p in providers}
        self.replicas = replicas
        self.exclude_zones = list(exclude_zones or [])
        self.read_timeout = read_timeout
        self.part_size = part_size
        self._db_url = db_url
        self._engine = engine
        self._own_engine = engine is None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        # the backend a migration comes from (``storage.migrate_from``): read when no provider has
        # a blob, until ``suite storage migrate`` has copied everything and the setting is removed
        self.legacy: BlobBackend | None = None
        self.migrate_from = ""
        self._retired: list[Any] = []  # clients of providers removed by ``apply``
        self._pending: list[tuple[list[tuple], asyncio.Future[None]]] = []  # location rows to commit
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, engine: AsyncEngine | None = None) -> NetworkBackend:
        st = settings.storage
        net = cls(
            [provider_from(p, settings) for p in st.providers],
            db_url=settings.db_url,
            replicas=st.replicas,
            exclude_zones=st.exclude_zones,
            read_timeout=st.read_timeout,
            part_size=settings.s3_part_size,
            engine=engine,
        )
        net._set_legacy(settings)
        return net

    def _set_legacy(self, settings: Settings) -> None:
        source = settings.storage.migrate_from
        if source == self.migrate_from:
            return
        if self.legacy is not None:
            self._retired.append(self.legacy)
        self.legacy = make_backend(settings.model_copy(update={"blob_backend": source})) if source else None
        self.migrate_from = source

    def apply(self, settings: Settings) -> list[str]:
        """Take a new ``[[storage.providers]]`` list (and replicas, exclude_zones) in a running
        process: providers whose endpoint, bucket and keys are unchanged keep their client and
        latency figures; a removed provider's client is closed only at ``close`` (a read in
        progress may still use it). Returns what changed, one phrase per change."""
        st = settings.storage
        if not st.providers:
            raise ValueError("the storage network needs at least one [[storage.providers]] entry")
        new: dict[str, Provider] = {}
        changes: list[str] = []
        for ps in st.providers:
            old = self.providers.get(ps.name)
            if old is not None and old.conn == _conn(ps):
                place = Place(ps.name, ps.weight, ps.zone, ps.state == "active")
                if (place, ps.state) != (old.place, old.state):
                    changes.append(f"{ps.name}: {old.state} -> {ps.state}, weight {ps.weight:g}, zone {ps.zone!r}")
                old.place, old.state = place, ps.state
                new[ps.name] = old
                continue
            if old is not None:
                self._retired.append(old.backend)
            new[ps.name] = provider_from(ps, settings)
            changes.append(f"{ps.name}: {'reconnected' if old is not None else 'added'} ({ps.state})")
        for name in self.providers.keys() - new.keys():
            self._retired.append(self.providers[name].backend)
            changes.append(f"{name}: removed")
        if (st.replicas, list(st.exclude_zones)) != (self.replicas, self.exclude_zones):
            changes.append(f"replicas {st.replicas}, exclude_zones {list(st.exclude_zones)}")
        self.providers = new  # one assignment: a loop over the old dict finishes on the old one
        self.replicas = st.replicas
        self.exclude_zones = list(st.exclude_zones)
        self.read_timeout = st.read_timeout
        if st.migrate_from != self.migrate_from:
            changes.append(f"migrate_from {st.migrate_from or 'off'}")
            self._set_legacy(settings)
        return changes

    # ----- placement -----
    @property
    def places(self) -> list[Place]:
        return [p.place for p in self.providers.values()]

    def placement(self, digest: str) -> list[Provider]:
        """The providers a blob's copies belong on (pure: ``placement.place``)."""
        return [self.providers[p.name] for p in place(digest, self.places, self.replicas, self.exclude_zones)]

    def write_order(self, key: str) -> list[Provider]:
        """Writable providers for ``key`` in placement order, the ones that failed recently last."""
        order = [self.providers[p.name] for p in ranked(key, self.places, self.exclude_zones)]
        now = time.monotonic()
        return [p for p in order if p.up(now)] + [p for p in order if not p.up(now)]

    def may_hold(self) -> set[str]:
        return allowed(self.places, self.exclude_zones)

    # ----- database -----
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            if self._engine is None:
                self._engine = db.make_engine(self._db_url)
            self._sessions = db.session_factory(self._engine)
        return self._sessions

    def raw(self) -> db.RawDB:
        """Plain SQL for the hot paths (a read's location look-up, the writers' group commit): on
        SQLite a statement on the loop's own connection instead of an ORM session and a thread hop
        per statement; asyncpg directly on PostgreSQL."""
        self.sessions()
        assert self._engine is not None
        return db.raw(self._engine)

    async def locations(self, digest: str) -> dict[str, str]:
        """provider → state of the blob's recorded copies."""
        return (await self._located(digest))[0]

    async def _located(self, digest: str) -> tuple[dict[str, str], int | None]:
        """The recorded copies and the blob's size (None: no row), in one query."""
        async with self.raw().read() as c:
            rows = await c.all("SELECT provider, state, size FROM blob_locations WHERE digest = ?", digest)
        return {r[0]: r[1] for r in rows}, max((int(r[2]) for r in rows), default=None)

    async def record(self, digest: str, size: int, providers: list[str], state: str = "good") -> None:
        """Commit location rows; returns once they are committed. Rows of writers running at the
        same time share one transaction (group commit): one commit per batch, not per blob."""
        if not providers:
            return
        now = time.time()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(([(digest, p, state, size, now) for p in sorted(providers)], fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        await asyncio.shield(fut)

    _RECORD_SQL = (
        "INSERT INTO blob_locations (digest, provider, state, size, updated_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (digest, provider) DO UPDATE SET state = excluded.state, size = excluded.size, "
        "updated_at = excluded.updated_at"
    )

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            # one row per (digest, provider), the last word wins; sorted: one lock order everywhere
            rows = {(r[0], r[1]): r for rows, _ in batch for r in rows}
            try:
                async with self.raw().write() as c:
                    await c.many(self._RECORD_SQL, [rows[k] for k in sorted(rows)])
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def forget(self, digest: str, provider: str) -> None:
        async with self.sessions().begin() as s:
            c = await db.conn(s)
            await c.run("DELETE FROM blob_locations WHERE digest = ? AND provider = ?", digest, provider)

    async def mark_bad(self, digest: str, provider: str, reason: str) -> None:
        """A copy failed its digest (or vanished): never read again; repair re-copies it."""
        log.warning("storage.copy_bad", digest=digest, provider=provider, reason=reason)
        async with self.sessions().begin() as s:
            c = await db.conn(s)
            await c.run(
                "UPDATE blob_locations SET state = 'bad', updated_at = ? WHERE digest = ? AND provider = ?",
                time.time(),
                digest,
                provider,
            )
        await self.enqueue(digest, reason)

    async def enqueue(self, digest: str, reason: str, due: float | None = None) -> None:
        """Queue ``digest`` for the repair loop (idempotent; an earlier due time wins)."""
        sql = (
            "INSERT INTO blob_repairs (digest, reason, due_at, attempts, last_error) VALUES (?, ?, ?, 0, '') "
            "ON CONFLICT (digest) DO UPDATE SET due_at = "
            "CASE WHEN excluded.due_at < blob_repairs.due_at THEN excluded.due_at ELSE blob_repairs.due_at END"
        )
        try:
            async with self.sessions().begin() as s:
                c = await db.conn(s)
                await c.run(sql, digest, reason[:32], time.time() if due is None else due)
        except Exception:  # the read that noticed must not fail for this; the sweep finds it again
            log.exception("storage.enqueue_failed", digest=digest)

    # ----- writes -----
    async def _put_small(self, ref: BlobRef, data: bytes) -> None:
        order = self.write_order(ref.digest)
        good: list[Provider] = []
        tried = 0
        while len(good) < self.replicas and tried < len(order):
            batch = order[tried : tried + self.replicas - len(good)]
            tried += len(batch)
            results = await asyncio.gather(
                *(self._timed_put(p, ref.digest, data) for p in batch), return_exceptions=True
            )
            for p, r in zip(batch, results, strict=True):
                if isinstance(r, BaseException):
                    p.failed(r)
                else:
                    good.append(p)
        await self._complete(ref, good, data)

    @staticmethod
    async def _timed_put(p: Provider, digest: str, data: bytes) -> None:
        t0 = time.monotonic()
        await p.backend.put_known(digest, data)
        p.wrote(time.monotonic() - t0)

    async def _complete(self, ref: BlobRef, good: list[Provider], data: bytes | None) -> None:
        """Top up to ``replicas`` copies in placement order, record them, or refuse."""
        if good and len(good) < self.replicas:
            for p in self.write_order(ref.digest):
                if len(good) >= self.replicas:
                    break
                if p in good:
                    continue
                try:
                    if data is not None:
                        await self._timed_put(p, ref.digest, data)
                    else:
                        await self.copy(ref.digest, good[0], p)
                    good.append(p)
                except Exception as exc:
                    p.failed(exc)
        await self.record(ref.digest, ref.size, [p.name for p in good])
        if len(good) < self.replicas:
            raise NetworkUnavailable(
                f"only {len(good)} of {self.replicas} storage providers took the blob; write refused"
            )

    async def copy(
        self, digest: str, src: Provider, dst: Provider, throttle: Callable[[int], Any] | None = None
    ) -> int:
        """Stream the copy on ``src`` to ``dst``; the bytes are checked against the digest on the
        way (a mismatch marks the source bad and stores nothing). Returns the bytes copied."""
        got = await _pipe(src.backend, digest, await dst.backend.open_writer(), throttle)
        if got.digest != digest:
            with contextlib.suppress(Exception):
                await dst.backend.delete(got.digest)
            await self.mark_bad(digest, src.name, "copy-mismatch")
            raise CorruptCopy(f"copy of {digest} on {src.name} does not match its digest")
        return got.size

    async def take_from_legacy(self, digest: str, throttle: Callable[[int], Any] | None = None) -> int:
        """Copy a blob of the backend being migrated from (``legacy``) into the network — as a
        write, so ``replicas`` copies and their rows exist when this returns; checked against the
        digest on the way. Returns the bytes copied."""
        if self.legacy is None:
            raise BlobNotFound(digest)
        ref = await _pipe(self.legacy, digest, await self.open_writer(), throttle)
        if ref.digest != digest:
            raise CorruptCopy(f"blob {digest} on the {self.legacy.name} backend does not match its digest")
        return ref.size

    async def open_writer(self) -> _NetWriter:
        return _NetWriter(self)

    async def put_bytes(self, data: bytes) -> BlobRef:
        ref = BlobRef(hashlib.sha256(data).hexdigest(), len(data))
        await self._put_small(ref, data)
        return ref

    async def put_bytes_with(self, data: bytes, work: Callable[[bytes], T]) -> tuple[T, BlobRef]:
        result = await asyncio.to_thread(work, data)
        return result, await self.put_bytes(data)

    async def put_file(self, path: Path, digest: str) -> BlobRef:
        return await copy_file_in(self, path, digest)

    # ----- reads -----
    async def read_order(self, digest: str) -> list[Provider]:
        """Good copies, fastest first (providers that failed recently last), then the other
        providers (a copy a crash left unrecorded, or a migrated install)."""
        return self._read_order(digest, await self.locations(digest))

    def _read_order(self, digest: str, locs: dict[str, str]) -> list[Provider]:
        now = time.monotonic()
        good = [self.providers[n] for n, st in locs.items() if st == "good" and n in self.providers]
        good.sort(key=lambda p: (not p.up(now), p.ewma))
        rest = [self.providers[p.name] for p in ranked(digest, self.places, ())]
        rest += [p for p in self.providers.values() if p not in rest]
        return good + [p for p in rest if p not in good and locs.get(p.name) != "bad"]

    async def _size_hint(self, digest: str) -> int | None:
        return (await self._located(digest))[1]

    def read(
        self, digest: str, start: int = 0, end: int | None = None, chunk: int = CHUNK
    ) -> AsyncGenerator[bytes, None]:
        return self._read(digest, start, end, chunk, None)

    async def _read(
        self,
        digest: str,
        start: int,
        end: int | None,
        chunk: int,
        located: tuple[dict[str, str], int | None] | None,
        most: int = 0,
    ) -> AsyncGenerator[bytes, None]:
        """``read``; ``located`` is the blob's ``_located`` answer when the caller already has it.
        With ``most`` (``windows``), pieces are what the connection holds, up to ``most`` bytes
        (``S3Backend.pieces``: no re-chunking copies) instead of ``chunk``-sized ones."""
        _check_digest(digest)
        locs, hint = located if located is not None else await self._located(digest)
        if self.legacy is not None and "good" not in locs.values():
            # a migration in progress: the blob is (still) only on the old backend
            sent = False
            try:
                async for data in self.legacy.read(digest, start, end, chunk):
                    sent = True
                    yield data
                return
            except BlobNotFound:
                if sent:
                    raise
        order = self._read_order(digest, locs)
        full = start == 0 and end is None
        if full:
            if hint is not None and hint <= VERIFY_BUFFER:
                yield await self._read_verified(digest, order, chunk, hint)
                return
        hasher = hashlib.sha256() if full else None
        pos = start
        sources: list[Provider] = []
        missing = 0
        last: BaseException | None = None
        for p in order:
            if end is not None and pos >= end and sources:
                return
            t0 = time.monotonic()
            gen = p.backend.pieces(digest, pos, end, most) if most else p.backend.read(digest, pos, end, chunk)
            first = True
            try:
                while True:
                    # a timer per piece rather than ``wait_for``'s task per piece (and the extra
                    # loop turn to wake it); it never spans the ``yield``: a slow consumer is not
                    # a slow provider
                    try:
                        async with asyncio.timeout(self.read_timeout):
                            data = await anext(gen)
                    except StopAsyncIteration:
                        break
                    if first:
                        p.answered(time.monotonic() - t0)
                        first = False
                        sources.append(p)
                    pos += len(data)
                    if hasher is not None:
                        hasher.update(data)
                        if pos == hint and hasher.hexdigest() != digest:
                            # the last piece waits for the check: a bad copy fails the stream
                            # short of its end, so an HTTP client sees an incomplete body
                            break
                    yield data
            except BlobNotFound:
                missing += 1
                continue
            except (Exception, TimeoutError) as exc:
                p.failed(exc)
                last = exc
                continue
            finally:
                with contextlib.suppress(Exception):
                    await gen.aclose()
            if first:
                sources.append(p)  # an empty range or an empty blob
            if hasher is not None and hasher.hexdigest() != digest:
                if len(sources) == 1:
                    await self.mark_bad(digest, p.name, "read-mismatch")
                else:
                    await self.enqueue(digest, "verify")
                raise CorruptCopy(f"blob {digest} did not match its digest on {p.name}")
            return
        if not sources and missing and last is None:
            raise BlobNotFound(digest)
        raise NetworkUnavailable(f"no provider could serve blob {digest} from byte {pos}: {last}")

    async def _read_verified(self, digest: str, order: list[Provider], chunk: int, size: int) -> bytes:
        """A small blob read whole and checked before anything is handed out; a bad copy is marked
        and the next copy answers."""
        missing = 0
        last: BaseException | None = None
        for p in order:
            t0 = time.monotonic()
            try:
                # a whole small blob: allow read_timeout per MiB (a slow link is not a dead provider)
                limit = self.read_timeout * (1 + size // 1024**2)
                async with asyncio.timeout(limit):
                    data = await self._slurp(p, digest, chunk)
            except BlobNotFound:
                missing += 1
                continue
            except (Exception, TimeoutError) as exc:
                p.failed(exc)
                last = exc
                continue
            p.answered(time.monotonic() - t0)
            if hashlib.sha256(data).hexdigest() != digest:
                await self.mark_bad(digest, p.name, "read-mismatch")
                continue
            return data
        if missing and last is None:
            raise BlobNotFound(digest)
        raise NetworkUnavailable(f"no provider could serve blob {digest}: {last}")

    @staticmethod
    async def _slurp(p: Provider, digest: str, chunk: int) -> bytes:
        return b"".join([c async for c in p.backend.read(digest, 0, None, max(chunk, 1024**2))])

    async def windows(
        self, digest: str, start: int, end: int, window: int = WINDOW
    ) -> AsyncGenerator[bytes | memoryview, None]:
        pos = start
        # A full-range window read is a full read: verified like ``read`` (end is the recorded size).
        # One look-up of the location rows serves both (they hold the size).
        located = await self._located(_check_digest(digest))
        size = located[1] if start == 0 else None
        async for data in self._read(digest, start, None if size == end else end, CHUNK, located, window):
            pos += len(data)
            yield data
        if pos < end:
            raise OSError(f"blob {digest} is shorter than its recorded size")

    async def size(self, digest: str) -> int | None:
        hint = await self._size_hint(digest)
        if hint is not None:
            return hint
        for p in await self.read_order(digest):
            try:
                n = await p.backend.size(digest)
            except Exception as exc:
                p.failed(exc)
                continue
            if n is not None:
                return n
        return await self.legacy.size(digest) if self.legacy is not None else None

    # ----- deletion, listing -----
    async def delete(self, digest: str, *, older_than: float | None = None) -> bool:
        """Delete every copy (on every provider, recorded or not). A provider that cannot be reached
        keeps its location row, so the next gc (orphan pass over ``list_digests``) retries it."""
        _check_digest(digest)
        deleted = False
        for p in self.providers.values():
            try:
                gone = await p.backend.delete(digest, older_than=older_than)
            except Exception as exc:
                p.failed(exc)
                continue
            if gone or await p.backend.size(digest) is None:
                deleted = deleted or gone
                await self.forget(digest, p.name)
        if self.legacy is not None:
            with contextlib.suppress(Exception):
                deleted = await self.legacy.delete(digest, older_than=older_than) or deleted
        return deleted

    async def list_digests(self) -> AsyncIterator[str]:
        seen: set[str] = set()
        async with self.sessions()() as s:
            c = await db.conn(s)
            rows = await c.all("SELECT DISTINCT digest FROM blob_locations")
        for (d,) in rows:
            seen.add(d)
            yield d
        for p in self.providers.values():
            try:
                async for d in p.backend.list_digests():
                    if d not in seen:
                        seen.add(d)
                        yield d
            except Exception as exc:
                p.failed(exc)

    async def clean_tmp(self, older_than: float) -> int:
        n = 0
        for p in self.providers.values():
            try:
                n += await p.backend.clean_tmp(older_than)
            except Exception as exc:
                p.failed(exc)
        return n

    def local_path(self, digest: str) -> Path | None:
        return None

    async def presign(self, digest: str, ttl: int, disposition: str, media_type: str) -> str | None:
        """A presigned URL on the fastest provider recorded as holding a good copy (None: none up)."""
        locs = await self.locations(digest)
        now = time.monotonic()
        good = sorted(
            (self.providers[n] for n, st in locs.items() if st == "good" and n in self.providers),
            key=lambda p: p.ewma,
        )
        for p in good:
            if p.up(now):
                return await p.backend.presign(digest, ttl, disposition, media_type)
        return None

    async def close(self) -> None:
        if self._flusher is not None:
            with contextlib.suppress(BaseException):
                await self._flusher
        for b in [p.backend for p in self.providers.values()] + self._retired + [self.legacy]:
            if b is not None:
                with contextlib.suppress(Exception):
                    await b.close()
        if self._own_engine and self._engine is not None:
            await self._engine.dispose()
            self._engine = None
            self._sessions = None


if TYPE_CHECKING:
    _network_is_a_backend: type[BlobBackend] = NetworkBackend
