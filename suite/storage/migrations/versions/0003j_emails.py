"""one mail model for IMAP and JMAP: emails, threads, change log, uploads, submissions

Revision ID: 0003j
Revises: 0002
Create Date: 2026-12-05 04:40:00
"""

import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003j"
down_revision = "0002"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _account_fk(table: str):
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=op.f(f"fk_{table}_account_id_accounts"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "emails",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("blob", sa.String(length=64), nullable=False),
        sa.Column("size", BIG, nullable=False),
        sa.Column("thread_id", BIG, nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.Column("keywords", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("from_sort", sa.String(length=500), nullable=False),
        sa.Column("to_sort", sa.String(length=500), nullable=False),
        sa.Column("has_attachment", sa.Boolean(), nullable=False),
        _account_fk("emails"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_emails")),
        sqlite_autoincrement=True,  # ids are never reassigned (RFC 8620 §1.2)
    )
    op.create_index("ix_emails_account_received", "emails", ["account_id", "received_at"])
    op.create_index("ix_emails_account_thread", "emails", ["account_id", "thread_id"])
    op.create_index("ix_emails_account_blob", "emails", ["account_id", "blob"])
    op.create_table(
        "thread_refs",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("msgid", sa.String(length=500), nullable=False),
        sa.Column("thread_id", BIG, nullable=False),
        _account_fk("thread_refs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread_refs")),
        sa.UniqueConstraint("account_id", "msgid", "thread_id", name=op.f("uq_thread_refs_account_id")),
    )
    op.create_table(
        "mail_changes",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("obj_id", BIG, nullable=False),
        sa.Column("op", sa.String(length=1), nullable=False),
        _account_fk("mail_changes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_changes")),
    )
    op.create_index("ix_mail_changes_account_kind_id", "mail_changes", ["account_id", "kind", "id"])
    op.create_table(
        "mail_states",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("seq", BIG, nullable=False),
        _account_fk("mail_states"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_mail_states")),
    )
    op.create_table(
        "jmap_uploads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("blob", sa.String(length=64), nullable=False),
        sa.Column("size", BIG, nullable=False),
        sa.Column("type", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _account_fk("jmap_uploads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jmap_uploads")),
    )
    op.create_index("ix_jmap_uploads_account_blob", "jmap_uploads", ["account_id", "blob"])
    op.create_table(
        "jmap_submissions",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("email_id", BIG, nullable=False),
        sa.Column("thread_id", BIG, nullable=False),
        sa.Column("identity_id", sa.String(length=100), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("send_at", sa.Float(), nullable=False),
        sa.Column("undo_status", sa.String(length=10), nullable=False),
        sa.Column("queue_id", BIG, nullable=True),
        _account_fk("jmap_submissions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jmap_submissions")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_jmap_submissions_account_id"), "jmap_submissions", ["account_id"])
    op.create_table(
        "email_search",
        sa.Column("email_id", BIG, autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("tsv", postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite"), nullable=False),
        _account_fk("email_search"),
        sa.PrimaryKeyConstraint("email_id", name=op.f("pk_email_search")),
    )
    op.create_index("ix_email_search_tsv", "email_search", ["tsv"], postgresql_using="gin")
    op.create_table(
        "jmap_push_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("device_client_id", sa.String(length=255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("keys", sa.Text(), nullable=True),
        sa.Column("verification_code", sa.String(length=64), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("expires", sa.Float(), nullable=False),
        sa.Column("types", sa.Text(), nullable=True),
        _account_fk("jmap_push_subscriptions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jmap_push_subscriptions")),
    )
    op.create_index(
        op.f("ix_jmap_push_subscriptions_account_id"), "jmap_push_subscriptions", ["account_id"], unique=False
    )
    if op.get_bind().dialect.name == "sqlite":
        # the full-text index on SQLite (suite.mail.store.search); PostgreSQL uses email_search
        op.execute(
            "CREATE VIRTUAL TABLE email_fts USING fts5(subject, addrs, names, body, "
            "tokenize='unicode61 remove_diacritics 2')"
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_id", BIG, nullable=True))
        batch_op.create_index("ix_messages_email", ["email_id", "mailbox_id"], unique=False)
        batch_op.create_index("ix_messages_mailbox_date", ["mailbox_id", "internaldate"], unique=False)
    _backfill()


def _backfill() -> None:
    """Messages stored before this revision: one Email each (its own thread)."""
    from suite.mail.store import emails, search

    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT m.id, b.account_id, m.blob, m.size, m.internaldate, m.sent_date, m.flags, t.headers, t.body "
            "FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id "
            "LEFT JOIN message_texts t ON t.blob = m.blob ORDER BY m.id"
        )
    ).all()
    for mid, account_id, blob, size, date, sent, flags, headers, body in rows:
        meta = emails.meta_of(headers or json.dumps({}))
        eid = bind.execute(
            sa.text(
                "INSERT INTO emails (account_id, blob, size, thread_id, received_at, sent_at, keywords, message_id, "
                "subject, from_sort, to_sort, has_attachment) VALUES (:a, :b, :s, 0, :r, :st, :k, :mi, :su, :f, :t, "
                ":h) RETURNING id"
            ),
            dict(
                a=account_id,
                b=blob,
                s=size,
                r=date,
                st=sent,
                k=emails.keywords_column(emails.keywords_of(flags.split())),
                mi=meta.message_id,
                su=meta.subject,
                f=meta.from_sort,
                t=meta.to_sort,
                h=False,
            ),
        ).scalar_one()
        bind.execute(sa.text("UPDATE emails SET thread_id = :e WHERE id = :e"), dict(e=eid))
        bind.execute(sa.text("UPDATE messages SET email_id = :e WHERE id = :m"), dict(e=eid, m=mid))
        doc = search.document(headers or "{}", body or "", [])
        if bind.dialect.name == "sqlite":
            bind.execute(
                sa.text("INSERT INTO email_fts (rowid, subject, addrs, names, body) VALUES (:e, :s, :a, :n, :b)"),
                dict(e=eid, s=doc["subject"], a=doc["addrs"], n=doc["names"], b=doc["body"]),
            )
        else:
            bind.execute(
                sa.text(
                    "INSERT INTO email_search (email_id, account_id, tsv) VALUES (:e, :acc, "
                    "setweight(to_tsvector('simple', :s), 'A') || setweight(to_tsvector('simple', :a), 'B') || "
                    "setweight(to_tsvector('simple', :n), 'C') || setweight(to_tsvector('simple', :b), 'D'))"
                ),
                dict(e=eid, acc=account_id, s=doc["subject"], a=doc["addrs"], n=doc["names"], b=doc["body"]),
            )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_mailbox_date")
        batch_op.drop_index("ix_messages_email")
        batch_op.drop_column("email_id")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE email_fts")
    for table in (
        "jmap_push_subscriptions",
        "email_search",
        "jmap_submissions",
        "jmap_uploads",
        "mail_states",
        "mail_changes",
        "thread_refs",
        "emails",
    ):
        op.drop_table(table)
