"""JMAP: mailbox counters kept with each change, identities, push deliveries claimed once, held
(FUTURERELEASE) queue messages

Revision ID: 0003jb
Revises: 0003j, 0003q
Create Date: 2026-12-05 08:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003jb"
down_revision = ("0003j", "0003q")
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNTERS = ("total_emails", "unread_emails", "total_threads", "unread_threads")
UNREAD = "CASE WHEN e.keywords LIKE '% $seen %' THEN 0 ELSE 1 END"


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        for col in COUNTERS:
            batch_op.add_column(sa.Column(col, BIG, server_default="0", nullable=False))
    op.create_table(
        "mailbox_threads",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("thread_id", BIG, nullable=False),
        sa.Column("emails", BIG, nullable=False),
        sa.Column("unread", BIG, nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"], ["mailboxes.id"], name=op.f("fk_mailbox_threads_mailbox_id_mailboxes"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "thread_id", name=op.f("pk_mailbox_threads")),
    )
    op.create_index("ix_mailbox_threads_thread", "mailbox_threads", ["thread_id"])
    op.create_table(
        "identities",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("bcc", sa.Text(), nullable=True),
        sa.Column("text_signature", sa.Text(), nullable=False),
        sa.Column("html_signature", sa.Text(), nullable=False),
        sa.Column("may_delete", sa.Boolean(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_identities_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identities")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_identities_account_id"), "identities", ["account_id"], unique=False)
    op.create_table(
        "jmap_push_deliveries",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("state_key", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["jmap_push_subscriptions.id"],
            name=op.f("fk_jmap_push_deliveries_subscription_id_jmap_push_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jmap_push_deliveries")),
        sa.UniqueConstraint("subscription_id", "state_key", name=op.f("uq_jmap_push_deliveries_subscription_id")),
    )
    op.create_index(
        op.f("ix_jmap_push_deliveries_subscription_id"), "jmap_push_deliveries", ["subscription_id"], unique=False
    )
    with op.batch_alter_table("queue_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_until", sa.Float(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        # the FTS5 index's vocabulary (no storage of its own): IMAP SEARCH finds the tokens that contain
        # a word (suite.mail.store.search.candidates_query)
        op.execute("CREATE VIRTUAL TABLE email_fts_vocab USING fts5vocab(email_fts, 'row')")
    _backfill()


def _backfill() -> None:
    """Counters of the mail already stored; an identity per account and per (non catch-all) alias."""
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO mailbox_threads (mailbox_id, thread_id, emails, unread) "
            f"SELECT m.mailbox_id, e.thread_id, count(*), sum({UNREAD}) "
            "FROM messages m JOIN emails e ON e.id = m.email_id GROUP BY m.mailbox_id, e.thread_id"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE mailboxes SET "
            "total_emails = (SELECT coalesce(sum(t.emails), 0) FROM mailbox_threads t WHERE t.mailbox_id = mailboxes.id), "
            "unread_emails = (SELECT coalesce(sum(t.unread), 0) FROM mailbox_threads t WHERE t.mailbox_id = mailboxes.id), "
            "total_threads = (SELECT count(*) FROM mailbox_threads t WHERE t.mailbox_id = mailboxes.id), "
            "unread_threads = (SELECT count(*) FROM mailbox_threads t WHERE t.mailbox_id = mailboxes.id AND t.unread > 0)"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO identities (account_id, email, name, reply_to, bcc, text_signature, html_signature, "
            "may_delete, alias_id, created_at) SELECT id, address, NULL, NULL, NULL, '', '', :f, NULL, created_at "
            "FROM accounts ORDER BY id"
        ),
        dict(f=False),
    )
    bind.execute(
        sa.text(
            "INSERT INTO identities (account_id, email, name, reply_to, bcc, text_signature, html_signature, "
            "may_delete, alias_id, created_at) SELECT account_id, address, NULL, NULL, NULL, '', '', :t, id, "
            "created_at FROM aliases WHERE address NOT LIKE '*@%' ORDER BY id"
        ),
        dict(t=True),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE email_fts_vocab")
    with op.batch_alter_table("queue_messages", schema=None) as batch_op:
        batch_op.drop_column("hold_until")
    op.drop_index(op.f("ix_jmap_push_deliveries_subscription_id"), table_name="jmap_push_deliveries")
    op.drop_table("jmap_push_deliveries")
    op.drop_index(op.f("ix_identities_account_id"), table_name="identities")
    op.drop_table("identities")
    op.drop_index("ix_mailbox_threads_thread", table_name="mailbox_threads")
    op.drop_table("mailbox_threads")
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        for col in COUNTERS:
            batch_op.drop_column(col)
