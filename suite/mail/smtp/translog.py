"""The delivery log: one row per recipient of each SMTP transaction, in (MX and submission, at the
end of DATA) and out (each queue attempt), with the reply — what the admin screen lists.

Rows older than ``RETENTION_SECONDS`` are deleted as new ones are written (every ``PRUNE_EVERY``-th).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Float, Index, Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from suite.mail.smtp.interfaces import TransactionRecord
from suite.storage.db import Base, BigInt, raw

RETENTION_SECONDS = 30 * 86400.0
PRUNE_EVERY = 500


class DeliveryLogRow(Base):
    __tablename__ = "delivery_log"
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    direction: Mapped[str] = mapped_column(String(8))  # in | out
    status: Mapped[str] = mapped_column(String(16))  # accepted | rejected | sent | deferred | failed
    mail_from: Mapped[str] = mapped_column(String(1000))
    recipient: Mapped[str] = mapped_column(String(1000))
    reply: Mapped[str] = mapped_column(String(1000))
    remote: Mapped[str] = mapped_column(String(300))  # client IP (in) or remote MTA (out)
    account_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ref: Mapped[str] = mapped_column(String(64))  # SMTP session id (in) or queue message id (out)
    __table_args__ = (Index("ix_delivery_log_at", "at"),)


@dataclass(frozen=True, slots=True)
class DeliveryLogEntry:
    id: int
    at: float
    direction: str
    status: str
    mail_from: str
    recipient: str
    reply: str
    remote: str
    account_id: int | None
    ref: str


def row(r: TransactionRecord, at: float | None = None) -> DeliveryLogRow:
    return DeliveryLogRow(
        at=time.time() if at is None else at,
        direction=r.direction,
        status=r.status,
        mail_from=r.mail_from[:1000],
        recipient=r.recipient[:1000],
        reply=r.reply[:1000],
        remote=r.remote[:300],
        account_id=r.account_id,
        ref=r.ref[:64],
    )


_INSERT = (
    "INSERT INTO delivery_log (at, direction, status, mail_from, recipient, reply, remote, account_id, ref) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class SqlTransactionLog:
    """``TransactionLog`` over the SQL database (the SMTP service's writer).

    A row per recipient after each transaction's reply: RawDB, joining the batch of the
    deliveries committing at the same moment, and relaxed (``durable=False``: fsynced within a
    second) — it is the admin's log, not a promise made to the client, and a second fsync per
    message cost more than the delivery's own."""

    def __init__(self, engine) -> None:
        self._raw = raw(engine)
        self._written = 0

    async def record(self, records: list[TransactionRecord]) -> None:
        now = time.time()
        rows = []
        for r in records:
            o = row(r, now)  # the same truncation as the queue's rows
            rows.append((o.at, o.direction, o.status, o.mail_from, o.recipient, o.reply, o.remote, o.account_id, o.ref))
        async with self._raw.write(durable=False) as c:
            await c.many(_INSERT, rows)
            self._written += len(records)
            if self._written >= PRUNE_EVERY:
                self._written = 0
                await c.run("DELETE FROM delivery_log WHERE at < ?", now - RETENTION_SECONDS)


async def recent(sessions, *, direction: str | None = None, limit: int = 200) -> list[DeliveryLogEntry]:
    async with sessions() as s:
        q = select(DeliveryLogRow).order_by(DeliveryLogRow.id.desc()).limit(limit)
        if direction:
            q = q.where(DeliveryLogRow.direction == direction)
        return [
            DeliveryLogEntry(
                r.id, r.at, r.direction, r.status, r.mail_from, r.recipient, r.reply, r.remote, r.account_id, r.ref
            )
            for r in await s.scalars(q)
        ]
