"""Call records and the in-process CallHistory, fed by a real CallSwitch."""

from __future__ import annotations

from suite.voip.calls import (
    CallPolicy,
    CallSwitch,
    FromClient,
    RecordCall,
    SessionOpened,
    Tick,
)
from suite.voip.history import CallHistory, CallOutcome, MemoryCallHistory
from suite.voip.messages import EndReason, parse_client_message

T0 = 1_700_000_000.0


def drive(sw: CallSwitch, now: float, session: str, **fields: object) -> list[RecordCall]:
    out = sw.handle(FromClient(session, parse_client_message(fields)), now)
    return [c for c in out if isinstance(c, RecordCall)]


async def test_history_rows_from_a_day_of_calls() -> None:
    sw = CallSwitch(CallPolicy(ring_timeout=25))
    for s, a in (("a1", "alice"), ("b1", "bob"), ("c1", "carol")):
        sw.handle(SessionOpened(s, a), T0)
    rows = []
    # 1. alice -> bob, answered after 3 s, 60 s of talk.
    drive(sw, T0, "a1", type="invite", call_id="call-0001", to="bob")
    drive(sw, T0 + 3, "b1", type="accept", call_id="call-0001")
    rows += drive(sw, T0 + 63, "b1", type="hangup", call_id="call-0001")
    # 2. carol -> bob, nobody answers.
    drive(sw, T0 + 100, "c1", type="invite", call_id="call-0002", to="bob")
    rows += [c for c in sw.handle(Tick(), T0 + 125) if isinstance(c, RecordCall)]
    # 3. bob -> carol, declined.
    drive(sw, T0 + 200, "b1", type="invite", call_id="call-0003", to="carol")
    rows += drive(sw, T0 + 201, "c1", type="decline", call_id="call-0003")

    history = MemoryCallHistory()
    assert isinstance(history, CallHistory)
    for row in rows:
        await history.add(row.record)
    await history.add(rows[0].record)  # idempotent on call id

    bob = await history.list("bob")
    assert [r.call_id for r in bob] == [
        "call-0003",
        "call-0002",
        "call-0001",
    ]  # newest first
    answered, missed, declined = bob[2], bob[1], bob[0]
    assert (answered.outcome, answered.duration, answered.answered_at) == (
        CallOutcome.ANSWERED,
        60,
        T0 + 3,
    )
    assert (missed.outcome, missed.end_reason, missed.duration) == (
        CallOutcome.MISSED,
        EndReason.TIMEOUT,
        0,
    )
    assert missed.missed_for("bob") and not missed.missed_for("carol")
    assert declined.outcome is CallOutcome.DECLINED and not declined.missed_for("carol")
    assert [r.call_id for r in await history.list("alice")] == ["call-0001"]
    assert [r.call_id for r in await history.list("carol", limit=1)] == ["call-0003"]
    assert await history.list("dave") == []
