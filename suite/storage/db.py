"""The one SQL database: engine setup for SQLite (embedded default) and PostgreSQL, and migrations.

SQLite runs in WAL mode with a busy timeout so that several tasks (and processes) can share it;
PostgreSQL runs through asyncpg. Every table lives in ``Base.metadata``; alembic owns the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, cast

from sqlalchemy import BigInteger, Integer, MetaData, event
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Postgres BIGINT / SQLite INTEGER (SQLite only autoincrements a plain INTEGER primary key).
BigInt = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised by every sqlite test
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=10000")
    # FULL: the WAL is fsynced at every commit — a committed row survives kill -9 and power loss.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kw) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kw)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kw.setdefault("pool_size", 10)
    kw.setdefault("max_overflow", 20)
    kw.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kw)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _alembic_config(connection: Connection):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "heads") -> None:
    """Upgrade the schema to ``revision`` (alembic, sharing our async connection).

    "heads": each service's migrations form their own branch off the shared base, so independent
    services can add tables without ordering their revisions against each other."""
    from alembic import command

    def run(conn: Connection) -> None:
        command.upgrade(_alembic_config(conn), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> None:
    from alembic import command

    def run(conn: Connection) -> None:
        command.downgrade(_alembic_config(conn), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's revision(s), comma-joined and sorted ("0002,0003" with several branches)."""
    from alembic.runtime.migration import MigrationContext

    def run(conn: Connection) -> str | None:
        heads = MigrationContext.configure(conn).get_current_heads()
        return ",".join(sorted(heads)) or None

    async with engine.connect() as conn:
        return await conn.run_sync(run)


