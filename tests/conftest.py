"""Shared fixtures: every store test runs on SQLite and on PostgreSQL (a throwaway database)."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest

from suite.config import Settings
from suite.context import open_context
from suite.storage import db
from suite.testing import POSTGRES_ADMIN_DSN, missing

BACKENDS = ["sqlite", "postgres"]


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_url():
    """One throwaway PostgreSQL database for the test session, dropped at the end."""
    name = f"suite_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        missing(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {exc.__class__.__name__}")
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_pg_migrated: set[str] = set()


async def _reset_pg(url: str) -> None:
    engine = db.make_engine(url)
    try:
        if url not in _pg_migrated:
            await db.migrate(engine)
            _pg_migrated.add(url)
        from sqlalchemy import text

        tables = [t.name for t in db.Base.metadata.sorted_tables]
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'suite.db'}"
    url = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    import suite.models  # noqa: F401

    return Settings(data_dir=tmp_path / "data", database_url=db_url, bus_backend="memory")


@pytest.fixture
async def ctx(settings: Settings):
    if settings.db_url.startswith("postgresql"):
        await _reset_pg(settings.db_url)
    else:
        engine = db.make_engine(settings.db_url)
        await db.migrate(engine)
        await engine.dispose()
    c = await open_context(settings)
    yield c
    await c.close()
