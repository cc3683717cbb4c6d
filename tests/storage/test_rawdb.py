"""RawDB (suite.storage.db): plain SQL on the driver with group commit — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from suite.storage import db
from suite.testing import async_wait_until


class Boom(Exception):
    pass


async def _counter(rawdb, name):
    async with rawdb.read() as c:
        return await c.scalar("SELECT value FROM mail_counters WHERE name = ?", name)


async def test_concurrent_writes_commit_together_and_a_failure_stays_alone(ctx):
    rawdb = db.raw(ctx.engine)

    async def one(i: int):
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", f"n{i}", i)
            if i == 7:
                raise Boom()

    results = await asyncio.gather(*(one(i) for i in range(20)), return_exceptions=True)
    assert [i for i, r in enumerate(results) if isinstance(r, Boom)] == [7]
    assert all(r is None for i, r in enumerate(results) if i != 7)
    async with rawdb.read() as c:
        names = {r[0] for r in await c.all("SELECT name FROM mail_counters")}
    assert names == {f"n{i}" for i in range(20) if i != 7}
    # committed for everybody: another engine on the same database sees every row
    other = db.make_engine(ctx.settings.db_url)
    try:
        async with db.raw(other).read() as c:
            assert await c.scalar("SELECT COUNT(*) FROM mail_counters") == 19
    finally:
        await other.dispose()


async def test_first_block_failing_alone_leaves_no_transaction_open(ctx):
    rawdb = db.raw(ctx.engine)
    with pytest.raises(Boom):
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "gone", 1)
            raise Boom()
    assert await _counter(rawdb, "gone") is None
    # the database is not left locked: the ORM (another connection) can write at once
    from sqlalchemy import text

    async with ctx.engine.begin() as conn:
        await conn.execute(text("INSERT INTO mail_counters (name, value) VALUES ('orm', 2)"))
    async with rawdb.write() as c:
        assert await c.run("UPDATE mail_counters SET value = value + 1 WHERE name = ?", "orm") == 1
    assert await _counter(rawdb, "orm") == 3


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's single-writer lock
async def test_writer_waits_for_another_connection_holding_the_lock(ctx):
    import sqlite3

    path = ctx.settings.db_url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    rawdb = db.raw(ctx.engine)

    async def write():
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "late", 5)

    task = asyncio.create_task(write())
    await async_wait_until(lambda: rawdb._pending == 1, what="the writer started")
    assert await _counter(rawdb, "late") is None  # the loop still runs (readers too) while it waits
    assert not task.done()
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(task, 30)
    assert await _counter(rawdb, "late") == 5


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the writers' flock on SQLite
async def test_writer_waits_for_another_process_writer_on_the_flock_and_gets_it_when_released(ctx):
    """Another worker's RawDB writer holds the flock for its batch: this one sleeps on it in the
    writer thread (the loop serves reads meanwhile) and writes once it is released."""
    import fcntl
    import os

    path = ctx.settings.db_url.split("///", 1)[1]
    fd = os.open(path + "-rawdb.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # the other worker's batch
    rawdb = db.raw(ctx.engine)

    async def write(name: str):
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", name, 7)

    task = asyncio.create_task(write("after"))
    await async_wait_until(lambda: rawdb._pending == 1, what="the writer started")
    await asyncio.sleep(0.2)
    assert not task.done()  # it cannot begin while the other process's batch runs
    assert await _counter(rawdb, "after") is None
    fcntl.flock(fd, fcntl.LOCK_UN)
    await asyncio.wait_for(task, 30)
    assert await _counter(rawdb, "after") == 7
    # between batches the flock is free: another process takes it at once
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.flock(fd, fcntl.LOCK_UN)
    # a failing block that was alone in its batch frees it too
    with pytest.raises(Boom):
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "never", 1)
            raise Boom
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.close(fd)


def test_wal_checkpointed_off_the_loop(tmp_path, monkeypatch):
    """The writer has no auto-checkpoint (its COMMIT runs on the loop): RawDB's checkpoint thread
    copies the WAL into the database file once the WAL is big enough."""
    import os

    import suite.models  # noqa: F401

    monkeypatch.setattr(db, "CHECKPOINT_WAL_BYTES", 256 * 1024)
    monkeypatch.setattr(db, "CHECKPOINT_SECONDS", 0.0)
    path = tmp_path / "ckpt.db"
    engine = db.make_engine(f"sqlite+aiosqlite:///{path}")
    asyncio.run(db.migrate(engine))

    async def main() -> None:
        rawdb = db.raw(engine)
        async with rawdb.read() as c:
            assert await c.scalar("PRAGMA wal_autocheckpoint") > 0  # readers keep SQLite's default
        before = os.path.getsize(path)
        for i in range(40):
            async with rawdb.write() as c:
                await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", f"{i}-" + "x" * 30_000, i)
        assert rawdb._writer is not None
        assert rawdb._writer.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        await async_wait_until(lambda: os.path.getsize(path) > before + 1_000_000, what="the WAL checkpointed")

    asyncio.run(main())
    asyncio.run(engine.dispose())


async def test_read_snapshot(ctx):
    rawdb = db.raw(ctx.engine)
    async with rawdb.write() as c:
        await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "s", 1)
    async with rawdb.read(snapshot=True) as r:
        assert await r.scalar("SELECT value FROM mail_counters WHERE name = ?", "s") == 1
        async with rawdb.write() as c:
            await c.run("UPDATE mail_counters SET value = 2 WHERE name = ?", "s")
        # the same block still sees the state it started with
        assert await r.scalar("SELECT value FROM mail_counters WHERE name = ?", "s") == 1
    assert await _counter(rawdb, "s") == 2


def test_one_engine_used_from_two_event_loops(tmp_path):
    import suite.models  # noqa: F401

    engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'loops.db'}")
    asyncio.run(db.migrate(engine))

    async def insert(i: int) -> int:
        rawdb = db.raw(engine)
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", f"n{i}", i)
        async with rawdb.read() as c:
            return await c.scalar("SELECT COUNT(*) FROM mail_counters")

    assert asyncio.run(insert(1)) == 1
    assert asyncio.run(insert(2)) == 2  # a second asyncio.run (as the CLI does): still writes
    asyncio.run(engine.dispose())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the in-process writer lock and group commit
async def test_writer_cancelled_while_waiting_does_not_stall_the_batch(ctx):
    rawdb = db.raw(ctx.engine)
    inside = asyncio.Event()
    go_on = asyncio.Event()
    second: asyncio.Task | None = None

    async def first():
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "first", 1)
            inside.set()
            await go_on.wait()
            # cancel the waiting writer just as the lock passes to it
            asyncio.get_running_loop().call_soon(second.cancel)

    async def other():
        async with rawdb.write() as c:
            await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "second", 2)

    t1 = asyncio.create_task(first())
    await inside.wait()
    second = asyncio.create_task(other())
    await async_wait_until(lambda: rawdb._pending == 2, what="the second writer waits for the lock")
    go_on.set()
    await asyncio.wait_for(t1, 10)  # its commit is not left waiting for the cancelled writer
    with pytest.raises(asyncio.CancelledError):
        await second
    assert await _counter(rawdb, "first") == 1
    assert await _counter(rawdb, "second") is None
    async with rawdb.write() as c:  # and the writer still works
        await c.run("INSERT INTO mail_counters (name, value) VALUES (?, ?)", "third", 3)
    assert await _counter(rawdb, "third") == 3


# ---------------------------------------------------------------- relaxed commits (imap_flag_durability)
_FSYNC_SCRIPT = """
import asyncio, os, sys
from suite.storage import db

