"""Mailbox counts (RFC 8621 §2: totalEmails, unreadEmails, totalThreads, unreadThreads) kept in the
transaction of every change instead of recounted.

``mailbox_threads`` holds, per (mailbox, thread), how many memberships of the thread's Emails the
mailbox has and how many of those Emails are unread (no ``$seen``); the mailbox row holds the four
sums. A change is a set of deltas per (mailbox, thread); a thread is counted in a mailbox while its
row's count is above zero. Mailbox rows are updated in id order (the store's lock order)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from suite.storage.db import Conn

CHUNK = 500
Deltas = dict[tuple[int, int], list[int]]  # (mailbox id, thread id) → [Δ emails, Δ unread]


def new() -> Deltas:
    return defaultdict(lambda: [0, 0])


def unread(keywords: str) -> int:
    """1 when an Email's keywords column (" $seen $flagged ") has no $seen."""
    return 0 if " $seen " in keywords else 1


async def members(c: Conn, deltas: Deltas, pairs: Sequence[tuple[int, int | None]], sign: int) -> None:
    """Add (sign = 1) or remove (-1) memberships (mailbox id, email id) to ``deltas``; the Emails must
    still exist."""
    ids = sorted({e for _, e in pairs if e is not None})
    info: dict[int, tuple[int, int]] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        marks = ", ".join("?" * len(chunk))
        for eid, tid, kws in await c.all(f"SELECT id, thread_id, keywords FROM emails WHERE id IN ({marks})", *chunk):
            info[eid] = (tid, unread(kws))
    for mb, eid in pairs:
        if eid is None or eid not in info:
            continue
        tid, u = info[eid]
        d = deltas[(mb, tid)]
        d[0] += sign
        d[1] += sign * u


async def apply(c: Conn, deltas: Deltas) -> None:
    """Write ``deltas`` to ``mailbox_threads`` and the mailboxes' four counters."""
    per_mb: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (mb, tid), (de, du) in sorted(deltas.items()):
        if not de and not du:
            continue
        old = await c.one("SELECT emails, unread FROM mailbox_threads WHERE mailbox_id = ? AND thread_id = ?", mb, tid)
        oe, ou = (int(old[0]), int(old[1])) if old else (0, 0)
        ne, nu = max(oe + de, 0), max(ou + du, 0)
        if ne == 0:
            if old:
                await c.run("DELETE FROM mailbox_threads WHERE mailbox_id = ? AND thread_id = ?", mb, tid)
            nu = 0
        elif old:
            await c.run(
                "UPDATE mailbox_threads SET emails = ?, unread = ? WHERE mailbox_id = ? AND thread_id = ?",
                ne,
                nu,
                mb,
                tid,
            )
        else:
            await c.run(
                "INSERT INTO mailbox_threads (mailbox_id, thread_id, emails, unread) VALUES (?, ?, ?, ?)",
                mb,
                tid,
                ne,
                nu,
            )
        t = per_mb[mb]
        t[0] += ne - oe
        t[1] += nu - ou
        t[2] += (ne > 0) - (oe > 0)
        t[3] += (nu > 0) - (ou > 0)
    for mb in sorted(per_mb):
        te, ue, tt, ut = per_mb[mb]
        if te or ue or tt or ut:
            await c.run(
                "UPDATE mailboxes SET total_emails = total_emails + ?, unread_emails = unread_emails + ?, "
                "total_threads = total_threads + ?, unread_threads = unread_threads + ? WHERE id = ?",
                te,
                ue,
                tt,
                ut,
                mb,
            )


async def merge_threads(c: Conn, deltas: Deltas, into: int, others: Iterable[int]) -> None:
    """Threads ``others`` joined thread ``into``: their counts move with them."""
    for other in others:
        for mb, n, u in await c.all(
            "SELECT mailbox_id, emails, unread FROM mailbox_threads WHERE thread_id = ?", other
        ):
            src, dst = deltas[(mb, other)], deltas[(mb, into)]
            src[0] -= n
            src[1] -= u
            dst[0] += n
            dst[1] += u


async def read(c: Conn, account_id: int) -> dict[int, tuple[int, int, int, int]]:
    """mailbox id → (totalEmails, unreadEmails, totalThreads, unreadThreads): one indexed read."""
    rows = await c.all(
        "SELECT id, total_emails, unread_emails, total_threads, unread_threads FROM mailboxes WHERE account_id = ?",
        account_id,
    )
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows}


async def recount(c: Conn, account_id: int) -> dict[int, tuple[int, int, int, int]]:
    """The same counts from the memberships (what ``read`` must always equal; for tests and repair)."""
    rows = await c.all(
        "SELECT m.mailbox_id, count(*), "
        "sum(CASE WHEN e.keywords LIKE '% $seen %' THEN 0 ELSE 1 END), count(DISTINCT e.thread_id), "
        "count(DISTINCT CASE WHEN e.keywords LIKE '% $seen %' THEN NULL ELSE e.thread_id END) "
        "FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN emails e ON e.id = m.email_id "
        "WHERE b.account_id = ? GROUP BY m.mailbox_id",
        account_id,
    )
    return {r[0]: (int(r[1]), int(r[2] or 0), int(r[3]), int(r[4])) for r in rows}
