"""meeting rooms (links /m/<token>, only the token's hash stored)

Revision ID: 0003m
Revises: 0002
Create Date: 2026-12-05 05:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003m"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting_rooms",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("lobby", sa.Boolean(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_rooms")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_meeting_rooms_token_hash")),
    )
    with op.batch_alter_table("meeting_rooms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meeting_rooms_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("meeting_rooms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meeting_rooms_owner"))
    op.drop_table("meeting_rooms")
