"""The SQL :class:`~suite.voip.history.CallHistory` (table ``call_history``, SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from suite.voip.history import CallOutcome, CallRecord
from suite.voip.messages import EndReason
from suite.voip.models import CallHistoryRow

MAX_LIST = 500


def _record(r: CallHistoryRow) -> CallRecord:
    return CallRecord(
        call_id=r.call_id,
        caller=r.caller,
        callee=r.callee,
        media=r.media,
        outcome=CallOutcome(r.outcome),
        end_reason=EndReason(r.end_reason),
        started_at=r.started_at,
        ended_at=r.ended_at,
        answered_at=r.answered_at,
        voicemail=r.voicemail,
    )


class SqlCallHistory:
    """Persistent call log; ``add`` is idempotent on ``call_id`` (a replayed record is ignored)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def add(self, record: CallRecord) -> None:
        try:
            async with self.sessions.begin() as s:
                if await s.scalar(select(CallHistoryRow.id).where(CallHistoryRow.call_id == record.call_id)):
                    return
                s.add(
                    CallHistoryRow(
                        call_id=record.call_id,
                        caller=record.caller,
                        callee=record.callee,
                        media=record.media,
                        outcome=record.outcome.value,
                        end_reason=record.end_reason.value,
                        started_at=record.started_at,
                        answered_at=record.answered_at,
                        ended_at=record.ended_at,
                        voicemail=record.voicemail,
                    )
                )
        except IntegrityError:
            pass  # the same call id committed concurrently: already recorded

    async def list(self, account: str, *, limit: int = 100) -> Sequence[CallRecord]:
        limit = max(0, min(limit, MAX_LIST))
        async with self.sessions() as s:
            rows = await s.scalars(
                select(CallHistoryRow)
                .where(or_(CallHistoryRow.caller == account, CallHistoryRow.callee == account))
                .order_by(CallHistoryRow.started_at.desc(), CallHistoryRow.call_id.desc())
                .limit(limit)
            )
            return [_record(r) for r in rows]
