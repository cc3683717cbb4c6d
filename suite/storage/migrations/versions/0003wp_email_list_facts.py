"""emails.list_facts: the JMAP list properties cached per Email, so a list page reads no blob

Revision ID: 0003wp
Revises: 0003jb
Create Date: 2026-12-05 09:00:00

Rows stored before this revision keep NULL here: their facts come from the message's bytes, which
live in the blob store (disk or S3) that a migration cannot reach. Email/get computes and saves them
the first time it reads such a row (suite.mail.jmap.emaildata.fill_facts), a batch per request.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003wp"
down_revision = "0003jb"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("emails", sa.Column("list_facts", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("emails", "list_facts")  # SQLite >= 3.35: ALTER TABLE DROP COLUMN
