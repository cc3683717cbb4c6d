"""Call history: the record the call core emits and the store interface.

The call core (:mod:`suite.voip.calls`) emits a ``RecordCall`` command holding a
:class:`CallRecord` each time a one-to-one call finishes, whatever the outcome.
The account store implements :class:`CallHistory` (SQLAlchemy, later); a caller
and a callee both see the row, ``CallRecord.missed_for(account)`` tells the UI
which rows to show as missed calls.

Times are POSIX seconds (floats), as passed to the call core as ``now``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable

from suite.voip.messages import EndReason


class CallOutcome(StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"  # cancelled by the caller, timed out, callee unavailable
    DECLINED = "declined"
    BUSY = "busy"


@dataclass(frozen=True, slots=True)
class CallRecord:
    call_id: str
    caller: str
    callee: str
    media: str
    outcome: CallOutcome
    end_reason: EndReason
    started_at: float
    ended_at: float
    answered_at: float | None = None
    voicemail: bool = False
    """True when the caller was diverted to the voicemail agent."""

    @property
    def duration(self) -> float:
        """Talk time in seconds (0 for calls that were never answered)."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, self.ended_at - self.answered_at)

    def involves(self, account: str) -> bool:
        return account in (self.caller, self.callee)

    def missed_for(self, account: str) -> bool:
        """A callee missed the call when it was not answered nor declined by them."""
        return account == self.callee and self.outcome in (
            CallOutcome.MISSED,
            CallOutcome.BUSY,
        )


@runtime_checkable
class CallHistory(Protocol):
    """Persistent call log, implemented on the account store."""

    async def add(self, record: CallRecord) -> None:
        """Store one finished call (idempotent on ``record.call_id``)."""
        ...

    async def list(self, account: str, *, limit: int = 100) -> Sequence[CallRecord]:
        """Records where ``account`` is caller or callee, newest first."""
        ...


class MemoryCallHistory:
    """In-process :class:`CallHistory` (single process deployments and tests)."""

    def __init__(self) -> None:
        self._records: dict[str, CallRecord] = {}

    async def add(self, record: CallRecord) -> None:
        self._records.setdefault(record.call_id, record)

    async def list(self, account: str, *, limit: int = 100) -> Sequence[CallRecord]:
        rows = [r for r in self._records.values() if r.involves(account)]
        rows.sort(key=lambda r: (r.started_at, r.call_id), reverse=True)
        return rows[: max(0, limit)]