def head_revision() -> str | None:
    """The code's head revision(s), in the same form as ``current_revision``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ",".join(sorted(ScriptDirectory.from_config(cfg).get_heads())) or None


# ---------------------------------------------------------------------------------------------------
# Driver-level fast path for hot paths (IMAP commands, logins).
#
# SQLAlchemy's ORM and even Core execution cost 0.1–0.4 ms of Python per statement, and every
# aiosqlite call is a thread hop; an IMAP command does several statements. ``RawDB`` runs plain SQL
# (``?`` placeholders) on the driver itself:
#
# - SQLite: stdlib ``sqlite3`` connections on the same file with the same pragmas (WAL,
#   synchronous=FULL). Reads run on the event loop thread — a WAL reader never waits for a writer
#   and an indexed lookup in the page cache takes microseconds, far less than a thread hop. Writes
#   go through one writer connection per process, one transaction at a time (SQLite has a single
#   writer anyway, so this removes busy-waiting between our own connections): the writers' flock
#   (``<db>-rawdb.lock``; another worker's writer waits on it in the writer thread, woken by the
#   kernel when that batch ends), ``BEGIN IMMEDIATE`` (in the writer thread only when a connection
#   that is not a RawDB writer holds the lock), the statements, ``COMMIT`` on the loop (WAL frames
#   into the page cache only: no fsync, no auto-checkpoint) and the WAL fsync in a sync thread, so
#   the loop never waits on the disk and a write costs one thread wake-up, not three. Checkpoints
#   run in a thread of their own. A durable transaction is exactly as durable as through
#   SQLAlchemy (synchronous=FULL fsyncs the WAL inside COMMIT; here RawDB does it after COMMIT,
#   before the caller returns).
# - PostgreSQL: the asyncpg connection under a pooled SQLAlchemy connection, with asyncpg's own
#   prepared-statement cache; ``?`` becomes ``$n``.
# ---------------------------------------------------------------------------------------------------

_SQLITE_READERS = 4  # idle reader connections kept per process


def _sqlite_raw_pragmas(conn: sqlite3.Connection, *, writer: bool) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    # the writer never sleeps in SQLite's busy handler on the event loop: it asks with a zero
    # timeout and waits in its thread when another connection holds the lock
    # (a WAL reader waits only in rare cases: a crash recovery, the last connection closing)
    conn.execute("PRAGMA busy_timeout=0" if writer else "PRAGMA busy_timeout=2000")
    # The same durability as every other connection: the writer's COMMIT writes the WAL and
    # RawDB fsyncs it (``_commit_durable``) before a durable batch returns — what FULL does inside
    # COMMIT — so that a relaxed batch can skip it (SQLite refuses a change of this pragma inside
    # a transaction, and a batch's durability is known only at its end).
    conn.execute("PRAGMA synchronous=NORMAL" if writer else "PRAGMA synchronous=FULL")
    if writer:
        # the writer COMMITs on the event loop: no checkpoint inside COMMIT (it copies pages into
        # the database file and fsyncs it); RawDB checkpoints in its own thread (``_checkpoint``)
        conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-16384")  # 16 MiB page cache per connection
    conn.execute("PRAGMA temp_store=MEMORY")
    if not writer:
        conn.execute("PRAGMA query_only=1")


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


class _SqliteConn:
    __slots__ = ("c",)
    pg = False

    def __init__(self, c: sqlite3.Connection) -> None:
        self.c = c

    async def all(self, sql: str, *args: Any) -> list:
        return self.c.execute(sql, args).fetchall()

    async def one(self, sql: str, *args: Any):
        return self.c.execute(sql, args).fetchone()

    async def scalar(self, sql: str, *args: Any):
        row = self.c.execute(sql, args).fetchone()
        return None if row is None else row[0]

    async def run(self, sql: str, *args: Any) -> int:
        return self.c.execute(sql, args).rowcount

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.c.executemany(sql, rows)


_PG_SQL: dict[str, str] = {}


def _pg_sql(sql: str) -> str:
    out = _PG_SQL.get(sql)
    if out is None:
        n = iter(range(1, 100_000))
        out = re.sub(r"\?", lambda _m: f"${next(n)}", sql)
        _PG_SQL[sql] = out
    return out


class _PgConn:
    __slots__ = ("c",)
    pg = True

    def __init__(self, c) -> None:
        self.c = c

    async def all(self, sql: str, *args: Any) -> list:
        return await self.c.fetch(_pg_sql(sql), *args)

    async def one(self, sql: str, *args: Any):
        return await self.c.fetchrow(_pg_sql(sql), *args)

    async def scalar(self, sql: str, *args: Any):
        return await self.c.fetchval(_pg_sql(sql), *args)

    async def run(self, sql: str, *args: Any) -> int:
        status = await self.c.execute(_pg_sql(sql), *args)
        last = status.rsplit(" ", 1)[-1]
        return int(last) if last.isdigit() else 0

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.c.executemany(_pg_sql(sql), rows)


class _SAConn:
    """Plain SQL through a SQLAlchemy connection: an in-memory SQLite database (which other
    connections cannot see), or the connection of an ORM session (:func:`conn`), so a statement
    runs inside that session's transaction."""

    __slots__ = ("c", "pg")

    def __init__(self, c: AsyncConnection) -> None:
        self.c = c
        self.pg = c.dialect.name == "postgresql"

    def _sql(self, sql: str) -> str:
        return _pg_sql(sql) if self.pg else sql

    async def all(self, sql: str, *args: Any) -> list:
        return list((await self.c.exec_driver_sql(self._sql(sql), tuple(args))).all())

    async def one(self, sql: str, *args: Any):
        return (await self.c.exec_driver_sql(self._sql(sql), tuple(args))).first()

    async def scalar(self, sql: str, *args: Any):
        row = (await self.c.exec_driver_sql(self._sql(sql), tuple(args))).first()
        return None if row is None else row[0]

    async def run(self, sql: str, *args: Any) -> int:
        res: Any = await self.c.exec_driver_sql(self._sql(sql), tuple(args))
        return res.rowcount

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await self.c.exec_driver_sql(self._sql(sql), [tuple(r) for r in rows])


