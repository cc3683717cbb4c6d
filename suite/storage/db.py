"""The one SQL database: engine setup for SQLite (embedded default) and PostgreSQL, and migrations.

SQLite runs in WAL mode with a busy timeout so that several tasks (and processes) can share it;
PostgreSQL runs through asyncpg. Every table lives in ``Base.metadata``; alembic owns the schema.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import BigInteger, Integer, MetaData, event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
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
