"""per-account option: big attachments of mail sent through SMTP submission become share links

Revision ID: 0003ba
Revises: 0002
Create Date: 2026-12-05 06:20:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = "0003ba"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("big_attachment_links", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("big_attachment_links")
