"""sieve scripts and vacation state

Revision ID: 0003sieve
Revises: 0002
Create Date: 2026-12-05 05:00:00.000000
"""

from alembic import op
import sqlalchemy as sa


revision = "0003sieve"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sieve_scripts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sieve_scripts_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sieve_scripts")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_sieve_scripts_account_id")),
    )
    with op.batch_alter_table("sieve_scripts", schema=None) as batch_op:
        batch_op.create_index("ix_sieve_scripts_account_active", ["account_id", "active"], unique=False)
    op.create_table(
        "sieve_vacation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sieve_vacation_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sieve_vacation")),
        sa.UniqueConstraint("account_id", "key", name=op.f("uq_sieve_vacation_account_id")),
    )


def downgrade() -> None:
    op.drop_table("sieve_vacation")
    with op.batch_alter_table("sieve_scripts", schema=None) as batch_op:
        batch_op.drop_index("ix_sieve_scripts_account_active")
    op.drop_table("sieve_scripts")
