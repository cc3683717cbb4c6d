"""The per-account change log behind JMAP states (RFC 8620 §1.6): every write that changes an object
a JMAP client sees adds ``mail_changes`` rows (kind, object id, op) in its own transaction. The mail
store logs Emails, Mailboxes and Threads (suite.mail.store.emails); the account store logs Identities
(its aliases and identities), so a state moves whoever made the change."""

from __future__ import annotations

from collections.abc import Iterable

from suite.storage.db import Conn

IDENTITY = "Identity"


async def log(c: Conn, account_id: int, changes: Iterable[tuple[str, int, str]]) -> None:
    """Record changed objects (kind, id, op c/u/d); takes the account's state row first."""
    rows = list(dict.fromkeys(changes))
    if not rows:
        return
    # PostgreSQL: the row lock orders an account's writers, so its log ids follow commit order
    # (SQLite has one writer at a time: nothing to order)
    n = await c.run("UPDATE mail_states SET seq = seq + 1 WHERE account_id = ?", account_id) if c.pg else 1
    if not n:
        await c.run(
            "INSERT INTO mail_states (account_id, seq) VALUES (?, 1) ON CONFLICT (account_id) "
            "DO UPDATE SET seq = mail_states.seq + 1",
            account_id,
        )
    await c.many(
        "INSERT INTO mail_changes (account_id, kind, obj_id, op) VALUES (?, ?, ?, ?)",
        [(account_id, kind, obj, op) for kind, obj, op in rows],
    )


async def state(c: Conn, account_id: int, kind: str) -> int:
    v = await c.scalar("SELECT max(id) FROM mail_changes WHERE account_id = ? AND kind = ?", account_id, kind)
    return int(v or 0)
