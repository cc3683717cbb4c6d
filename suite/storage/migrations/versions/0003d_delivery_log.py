"""delivery log of SMTP transactions in and out

Revision ID: 0003d
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa

revision = "0003d"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mail_from", sa.String(length=1000), nullable=False),
        sa.Column("recipient", sa.String(length=1000), nullable=False),
        sa.Column("reply", sa.String(length=1000), nullable=False),
        sa.Column("remote", sa.String(length=300), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_log")),
    )
    op.create_index("ix_delivery_log_at", "delivery_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_log_at", table_name="delivery_log")
    op.drop_table("delivery_log")
