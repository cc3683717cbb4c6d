"""Tables of the mail store."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class Mailbox(Base):
    __tablename__ = "mailboxes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    # Full hierarchical name, "/" separated, in UTF-8 (IMAP4rev2 names; mUTF-7 is converted at the edge).
    name: Mapped[str] = mapped_column(String(1000))
    special_use: Mapped[str | None] = mapped_column(String(20), nullable=True)  # \Sent, \Trash, … (RFC 6154)
    uidvalidity: Mapped[int] = mapped_column(BigInt)
    uidnext: Mapped[int] = mapped_column(BigInt, default=1)
    highestmodseq: Mapped[int] = mapped_column(BigInt, default=1)
    subscribed: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    # RFC 8621 §2 counts, moved in the transaction of every change (suite.mail.store.counters)
    total_emails: Mapped[int] = mapped_column(BigInt, default=0, server_default="0")
    unread_emails: Mapped[int] = mapped_column(BigInt, default=0, server_default="0")
    total_threads: Mapped[int] = mapped_column(BigInt, default=0, server_default="0")
    unread_threads: Mapped[int] = mapped_column(BigInt, default=0, server_default="0")
    __table_args__ = (UniqueConstraint("account_id", "name"),)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInt)
    modseq: Mapped[int] = mapped_column(BigInt)
    blob: Mapped[str] = mapped_column(String(64))  # SHA-256 of the raw bytes, exactly as received
    size: Mapped[int] = mapped_column(BigInt)
    internaldate: Mapped[float] = mapped_column(Float)
    sent_date: Mapped[float | None] = mapped_column(Float, nullable=True)  # Date: header, for SENT* searches
    # System flags and keywords, space separated, as the client spelled them ("\Seen $Forwarded").
    flags: Mapped[str] = mapped_column(Text, default="")
    # Parsed once at delivery (suite.mail.mime): the structure tree with byte offsets, ENVELOPE inside.
    structure: Mapped[bytes] = mapped_column(LargeBinary)
    # the Email this membership belongs to (suite.mail.store.email_models; RFC 8621 §1.6)
    email_id: Mapped[int | None] = mapped_column(BigInt, nullable=True)
    __table_args__ = (
        UniqueConstraint("mailbox_id", "uid"),
        Index("ix_messages_email", "email_id", "mailbox_id"),
        Index("ix_messages_mailbox_date", "mailbox_id", "internaldate"),
        Index("ix_messages_mailbox_modseq", "mailbox_id", "modseq"),
        Index("ix_messages_blob", "blob"),
    )


class MessageText(Base):
    """Decoded header fields and body text for SEARCH, computed once at delivery."""

    __tablename__ = "message_texts"
    blob: Mapped[str] = mapped_column(String(64), primary_key=True)  # shared by every copy of the message
    headers: Mapped[str] = mapped_column(Text)  # JSON {lower-name: [folded values]}
    body: Mapped[str] = mapped_column(Text)


class Expunged(Base):
    """Expunge log for CONDSTORE/QRESYNC (RFC 7162 §3.2.10 VANISHED (EARLIER))."""

    __tablename__ = "expunged"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    uid: Mapped[int] = mapped_column(BigInt)
    modseq: Mapped[int] = mapped_column(BigInt)
    __table_args__ = (Index("ix_expunged_mailbox_modseq", "mailbox_id", "modseq"),)


class Counter(Base):
    """Monotonic counters that must survive row deletion (UIDVALIDITY must never repeat for a name)."""

    __tablename__ = "mail_counters"
    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInt)


class RecentClaim(Base):
    """IMAP4rev1 \\Recent (RFC 3501 §2.3.2): UIDs below ``upto`` were given as recent to exactly one
    session.  A session claims [upto, uidnext) atomically, so across sessions and processes each
    message is recent in one session only (the row lock / upsert serialises claims)."""

    __tablename__ = "mail_recent"
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    prev: Mapped[int] = mapped_column(BigInt)  # start of the last claim (returned with it)
    upto: Mapped[int] = mapped_column(BigInt)  # first UID not claimed yet


class LostSubscription(Base):
    """A subscribed name that has no mailbox (deleted, or subscribed before it existed): RFC 3501
    §6.3.6 / RFC 9051 §6.3.7 keep it on the subscription list; LIST (SUBSCRIBED) shows it with
    \\NonExistent (RFC 5258 §3.1).  Subscriptions of existing mailboxes are ``mailboxes.subscribed``."""

    __tablename__ = "mail_lost_subscriptions"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(1000), primary_key=True)
