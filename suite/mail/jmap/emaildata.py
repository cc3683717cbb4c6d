"""Reading Emails for JMAP: rows, memberships, structures and raw bytes in few queries."""

from __future__ import annotations

from dataclasses import dataclass

from suite.mail import mime
from suite.mail.store import emails as model


@dataclass
class EmailRow:
    id: int
    blob: str
    size: int
    thread_id: int
    received_at: float
    keywords: list[str]
    has_attachment: bool
    mailbox_ids: list[int]


async def rows(store, account_id: int, ids: list[int]) -> dict[int, EmailRow]:
    out: dict[int, EmailRow] = {}
    if not ids:
        return out
    async with store.raw_db.read(snapshot=True) as c:
        for i in range(0, len(ids), model.CHUNK):
            cond, args = model.in_list(c, "id", ids[i : i + model.CHUNK])
            for r in await c.all(
                "SELECT id, blob, size, thread_id, received_at, keywords, has_attachment FROM emails "
                f"WHERE account_id = ? AND {cond}",
                account_id,
                *args,
            ):
                out[r[0]] = EmailRow(r[0], r[1], r[2], r[3], r[4], model.keywords_from_column(r[5]), bool(r[6]), [])
            cond, args = model.in_list(c, "email_id", ids[i : i + model.CHUNK])
            for email_id, mailbox_id in await c.all(
                f"SELECT email_id, mailbox_id FROM messages WHERE {cond} ORDER BY mailbox_id", *args
            ):
                if email_id in out and mailbox_id not in out[email_id].mailbox_ids:
                    out[email_id].mailbox_ids.append(mailbox_id)
    return out


async def structures(store, ids: list[int]) -> dict[int, mime.MessageStructure]:
    out: dict[int, mime.MessageStructure] = {}
    async with store.raw_db.read() as c:
        for i in range(0, len(ids), model.CHUNK):
            cond, args = model.in_list(c, "email_id", ids[i : i + model.CHUNK])
            for email_id, data in await c.all(f"SELECT email_id, structure FROM messages WHERE {cond}", *args):
                if email_id not in out:
                    out[email_id] = mime.MessageStructure.from_json(data)
    return out


async def owns_blob(store, account_id: int, digest: str) -> bool:
    """Whether the account may read this blob: one of its Emails or one of its uploads."""
    async with store.raw_db.read() as c:
        if await c.scalar("SELECT 1 FROM emails WHERE account_id = ? AND blob = ? LIMIT 1", account_id, digest):
            return True
        return bool(
            await c.scalar("SELECT 1 FROM jmap_uploads WHERE account_id = ? AND blob = ? LIMIT 1", account_id, digest)
        )
