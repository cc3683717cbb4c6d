"""storage network: where each blob's copies are, and the repair queue

Revision ID: 0003n
Revises: 0002
Create Date: 2026-12-05 05:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003n"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "blob_locations",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),  # good / bad / pending
        sa.Column("size", BIG, nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("checked_at", sa.Float(), nullable=True),  # last scrub
        sa.PrimaryKeyConstraint("digest", "provider", name=op.f("pk_blob_locations")),
    )
    with op.batch_alter_table("blob_locations", schema=None) as batch_op:
        batch_op.create_index("ix_blob_locations_provider_state", ["provider", "state"], unique=False)
    op.create_table(
        "blob_repairs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("due_at", sa.Float(), nullable=False),  # a worker claims a due row by moving it forward
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_blob_repairs")),
    )
    with op.batch_alter_table("blob_repairs", schema=None) as batch_op:
        batch_op.create_index("ix_blob_repairs_due_at", ["due_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("blob_repairs", schema=None) as batch_op:
        batch_op.drop_index("ix_blob_repairs_due_at")
    op.drop_table("blob_repairs")
    with op.batch_alter_table("blob_locations", schema=None) as batch_op:
        batch_op.drop_index("ix_blob_locations_provider_state")
    op.drop_table("blob_locations")