class Conn(Protocol):
    """A connection inside one transaction, as :meth:`RawDB.read` / :meth:`RawDB.write` yield it and
    :func:`conn` makes of an ORM session: plain SQL with ``?`` placeholders, the same on SQLite and
    PostgreSQL. The account store and the blob store take one, so a quota charge or a reference
    count moves in the caller's transaction, with no round trip of its own."""

    @property
    def pg(self) -> bool: ...
    async def all(self, sql: str, *args: Any) -> list: ...
    async def one(self, sql: str, *args: Any) -> Any: ...
    async def scalar(self, sql: str, *args: Any) -> Any: ...
    async def run(self, sql: str, *args: Any) -> int: ...
    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


# What the stores' transactional methods accept: the ORM session of a ``sessions.begin()`` block,
# or a RawDB connection (the hot paths).
Tx = AsyncSession | Conn


async def conn(tx: Tx) -> Conn:
    """``tx`` as a :class:`Conn`: an ORM session's statements run on its own connection, in its
    transaction (pending ORM changes are not flushed first; the stores' statements do not read them)."""
    if isinstance(tx, AsyncSession):
        return _SAConn(await tx.connection())
    return tx


class _Batch:
    """The writer's open transaction: one future per block in it, resolved by its commit;
    ``durable`` when any block asked for an fsync before its return."""

    __slots__ = ("durable", "waiters")

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future] = []
        self.durable = False


#: A batch of only ``write(durable=False)`` blocks is fsynced at most this long after its commit
#: (or with the next durable commit, whichever comes first).
RELAXED_SYNC_SECONDS = 1.0

#: The writer connection has no auto-checkpoint: a PASSIVE checkpoint runs in a thread of its own
#: once the WAL file is this big, at most every CHECKPOINT_SECONDS (SQLite's default: 1000 pages).
CHECKPOINT_WAL_BYTES = 4 << 20
CHECKPOINT_SECONDS = 1.0


def rowcount(res: Result[Any]) -> int:
    """Rows an UPDATE/DELETE run through an ORM session changed (its result is a CursorResult)."""
    return cast(CursorResult[Any], res).rowcount


def placeholders(n: int) -> str:
    """``?, ?, ?`` for an ``IN (…)`` list of n values."""
    return ", ".join("?" * n)


