"""Tables of the calls service: the call history (one row per finished one-to-one call)."""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column

from suite.storage.db import Base, BigInt


class CallHistoryRow(Base):
    """Caller and callee are account addresses (the switch's identities); both see the row."""

    __tablename__ = "call_history"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(String(64), unique=True)
    caller: Mapped[str] = mapped_column(String(320))
    callee: Mapped[str] = mapped_column(String(320))
    media: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    end_reason: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float] = mapped_column(Float)
    voicemail: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        Index("ix_call_history_caller_started", "caller", "started_at"),
        Index("ix_call_history_callee_started", "callee", "started_at"),
    )


class MeetingRoomRow(Base):
    """A meeting room behind a link ``/m/<token>``: only the SHA-256 of the token is stored."""

    __tablename__ = "meeting_rooms"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(320), index=True)
    title: Mapped[str] = mapped_column(String(200))
    lobby: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2ee: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """End-to-end encrypted: browsers encrypt every frame with a key the server never sees;
    recording is refused."""
