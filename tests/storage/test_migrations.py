"""Alembic migrations go up and down on both databases, and the models match the migrations."""

from __future__ import annotations

from sqlalchemy import inspect

from suite.storage import db


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}


async def test_up_down_up(settings):
    import suite.models  # noqa: F401

    engine = db.make_engine(settings.db_url)
    try:
        if settings.db_url.startswith("postgresql"):
            await db.downgrade(engine, "base")  # the session database may be migrated by other tests
        assert await _tables(engine) == set()
        await db.migrate(engine)
        assert await db.current_revision(engine) == db.head_revision()
        assert await _tables(engine) == set(db.Base.metadata.tables)
        await db.downgrade(engine, "base")
        assert await db.current_revision(engine) is None
        assert await _tables(engine) == set()
        await db.migrate(engine)
        assert await db.current_revision(engine) == db.head_revision()
    finally:
        await engine.dispose()


async def test_models_match_migrations(settings):
    """autogenerate finds nothing to do: the migrations create exactly what the models say."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import suite.models  # noqa: F401

    engine = db.make_engine(settings.db_url)
    try:
        await db.migrate(engine)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), db.Base.metadata))
        assert diff == []
    finally:
        await engine.dispose()
