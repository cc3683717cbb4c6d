"""Tables of the outbound queue and the DKIM keys.

A queued message is one row (envelope sender, blob digest, DKIM-Signature header lines) plus one row per
recipient with its own status, attempt count and next attempt time (RFC 5321 §4.5.4.1: retries per
recipient). The message bytes live in the blob store, referenced by the message row.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class QueuedMessage(Base):
    __tablename__ = "queue_messages"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    mail_from: Mapped[str] = mapped_column(String(1000))  # "" = null reverse-path (a DSN)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # submitting account
    blob: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInt)
    # DKIM-Signature header lines (CRLF-terminated), sent in front of the blob's bytes.
    dkim_headers: Mapped[str] = mapped_column(Text, default="")
    smtputf8: Mapped[bool] = mapped_column(Boolean, default=False)
    body_8bit: Mapped[bool] = mapped_column(Boolean, default=False)
    session_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[float] = mapped_column(Float)
    # RFC 4865 FUTURERELEASE: held until then (JMAP delayed send); cancelable until a worker claims it
    hold_until: Mapped[float | None] = mapped_column(Float, nullable=True)


class QueuedRecipient(Base):
    __tablename__ = "queue_recipients"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("queue_messages.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(1000))
    domain: Mapped[str] = mapped_column(String(255))
    # queued | sent | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due time; a worker claims a due row by moving it forward by its lease.
    next_attempt_at: Mapped[float] = mapped_column(Float)
    last_attempt_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_reply: Mapped[str] = mapped_column(Text, default="")
    remote_mta: Mapped[str] = mapped_column(String(255), default="")
    __table_args__ = (Index("ix_queue_recipients_status_due", "status", "next_attempt_at"),)


class DkimKey(Base):
    __tablename__ = "dkim_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255))
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(16))  # ed25519 | rsa
    private_key: Mapped[str] = mapped_column(Text)  # PEM (PKCS#8)
    created_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("domain", "selector"),)
