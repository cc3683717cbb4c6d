"""Alembic environment: always called with a connection from suite.storage.db.migrate()."""

from alembic import context

import suite.models  # noqa: F401  (registers every table on Base.metadata)
from suite.storage.db import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover
    raise SystemExit("run migrations through `suite init` / suite.storage.db.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
