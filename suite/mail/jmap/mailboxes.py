"""Mailbox objects (RFC 8621 §2) from the store's mailboxes: roles from SPECIAL-USE (RFC 6154),
the hierarchy from the "/" separated names, counts from the memberships."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap.protocol import types
from suite.mail.store import SEPARATOR, MailboxInfo

ROLE_OF = {
    "\\Sent": "sent",
    "\\Drafts": "drafts",
    "\\Trash": "trash",
    "\\Junk": "junk",
    "\\Archive": "archive",
    "\\All": "all",
    "\\Flagged": "flagged",
}
USE_OF = {v: k for k, v in ROLE_OF.items()}
PROPERTIES = [
    "id",
    "name",
    "parentId",
    "role",
    "sortOrder",
    "totalEmails",
    "unreadEmails",
    "totalThreads",
    "unreadThreads",
    "myRights",
    "isSubscribed",
]
RIGHTS = {
    "mayReadItems": True,
    "mayAddItems": True,
    "mayRemoveItems": True,
    "maySetSeen": True,
    "maySetKeywords": True,
    "mayCreateChild": True,
    "mayRename": True,
    "mayDelete": True,
    "maySubmit": True,
}
SORT = {"inbox": 1, "drafts": 2, "sent": 3, "archive": 4, "junk": 5, "trash": 6}


def role(mb: MailboxInfo) -> str | None:
    if mb.name == "INBOX":
        return "inbox"
    return ROLE_OF.get(mb.special_use or "")


async def counts(
    c, account_id: int, state: int | None = None, cache: dict | None = None
) -> dict[int, tuple[int, int, int, int]]:
    """mailbox id → (totalEmails, unreadEmails, totalThreads, unreadThreads), one grouped query.

    Every change of a count logs a Mailbox change (suite.mail.store.emails), so counts computed at
    a Mailbox ``state`` stay right until that state moves: ``cache`` (one per database) keeps them
    per account for it."""
    if state is not None and cache is not None:
        hit = cache.get(account_id)
        if hit is not None and hit[0] == state:
            return hit[1]
    out = await _count(c, account_id)
    if state is not None and cache is not None:
        if len(cache) > 10_000:
            cache.clear()
        cache[account_id] = (state, out)
    return out


async def _count(c, account_id: int) -> dict[int, tuple[int, int, int, int]]:
    rows = await c.all(
        "SELECT m.mailbox_id, count(*), "
        "sum(CASE WHEN e.keywords LIKE '% $seen %' THEN 0 ELSE 1 END), count(DISTINCT e.thread_id), "
        "count(DISTINCT CASE WHEN e.keywords LIKE '% $seen %' THEN NULL ELSE e.thread_id END) "
        "FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN emails e ON e.id = m.email_id "
        "WHERE b.account_id = ? GROUP BY m.mailbox_id",
        account_id,
    )
    return {r[0]: (int(r[1]), int(r[2] or 0), int(r[3]), int(r[4])) for r in rows}


def to_json(mb: MailboxInfo, by_name: dict[str, MailboxInfo], cnt: tuple[int, int, int, int] | None) -> dict[str, Any]:
    parent_name, _, leaf = mb.name.rpartition(SEPARATOR)
    parent = by_name.get(parent_name) if parent_name else None
    r = role(mb)
    total, unread, threads, unread_threads = cnt or (0, 0, 0, 0)
    return {
        "id": types.make("M", mb.id),
        "name": leaf,
        "parentId": types.make("M", parent.id) if parent else None,
        "role": r,
        "sortOrder": SORT.get(r or "", 10),
        "totalEmails": total,
        "unreadEmails": unread,
        "totalThreads": threads,
        "unreadThreads": unread_threads,
        "myRights": dict(RIGHTS, mayDelete=r != "inbox", mayRename=r != "inbox"),
        "isSubscribed": mb.subscribed,
    }
