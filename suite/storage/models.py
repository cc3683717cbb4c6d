"""Tables of the storage layer: blob reference counts."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class BlobRow(Base):
    """One row per stored blob: its size and how many rows elsewhere refer to it."""

    __tablename__ = "blobs"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex SHA-256
    size: Mapped[int] = mapped_column(BigInt)
    refcount: Mapped[int] = mapped_column(BigInt, default=0)
    created_at: Mapped[float] = mapped_column(Float)
