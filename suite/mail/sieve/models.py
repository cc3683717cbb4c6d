"""Tables of Sieve: scripts per account (at most one active, RFC 5804 §1.1) and the vacation
"already answered this sender" memory (RFC 5230 §4.6)."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base


class SieveScript(Base):
    __tablename__ = "sieve_scripts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    content: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    # bumped on every change: the delivery cache compares it (another process may have changed it)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        Index("ix_sieve_scripts_account_active", "account_id", "active"),
    )


class SieveVacation(Base):
    __tablename__ = "sieve_vacation"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))  # sha256(sender, handle)
    sent_at: Mapped[float] = mapped_column(Float)
    __table_args__ = (UniqueConstraint("account_id", "key"),)
