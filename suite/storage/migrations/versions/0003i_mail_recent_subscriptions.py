"""mail: IMAP \\Recent claims and subscriptions of names without a mailbox

Revision ID: 0003i
Revises: 0002
Create Date: 2026-12-05 04:35:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003i"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_recent",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("prev", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("upto", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_mail_recent_mailbox_id_mailboxes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mailbox_id", name=op.f("pk_mail_recent")),
    )
    op.create_table(
        "mail_lost_subscriptions",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_mail_lost_subscriptions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "name", name=op.f("pk_mail_lost_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("mail_lost_subscriptions")
    op.drop_table("mail_recent")