class RawDB:
    """Plain SQL on the engine's database; get it with :func:`raw`. ``read()`` and ``write()``
    are async context managers yielding a connection with ``all / one / scalar / run / many``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        path = engine.url.database if self.dialect == "sqlite" else None
        self.sqlite = self.dialect == "sqlite" and bool(path) and path != ":memory:"
        self._path = path or ""  # used only when self.sqlite (a file database)
        self._readers: list[sqlite3.Connection] = []
        self._writer: sqlite3.Connection | None = None
        # the RawDB writers of every process on this file take this flock for each batch, from
        # before BEGIN IMMEDIATE to after COMMIT: one waiting for another sleeps in the kernel and
        # is woken when it is released, instead of asking SQLite again every few milliseconds
        self._lockfd: int | None = None
        self._flocked = False
        self._wexec: ThreadPoolExecutor | None = None
        self._sexec: ThreadPoolExecutor | None = None  # fsyncs of durable batches, in commit order
        self._cexec: ThreadPoolExecutor | None = None  # WAL checkpoints (``_checkpoint``)
        self._ckpt_conn: sqlite3.Connection | None = None
        self._ckpt_at = 0.0  # monotonic time of the last checkpoint started
        self._ckpt_running = False
        self._wlock: asyncio.Lock | None = None
        self._wloop: asyncio.AbstractEventLoop | None = None
        self._batch: _Batch | None = None
        self._pending = 0  # writers waiting for the lock or running their block
        self._unsynced = False  # a relaxed batch was committed and the WAL not fsynced since
        self._sync_task: asyncio.Task | None = None
        self.closed = False

    # -------------------------------------------------------------- sqlite connections
    def _open(self, *, writer: bool) -> sqlite3.Connection:
        c = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=30)
        _sqlite_raw_pragmas(c, writer=writer)
        return c

    async def _in_writer_thread(self, fn, *args):
        """Run ``fn`` in the writer thread; a cancelled caller still waits for it to finish, so
        the writer connection is never used by two parties at once."""
        if self._wexec is None:
            self._wexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        fut = asyncio.get_running_loop().run_in_executor(self._wexec, fn, *args)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await fut
            raise

    def _flock_try(self) -> bool:
        if self._lockfd is None:
            self._lockfd = os.open(self._path + "-rawdb.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self._flocked = True
        return True

    def _flock_wait(self) -> None:
        """In the writer thread: until the other process's writer ends its batch."""
        assert self._lockfd is not None
        fcntl.flock(self._lockfd, fcntl.LOCK_EX)
        self._flocked = True

    def _unflock(self) -> None:
        if self._flocked and self._lockfd is not None:
            self._flocked = False
            fcntl.flock(self._lockfd, fcntl.LOCK_UN)

    @staticmethod
    def _begin_waiting(c: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE while another connection (another worker's writer) holds the lock: asked
        again every 0.5–5 ms for up to 30 s. SQLite's own busy handler sleeps up to 100 ms between
        tries, which another process's short transactions turned into the latency of every write."""
        deadline = time.monotonic() + 30
        delay = 0.0005
        while True:
            try:
                c.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 1.5, 0.005)

    # -------------------------------------------------------------- API
    @contextlib.asynccontextmanager
    async def read(self, *, snapshot: bool = False) -> AsyncIterator[Any]:
        """Reads; with ``snapshot`` every statement of the block sees the same committed state."""
        if self.sqlite:
            c = self._readers.pop() if self._readers else self._open(writer=False)
            ok = False
            try:
                if snapshot:
                    c.execute("BEGIN")
                yield _SqliteConn(c)
                ok = True
            finally:
                if c.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        c.execute("ROLLBACK")
                if ok and not self.closed and len(self._readers) < _SQLITE_READERS:
                    self._readers.append(c)
                else:
                    c.close()
            return
        async with self.engine.connect() as conn:
            if self.dialect != "postgresql":
                yield _SAConn(conn)
                return
            apg = (await conn.get_raw_connection()).driver_connection
            assert apg is not None  # an open asyncpg connection
            if snapshot:
                async with apg.transaction(isolation="repeatable_read", readonly=True):
                    yield _PgConn(apg)
            else:
                yield _PgConn(apg)

    @contextlib.asynccontextmanager
    async def write(self, *, durable: bool = True) -> AsyncIterator[Any]:
        """One transaction; committed (durably) when the block ends without an exception.

        ``durable=False`` (SQLite; IMAP flag changes with ``imap_flag_durability = "batched"``):
        the block returns once its batch is committed — visible to every connection and safe from
        a crash of this process, as the write sits in the OS page cache — but the WAL fsync waits
        for the next durable commit or at most ``RELAXED_SYNC_SECONDS``: a power loss can lose that
        last second. A batch with any durable block is fsynced before any of its blocks returns.

        SQLite: group commit. Blocks run one at a time, each in a savepoint of the writer's open
        transaction. When a block ends and no other writer is waiting, the batch is committed —
        COMMIT in the writer thread, then the WAL fsync in the sync thread — and every block of
        the batch returns once that commit is durable (or raises its error). Writers that arrive
        during a COMMIT form the next batch, which starts as soon as the COMMIT is written (while
        the fsync runs). A block that raises is rolled back to its savepoint alone."""
        if self.sqlite:
            loop = asyncio.get_running_loop()
            if self._wlock is None or self._wloop is not loop:  # first use, or a new event loop
                self._wlock, self._wloop, self._batch, self._pending = asyncio.Lock(), loop, None, 0
                if self._writer is not None and self._writer.in_transaction:
                    self._writer.execute("ROLLBACK")  # left open by a loop that is gone
                self._unflock()
            lock = self._wlock
            self._pending += 1
            try:
                await lock.acquire()
            except BaseException:
                self._pending -= 1
                self._after_block(loop, holding=False)
                raise
            waiter: asyncio.Future | None = None
            try:
                c = self._writer
                if c is None:
                    c = self._writer = await self._in_writer_thread(lambda: self._open(writer=True))
                batch = self._batch
                if batch is None:
                    if not self._flocked and not self._flock_try():
                        try:
                            await self._in_writer_thread(self._flock_wait)
                        except BaseException:
                            self._unflock()  # cancelled: taken meanwhile, not used
                            raise
                    try:
                        try:
                            c.execute("BEGIN IMMEDIATE")
                        except sqlite3.OperationalError as exc:
                            if not _is_busy(exc):
                                raise
                            # a connection that is not a RawDB writer (an ORM session) holds it
                            await self._in_writer_thread(self._begin_waiting, c)
                    except BaseException:
                        self._unflock()
                        raise
                    batch = self._batch = _Batch()
                c.execute("SAVEPOINT w")
                try:
                    yield _SqliteConn(c)
                except BaseException:
                    if batch.waiters:
                        c.execute("ROLLBACK TO w")
                        c.execute("RELEASE w")
                    else:  # nothing else in the transaction: end it
                        c.execute("ROLLBACK")
                        self._batch = None
                        self._unflock()
                    raise
                c.execute("RELEASE w")
                waiter = loop.create_future()
                batch.waiters.append(waiter)
                batch.durable = batch.durable or durable
            finally:
                self._pending -= 1
                self._after_block(loop, holding=True)
            await waiter
            return
        async with self.engine.connect() as conn:
            if self.dialect != "postgresql":
                async with conn.begin():
                    yield _SAConn(conn)
                return
            apg = (await conn.get_raw_connection()).driver_connection
            assert apg is not None  # an open asyncpg connection
            async with apg.transaction():
                if not durable:  # PostgreSQL's own relaxed commit: WAL flushed by the WAL writer (≤ 0.6 s)
                    await apg.execute("SET LOCAL synchronous_commit TO off")
                yield _PgConn(apg)

    def _after_block(self, loop: asyncio.AbstractEventLoop, *, holding: bool) -> None:
        """A writer is done with the lock (``holding``) or gave up waiting for it: commit the
        batch if nobody else is about to join it, else let the next writer in."""
        assert self._wlock is not None
        batch = self._batch
        if batch is not None and batch.waiters and self._pending == 0:
            if holding:
                self._start_commit(loop, batch)  # the lock passes to the commit
            elif not self._wlock.locked():
                loop.create_task(self._commit_when_free())
            return
        if holding:
            self._wlock.release()

    async def _commit_when_free(self) -> None:
        assert self._wlock is not None
        await self._wlock.acquire()
        self._after_block(asyncio.get_running_loop(), holding=True)

    def _start_commit(self, loop: asyncio.AbstractEventLoop, batch: _Batch) -> None:
        """COMMIT on the loop: with ``synchronous=NORMAL`` and no auto-checkpoint it only writes the
        batch's WAL frames into the OS page cache (tens of microseconds — less than waking a thread,
        which on a busy machine costs milliseconds per hop). The writer lock is released right
        after; a durable batch's blocks then wait for the WAL fsync in the sync thread, while the
        next batch already runs and commits (its own fsync, if durable, covers this one's too)."""
        assert self._writer is not None
        self._batch = None
        c = self._writer
        if batch.durable:
            self._unsynced = False  # this fsync covers the frames of earlier relaxed commits too
        else:
            self._unsynced = True
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = loop.create_task(self._sync_later())
        # WAL frames written at COMMIT (synchronous=NORMAL on this connection); fsynced below
        exc: BaseException | None = None
        try:
            c.execute("COMMIT")
        except Exception as e:
            exc = e
        self._committed(loop, batch, exc)

    def _committed(self, loop: asyncio.AbstractEventLoop, batch: _Batch, exc: BaseException | None) -> None:
        assert self._wlock is not None
        c = self._writer
        if exc is not None and c is not None and c.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
        self._unflock()
        self._wlock.release()  # the next batch may start while this one's fsync runs
        if exc is not None or not batch.durable:
            _resolve(batch.waiters, exc)
            return
        if self._sexec is None:
            self._sexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-sync")
        # one sync thread: fsyncs finish in commit order; it answers the loop itself (one wake-up)
        self._sexec.submit(self._sync_and_resolve, loop, batch.waiters)

    def _sync_and_resolve(self, loop: asyncio.AbstractEventLoop, waiters: list[asyncio.Future]) -> None:
        """In the sync thread: fsync the WAL, then resolve the batch's futures on the loop."""
        exc: BaseException | None = None
        try:
            self.sync_wal()
        except Exception as e:
            exc = e
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(_resolve, waiters, exc)
        self._maybe_checkpoint()

    async def _sync_later(self) -> None:
        """fsync the WAL once, ``RELAXED_SYNC_SECONDS`` after the first relaxed commit since the last fsync."""
        await asyncio.sleep(RELAXED_SYNC_SECONDS)
        if self._unsynced and not self.closed:
            self._unsynced = False
            await asyncio.to_thread(self.sync_wal)
            self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        """Start a PASSIVE checkpoint in the checkpoint thread when the WAL holds more than
        ``CHECKPOINT_WAL_BYTES`` and none ran in the last ``CHECKPOINT_SECONDS`` — the job
        SQLite's auto-checkpoint does inside COMMIT, kept off the event loop and the fsync path."""
        if self._ckpt_running or self.closed or time.monotonic() - self._ckpt_at < CHECKPOINT_SECONDS:
            return
        try:
            if os.stat(self._path + "-wal").st_size < CHECKPOINT_WAL_BYTES:
                return
        except OSError:
            return
        self._ckpt_running = True
        self._ckpt_at = time.monotonic()
        if self._cexec is None:
            self._cexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-checkpoint")
        self._cexec.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """PASSIVE: copies what no reader still needs, never waits for readers or writers."""
        try:
            if self._ckpt_conn is None:
                self._ckpt_conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
                self._ckpt_conn.execute("PRAGMA busy_timeout=0")
            self._ckpt_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:  # busy (another connection checkpoints) or closed: the next one will
            pass
        finally:
            self._ckpt_running = False

    def sync_wal(self) -> None:
        """fsync the WAL file: every transaction committed so far is durable after it returns."""
        try:
            fd = os.open(self._path + "-wal", os.O_RDONLY)
        except FileNotFoundError:  # checkpointed and removed: the database file holds it, synced
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._unsynced and self.sqlite:
            self._unsynced = False
            with contextlib.suppress(OSError):
                self.sync_wal()
        self.closed = True
        for c in self._readers:
            with contextlib.suppress(Exception):
                c.close()
        self._readers.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._lockfd is not None:
            os.close(self._lockfd)  # releases the flock too
            self._lockfd, self._flocked = None, False
        for ex in (self._wexec, self._sexec):
            if ex is not None:
                ex.shutdown(wait=False)
        if self._cexec is not None:  # a running checkpoint finishes before its connection closes
            self._cexec.shutdown(wait=True)
        self._wexec = self._sexec = self._cexec = None
        if self._ckpt_conn is not None:
            with contextlib.suppress(Exception):
                self._ckpt_conn.close()
            self._ckpt_conn = None


def _resolve(waiters: list[asyncio.Future], exc: BaseException | None) -> None:
    for w in waiters:
        if not w.done():
            if exc is None:
                w.set_result(None)
            else:
                w.set_exception(exc)


_RAW: weakref.WeakKeyDictionary[Any, RawDB] = weakref.WeakKeyDictionary()


def raw(engine: AsyncEngine) -> RawDB:
    """The engine's :class:`RawDB` (one per engine and process; closed with ``engine.dispose()``)."""
    r = _RAW.get(engine.sync_engine)
    if r is None or r.closed:
        r = _RAW[engine.sync_engine] = RawDB(engine)
        event.listen(engine.sync_engine, "engine_disposed", lambda _e, r=r: r.close())
    return r


def is_transient(exc: BaseException) -> bool:
    """A deadlock / serialization failure (PostgreSQL 40P01 / 40001) or a busy SQLite, from
    SQLAlchemy or from the drivers directly: the transaction was rolled back and may run again."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    if code in ("40P01", "40001"):
        return True
    text = str(exc).lower()
    return "deadlock detected" in text or "database is locked" in text