async def main(path):
    engine = db.make_engine("sqlite+aiosqlite:///" + path)
    r = db.raw(engine)
    async with r.write() as c:
        await c.run("CREATE TABLE t (x INTEGER)")
    db.RELAXED_SYNC_SECONDS = 0.1
    os.getppid()  # marker: the timed sync of one relaxed commit
    async with r.write(durable=False) as c:
        await c.run("INSERT INTO t VALUES (?)", 99)
    await asyncio.sleep(1)
    db.RELAXED_SYNC_SECONDS = 3600  # from here no timed sync may hide a commit's own fsync
    os.getppid()  # marker: relaxed phase
    for i in range(20):
        async with r.write(durable=False) as c:
            await c.run("INSERT INTO t VALUES (?)", i)
    os.getppid()  # marker: durable phase
    for i in range(20):
        async with r.write() as c:
            await c.run("INSERT INTO t VALUES (?)", i)
    os.getppid()  # marker: end
    if sys.argv[2] == "kill":
        async with r.write(durable=False) as c:
            await c.run("INSERT INTO t VALUES (?)", 1000)
        os.kill(os.getpid(), 9)
    await engine.dispose()

asyncio.run(main(sys.argv[1]))
"""


def _run_script(tmp_path, mode: str, *prefix: str):
    import subprocess
    import sys

    path = tmp_path / "relaxed.db"
    return subprocess.run(
        [*prefix, sys.executable, "-c", _FSYNC_SCRIPT, str(path), mode], capture_output=True, text=True, timeout=120
    ), path


def test_relaxed_commits_skip_the_fsync_then_sync_within_the_deadline(tmp_path):
    """Counted with strace: 20 relaxed commits make no fsync, 20 durable ones one each, and a
    relaxed commit's WAL is fsynced by the timed sync."""
    from suite.testing import require_tool

    strace = require_tool("strace")
    r, _ = _run_script(tmp_path, "count", strace, "-f", "-qq", "-e", "trace=fsync,fdatasync,getppid")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if "(" in ln and "resumed" not in ln]
    marks = [i for i, ln in enumerate(lines) if "getppid(" in ln]
    assert len(marks) == 4, lines[-20:]
    syncs = [sum(1 for ln in lines[a:b] if "sync(" in ln) for a, b in zip(marks, marks[1:], strict=False)]
    timed, relaxed, durable = syncs
    assert relaxed == 0, lines[marks[0] : marks[1]]
    assert durable >= 20  # one COMMIT fsync per batch (each write here is its own batch)
    assert timed >= 1  # the WAL fsync of the relaxed commit


def test_a_relaxed_commit_survives_kill9_of_the_process(tmp_path):
    """Committed without fsync, the rows sit in the OS page cache: a crash of the process keeps them."""
    import sqlite3

    r, path = _run_script(tmp_path, "kill")
    assert r.returncode == -9, r.stderr[-2000:]
    rows = sqlite3.connect(path).execute("SELECT x FROM t WHERE x IN (99, 1000)").fetchall()
    assert sorted(rows) == [(99,), (1000,)]
