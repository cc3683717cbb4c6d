"""``suite backup PATH`` and ``suite restore PATH``: the database and the blobs, taken while the
services run, restored into an empty database and blob store of either kind (SQLite ↔ PostgreSQL,
disk ↔ S3).

Layout of a backup directory::

    tables/<table>.jsonl     one JSON object per row (bytes as {"$b": base64})
    blobs/<ab>/<sha256>      every blob referenced at the snapshot
    manifest.json            written last: its presence marks a complete backup

Why it is consistent while services write:

* The rows are read in **one snapshot**: on PostgreSQL one ``REPEATABLE READ READ ONLY``
  transaction; on SQLite a copy made by SQLite's online backup API (one read transaction over the
  WAL), then read at leisure. No row of the backup sees a write the others do not.
* Blobs are **immutable and content-addressed**: a digest in the snapshot names exactly those bytes,
  whenever they are copied, and writers never change a stored blob. A blob is written (and fsynced)
  *before* the transaction that references it commits, so every blob referenced by a committed row
  of the snapshot exists in the store.
* The only way such a blob disappears is garbage collection: after the snapshot, its last reference
  is dropped and ``BlobStore.gc`` deletes it (files younger than the grace period are never
  deleted, so this needs an old blob). Then the copy finds it missing: the backup starts over with a
  fresh snapshot, in which that blob is no longer referenced (``ATTEMPTS`` times, then an error).
* Blobs written after the snapshot are not in it and no row of it refers to them.

Not included: ``tus_uploads`` (unfinished uploads; their spool files are local to one process —
clients start those over), and the data dir's files (TLS certificate, coturn secret), which
``suite init`` makes again or the operator keeps in their configuration.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import MetaData, Table, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from suite.storage import db
from suite.storage.blobs import BlobBackend, BlobNotFound

log = structlog.get_logger("suite.backup")

FORMAT = "suite-backup-1"
EXCLUDED = frozenset({"alembic_version", "tus_uploads"})
# Derived, dialect-specific data rebuilt by restore from the rows it derives from: the full-text index
# of Emails (PostgreSQL ``email_search``; SQLite's FTS5 ``email_fts`` and its shadow tables are not in
# the ORM's metadata, so they are never read).
DERIVED = frozenset({"email_search"})
ATTEMPTS = 3
INSERT_BATCH = 500


class BackupError(Exception):
    """A backup or restore that cannot proceed; the message is one line for the operator."""


class _Retry(Exception):
    pass


# ------------------------------------------------------------------ values
def encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dt.datetime):
        return {"$t": value.isoformat()}
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):  # no scalar column reads back as a dict: these are ours
        if "$b" in value:
            return base64.b64decode(value["$b"])
        if "$t" in value:
            return dt.datetime.fromisoformat(value["$t"])
    return value


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


async def _reflect(conn: AsyncConnection) -> MetaData:
    md = MetaData()
    await conn.run_sync(lambda c: md.reflect(c))
    return md


# ------------------------------------------------------------------ snapshot
def _sqlite_copy(src: str, dst: Path) -> None:
    source = sqlite3.connect(src, timeout=30)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)  # one step: a consistent copy even while other connections write
    finally:
        target.close()
        source.close()


@asynccontextmanager
async def snapshot(engine: AsyncEngine, scratch: Path) -> AsyncIterator[AsyncConnection]:
    """A read-only connection that sees one point in time of the whole database."""
    url = engine.url.render_as_string(hide_password=False)
    if db.is_sqlite(url):
        copy = scratch / "snapshot.sqlite"
        await asyncio.to_thread(_sqlite_copy, engine.url.database or "", copy)
        snap = db.make_engine(f"sqlite+aiosqlite:///{copy}")
        try:
            async with snap.connect() as conn:
                yield conn
        finally:
            await snap.dispose()
            copy.unlink(missing_ok=True)
            for extra in ("-wal", "-shm"):
                Path(f"{copy}{extra}").unlink(missing_ok=True)
    else:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                await conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                yield conn


# ------------------------------------------------------------------ backup
async def backup(engine: AsyncEngine, blobs: BlobBackend, path: Path) -> dict:
    """Write a backup of ``engine``'s database and the blobs it references to ``path`` (a new or
    empty directory). Returns the manifest."""
    if path.exists() and any(path.iterdir()):
        raise BackupError(f"{path} is not empty; give a new directory")
    path.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, ATTEMPTS + 1):
        for sub in ("tables", "blobs", "scratch"):
            shutil.rmtree(path / sub, ignore_errors=True)
            (path / sub).mkdir()
        try:
            manifest = await _backup_once(engine, blobs, path)
        except _Retry as exc:
            log.info("backup.retry", attempt=attempt, reason=str(exc))
            continue
        shutil.rmtree(path / "scratch", ignore_errors=True)
        _write_json(path / "manifest.json", manifest)
        return manifest
    raise BackupError(f"blobs kept disappearing during the backup ({ATTEMPTS} attempts); is gc running in a loop?")


async def _backup_once(engine: AsyncEngine, blobs: BlobBackend, path: Path) -> dict:
    started = time.time()
    counts: dict[str, int] = {}
    digests: list[tuple[str, int]] = []
    async with snapshot(engine, path / "scratch") as conn:
        revision = await conn.run_sync(_revision)
        md = await _reflect(conn)
        for table in md.sorted_tables:
            if table.name in EXCLUDED | DERIVED or table.name not in _ours():
                continue
            counts[table.name] = await _dump_table(conn, table, path / "tables" / f"{table.name}.jsonl")
        if "blobs" in md.tables:
            t = md.tables["blobs"]
            rows = await conn.execute(select(t.c.digest, t.c.size).where(t.c.refcount > 0).order_by(t.c.digest))
            digests = [(r[0], r[1]) for r in rows]
    total = 0
    for digest, size in digests:
        total += await _copy_blob(blobs, digest, size, path / "blobs")
    _fsync_dir(path / "tables")
    return {
        "format": FORMAT,
        "created_at": started,
        "revision": revision,
        "source": engine.dialect.name,
        "tables": counts,
        "blobs": len(digests),
        "blob_bytes": total,
    }


def _ours() -> set[str]:
    """The tables of Suite's schema (the ORM's metadata): not FTS shadow tables, not sqlite_sequence."""
    import suite.models  # noqa: F401  (registers every table)

    return set(db.Base.metadata.tables)


def _revision(conn) -> str | None:
    from alembic.runtime.migration import MigrationContext

    heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) or None


async def _dump_table(conn: AsyncConnection, table: Table, out: Path) -> int:
    n = 0
    pk = list(table.primary_key.columns)
    query = select(table).order_by(*pk) if pk else select(table)
    with open(out, "w") as f:
        result = await conn.stream(query)
        async for row in result:
            f.write(json.dumps({k: encode(v) for k, v in row._mapping.items()}, separators=(",", ":")) + "\n")
            n += 1
        f.flush()
        os.fsync(f.fileno())
    return n


async def _copy_blob(blobs: BlobBackend, digest: str, size: int, root: Path) -> int:
    target = root / digest[:2] / digest
    target.parent.mkdir(exist_ok=True)
    h = hashlib.sha256()
    n = 0
    try:
        with open(target, "wb") as f:
            async for chunk in blobs.read(digest):
                h.update(chunk)
                f.write(chunk)
                n += len(chunk)
            f.flush()
            os.fsync(f.fileno())
    except BlobNotFound:
        target.unlink(missing_ok=True)
        raise _Retry(f"blob {digest} was collected after the snapshot") from None
    if h.hexdigest() != digest or n != size:
        raise BackupError(f"blob {digest} in the store does not match its digest or size: the store is damaged")
    return n


# ------------------------------------------------------------------ restore
def read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} holds no complete backup (manifest.json missing)") from None
    except ValueError:
        raise BackupError(f"{path}/manifest.json is not valid JSON") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a {FORMAT} backup")
    return manifest


async def _database_empty(engine: AsyncEngine) -> str | None:
    """The name of a table that holds rows, or None."""
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: inspect(c).get_table_names())
        md = await _reflect(conn)
        for name in names:
            if name == "alembic_version":
                continue
            if await conn.scalar(select(func.count()).select_from(md.tables[name])):
                return name
    return None


async def restore(engine: AsyncEngine, blobs: BlobBackend, path: Path) -> dict:
    """Load the backup at ``path`` into an empty database and blob store, then bring the schema to
    this version's head. Blobs go first (a row never points at a missing blob); all rows go in one
    transaction (a failed restore leaves no rows)."""
    manifest = read_manifest(path)
    busy = await _database_empty(engine)
    if busy is not None:
        raise BackupError(f"the database is not empty (table {busy} has rows); restore needs an empty one")
    async for _ in blobs.list_digests():
        raise BackupError("the blob store is not empty; restore needs an empty one")
    revision = manifest.get("revision")
    if revision:
        for rev in revision.split(","):
            try:
                await db.migrate(engine, rev)
            except Exception as exc:
                raise BackupError(f"this Suite cannot create schema revision {rev} of the backup: {exc}") from None
    n_blobs = 0
    for digest_file in sorted((path / "blobs").glob("*/*")):
        await _put_blob(blobs, digest_file)
        n_blobs += 1
    async with engine.begin() as conn:
        md = await _reflect(conn)
        for table in md.sorted_tables:
            if table.name not in manifest["tables"]:
                continue
            rows = _ordered(table, _read_rows(path / "tables" / f"{table.name}.jsonl"))
            for i in range(0, len(rows), INSERT_BATCH):
                await conn.execute(table.insert(), rows[i : i + INSERT_BATCH])
            if engine.dialect.name == "postgresql":
                await _reset_sequences(conn, table)
    await db.migrate(engine, "heads")
    if "emails" in manifest["tables"]:
        await rebuild_search_index(engine)
    return {**manifest, "restored_blobs": n_blobs}


async def rebuild_search_index(engine: AsyncEngine) -> int:
    """The full-text index of every Email, from its stored header/body text and structure (what
    delivery indexed), in this database's own form (FTS5 or tsvector)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    from suite.mail.store import emails, search

    async with AsyncSession(engine) as s, s.begin():
        c = await db.conn(s)
        rows = await c.all(
            "SELECT e.id, e.account_id, t.headers, t.body, "
            "(SELECT m.structure FROM messages m WHERE m.email_id = e.id LIMIT 1) "
            "FROM emails e LEFT JOIN message_texts t ON t.blob = e.blob ORDER BY e.id"
        )
        for email_id, account_id, headers, body, structure in rows:
            meta = emails.meta_of(headers or "{}", structure)
            doc = search.document(headers or "{}", body or "", meta.attachment_names)
            await search.index(c, account_id, email_id, doc)
    return len(rows)


