"""Mailbox objects (RFC 8621 §2) from the store's mailboxes: roles from SPECIAL-USE (RFC 6154),
the hierarchy from the "/" separated names, counts kept by the store."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap.protocol import types
from suite.mail.store import SEPARATOR, MailboxInfo, counters

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


async def counts(c, account_id: int) -> dict[int, tuple[int, int, int, int]]:
    """mailbox id → (totalEmails, unreadEmails, totalThreads, unreadThreads): the counters the store
    keeps with every change (suite.mail.store.counters), one indexed read."""
    return await counters.read(c, account_id)


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
