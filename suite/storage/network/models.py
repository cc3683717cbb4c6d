"""Tables of the storage network: where each blob's copies are, and the repair queue."""

from __future__ import annotations

from sqlalchemy import Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class BlobLocation(Base):
    """One copy of a blob on one provider: good (readable, digest checked on write), bad (failed a
    digest check or vanished; repair re-copies it) or pending."""

    __tablename__ = "blob_locations"
    __table_args__ = (Index("ix_blob_locations_provider_state", "provider", "state"),)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInt)
    updated_at: Mapped[float] = mapped_column(Float)
    checked_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # last scrub


class BlobRepair(Base):
    """A blob whose copies differ from placement; a worker claims it by moving ``due_at`` forward."""

    __tablename__ = "blob_repairs"
    __table_args__ = (Index("ix_blob_repairs_due_at", "due_at"),)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text)