def _read_rows(path: Path) -> list[dict]:
    with open(path) as f:
        return [{k: decode(v) for k, v in json.loads(line).items()} for line in f if line.strip()]


def _ordered(table: Table, rows: list[dict]) -> list[dict]:
    """Rows of a table that refers to itself (folders) with every parent before its children."""
    selfref = [(fk.parent.name, fk.column.name) for fk in table.foreign_keys if fk.column.table.name == table.name]
    if not selfref:
        return rows
    col, target = selfref[0]
    done: set = set()
    out: list[dict] = []
    pending = rows
    while pending:
        later = []
        for r in pending:
            if r.get(col) is None or r[col] in done:
                out.append(r)
                done.add(r[target])
            else:
                later.append(r)
        if len(later) == len(pending):  # a cycle or a dangling parent: keep them; the database judges
            out.extend(later)
            break
        pending = later
    return out


async def _reset_sequences(conn: AsyncConnection, table: Table) -> None:
    """Explicit ids were inserted: move each serial/identity sequence past them."""
    for col in table.primary_key.columns:
        seq = await conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": col.name})
        if seq:
            await conn.execute(
                text(f'SELECT setval(:s, COALESCE((SELECT MAX("{col.name}") FROM "{table.name}"), 0) + 1, false)'),
                {"s": seq},
            )


async def _put_blob(blobs: BlobBackend, file: Path) -> None:
    w = await blobs.open_writer()
    try:
        with open(file, "rb") as f:
            while data := await asyncio.to_thread(f.read, 4 * 1024 * 1024):
                await w.write(data)
        ref = await w.commit()
    except BaseException:
        await w.abort()
        raise
    if ref.digest != file.name:
        raise BackupError(f"backup blob {file.name} is damaged (its content hashes to {ref.digest})")


def tables_of(manifest: dict) -> Iterable[str]:
    return manifest["tables"].keys()
