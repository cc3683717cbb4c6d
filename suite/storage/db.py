"""The one SQL database: engine setup for SQLite (embedded default) and PostgreSQL, and migrations.

SQLite runs in WAL mode with a busy timeout so that several tasks (and processes) can share it;
PostgreSQL runs through asyncpg. Every table lives in ``Base.metadata``; alembic owns the schema.
"""

from __future__ import annotations

import asyncio
import contextlib
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
#   writer anyway, so this removes busy-waiting between our own connections): ``BEGIN IMMEDIATE``
#   (in the writer thread only when another connection holds the lock), the statements, then
#   ``COMMIT`` in the writer thread and the WAL fsync in a sync thread, so the loop never waits on
#   the disk. A durable transaction is exactly as durable as through SQLAlchemy (synchronous=FULL
#   fsyncs the WAL inside COMMIT; here RawDB does it after COMMIT, before the caller returns).
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
        self._wexec: ThreadPoolExecutor | None = None
        self._sexec: ThreadPoolExecutor | None = None  # fsyncs of durable batches, in commit order
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
                    try:
                        c.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError as exc:
                        if not _is_busy(exc):
                            raise
                        await self._in_writer_thread(self._begin_waiting, c)
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
        """COMMIT in the writer thread; the writer lock is released when it is done. A durable
        batch's blocks then wait for the WAL fsync in the sync thread — while the next batch
        already runs and commits (its own fsync, if durable, covers this one's frames too)."""
        assert self._writer is not None and self._wexec is not None
        self._batch = None
        c = self._writer

        def finished(cf) -> None:  # in the writer thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                loop.call_soon_threadsafe(self._committed, loop, batch, cf.exception())

        if batch.durable:
            self._unsynced = False  # this fsync covers the frames of earlier relaxed commits too
        else:
            self._unsynced = True
            if self._sync_task is None or self._sync_task.done():
                self._sync_task = loop.create_task(self._sync_later())
        # WAL frames written at COMMIT (synchronous=NORMAL on this connection); fsynced below
        self._wexec.submit(c.execute, "COMMIT").add_done_callback(finished)

    def _committed(self, loop: asyncio.AbstractEventLoop, batch: _Batch, exc: BaseException | None) -> None:
        assert self._wlock is not None
        c = self._writer
        if exc is not None and c is not None and c.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                c.execute("ROLLBACK")
        self._wlock.release()  # the next batch may start while this one's fsync runs
        if exc is not None or not batch.durable:
            _resolve(batch.waiters, exc)
            return
        if self._sexec is None:
            self._sexec = ThreadPoolExecutor(1, thread_name_prefix="sqlite-sync")
        # one sync thread: fsyncs finish in commit order
        done = loop.run_in_executor(self._sexec, self.sync_wal)
        done.add_done_callback(lambda f: _resolve(batch.waiters, f.exception()))

    async def _sync_later(self) -> None:
        """fsync the WAL once, ``RELAXED_SYNC_SECONDS`` after the first relaxed commit since the last fsync."""
        await asyncio.sleep(RELAXED_SYNC_SECONDS)
        if self._unsynced and not self.closed:
            self._unsynced = False
            await asyncio.to_thread(self.sync_wal)

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
        for ex in (self._wexec, self._sexec):
            if ex is not None:
                ex.shutdown(wait=False)
        self._wexec = self._sexec = None


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
