"""Tables of the one mail model shared by IMAP and JMAP (RFC 8621 §1.6).

An Email is one row in ``emails`` (one id, its blob, its thread, its keywords); each IMAP mailbox
it is in is a ``messages`` row (UID and MODSEQ per mailbox) pointing at it through ``email_id``.
JMAP states advance through ``mail_changes``, a per-account log written in the same transaction
as the change (``mail_states`` serialises an account's writers so log ids follow commit order).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class Email(Base):
    __tablename__ = "emails"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    blob: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInt)
    thread_id: Mapped[int] = mapped_column(BigInt)
    received_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # JMAP keywords (RFC 8621 §4.1.1), lower case, space separated, with a space at both ends
    # (" $seen $flagged ") so a keyword filter is one LIKE.
    keywords: Mapped[str] = mapped_column(Text, default=" ")
    message_id: Mapped[str] = mapped_column(String(500), default="")
    subject: Mapped[str] = mapped_column(Text, default="")  # RFC 5256 §2.1 base subject, for sort/threads
    from_sort: Mapped[str] = mapped_column(String(500), default="")
    to_sort: Mapped[str] = mapped_column(String(500), default="")
    has_attachment: Mapped[bool] = mapped_column(Boolean, default=False)
    # JSON of the list properties read from the message (suite.mail.jmap.message.LIST_FACTS), written
    # with the row; NULL for rows stored before revision 0003wp until Email/get fills them
    list_facts: Mapped[str | None] = mapped_column(Text, nullable=True)
    __table_args__ = (
        Index("ix_emails_account_received", "account_id", "received_at"),
        Index("ix_emails_account_thread", "account_id", "thread_id"),
        Index("ix_emails_account_blob", "account_id", "blob"),
        # RFC 8620 §1.2: an id is never reassigned (SQLite would reuse the highest rowid once deleted)
        {"sqlite_autoincrement": True},
    )


class ThreadRef(Base):
    """Message-IDs a thread's emails carry or refer to (RFC 5256 §2.2 REFERENCES), for threading at delivery."""

    __tablename__ = "thread_refs"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    msgid: Mapped[str] = mapped_column(String(500))
    thread_id: Mapped[int] = mapped_column(BigInt)
    __table_args__ = (UniqueConstraint("account_id", "msgid", "thread_id"),)


class MailChange(Base):
    """One changed object of one transaction: kind "Email" | "Mailbox" | "Thread" | …, op c(reated), u(pdated),
    d(estroyed) or k (a mailbox whose counts changed only)."""

    __tablename__ = "mail_changes"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    obj_id: Mapped[int] = mapped_column(BigInt)
    op: Mapped[str] = mapped_column(String(1))
    __table_args__ = (Index("ix_mail_changes_account_kind_id", "account_id", "kind", "id"),)


class MailState(Base):
    __tablename__ = "mail_states"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInt, default=0)


class Upload(Base):
    """A blob uploaded through JMAP (RFC 8620 §6.1), holding a blob reference until it expires."""

    __tablename__ = "jmap_uploads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    blob: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInt)
    type: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (Index("ix_jmap_uploads_account_blob", "account_id", "blob"),)


class Submission(Base):
    """An EmailSubmission (RFC 8621 §7) and the outbound queue entry it became."""

    __tablename__ = "jmap_submissions"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    email_id: Mapped[int] = mapped_column(BigInt)
    thread_id: Mapped[int] = mapped_column(BigInt)
    identity_id: Mapped[str] = mapped_column(String(100))
    envelope: Mapped[str] = mapped_column(Text)  # JSON {"mailFrom": …, "rcptTo": […]}
    send_at: Mapped[float] = mapped_column(Float)
    undo_status: Mapped[str] = mapped_column(String(10))  # pending | final | canceled
    queue_id: Mapped[int | None] = mapped_column(BigInt, nullable=True)
    __table_args__ = ({"sqlite_autoincrement": True},)


class EmailSearch(Base):
    """PostgreSQL's full-text index of Emails (suite.mail.store.search); SQLite uses the FTS5
    table ``email_fts`` the migration creates instead (this table stays empty there)."""

    __tablename__ = "email_search"
    email_id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    tsv: Mapped[str] = mapped_column(TSVECTOR().with_variant(Text(), "sqlite"))
    __table_args__ = (Index("ix_email_search_tsv", "tsv", postgresql_using="gin"),)


class PushSubscription(Base):
    """A JMAP push callback (RFC 8620 §7.2): StateChange objects are POSTed to ``url`` once verified."""

    __tablename__ = "jmap_push_subscriptions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    device_client_id: Mapped[str] = mapped_column(String(255))
    url: Mapped[str] = mapped_column(Text)
    keys: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {p256dh, auth}
    verification_code: Mapped[str] = mapped_column(String(64))
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    expires: Mapped[float] = mapped_column(Float)
    types: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list or null (all)


class MailboxThread(Base):
    """How many of a thread's Emails are in a mailbox (memberships) and how many of those are unread:
    a mailbox's totalThreads/unreadThreads move when a row's count crosses zero."""

    __tablename__ = "mailbox_threads"
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    thread_id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    emails: Mapped[int] = mapped_column(BigInt)
    unread: Mapped[int] = mapped_column(BigInt)
    __table_args__ = (Index("ix_mailbox_threads_thread", "thread_id"),)


class PushDelivery(Base):
    """One StateChange owed to a push subscription (RFC 8620 §7.2): the first gateway process to
    claim the row (a conditional UPDATE) sends it, so several processes send it once."""

    __tablename__ = "jmap_push_deliveries"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("jmap_push_subscriptions.id", ondelete="CASCADE"), index=True
    )
    state_key: Mapped[str] = mapped_column(String(200))  # the account's states, e.g. "Email=12,Mailbox=9"
    body: Mapped[str] = mapped_column(Text)  # the StateChange JSON
    claimed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("subscription_id", "state_key"),)
