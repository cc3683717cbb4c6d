"""meeting rooms: the end-to-end encrypted flag

Revision ID: 0003me
Revises: 0003m
Create Date: 2026-12-05 07:50:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003me"
down_revision = "0003m"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("meeting_rooms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("e2ee", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("meeting_rooms", schema=None) as batch_op:
        batch_op.drop_column("e2ee")
