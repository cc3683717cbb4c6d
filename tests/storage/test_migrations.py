"""Alembic migrations go up and down on both databases, and the models match the migrations."""

from __future__ import annotations

from sqlalchemy import inspect

from suite.storage import db


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names())) - {"alembic_version"}
    # SQLite's FTS5 full-text index (migration 0003j) and its shadow tables have no model
    return {n for n in names if not n.startswith("email_fts")}


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
            # email_fts*: SQLite's FTS5 full-text index and its shadow tables, made by migration 0003j
            # (a virtual table has no SQLAlchemy model)
            opts = {"include_name": lambda name, kind, _p: not (kind == "table" and name.startswith("email_fts"))}
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts=opts), db.Base.metadata)
            )
        assert diff == []
    finally:
        await engine.dispose()
