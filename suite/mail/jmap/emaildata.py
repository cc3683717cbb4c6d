"""Reading Emails for JMAP: rows, memberships, structures and raw bytes in few queries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from suite.mail import mime
from suite.mail.jmap import message
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
    facts: dict[str, Any] | None = None  # message.LIST_FACTS, None until stored (rows before 0003wp)


async def rows(store, account_id: int, ids: list[int]) -> dict[int, EmailRow]:
    out: dict[int, EmailRow] = {}
    if not ids:
        return out
    async with store.raw_db.read(snapshot=True) as c:
        for i in range(0, len(ids), model.CHUNK):
            cond, args = model.in_list(c, "id", ids[i : i + model.CHUNK])
            for r in await c.all(
                "SELECT id, blob, size, thread_id, received_at, keywords, has_attachment, list_facts FROM emails "
                f"WHERE account_id = ? AND {cond}",
                account_id,
                *args,
            ):
                facts = json.loads(r[7]) if r[7] else None
                kws = model.keywords_from_column(r[5])
                out[r[0]] = EmailRow(r[0], r[1], r[2], r[3], r[4], kws, bool(r[6]), [], facts)
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


async def fill_facts(store, rows: list[EmailRow], structs: dict[int, mime.MessageStructure]) -> None:
    """Compute and save the list facts of rows stored before they were cached (revision 0003wp):
    one blob read each, once; later reads of these rows open no blob."""
    todo = [r for r in rows if r.facts is None and r.id in structs]
    if not todo:
        return
    for r in todo:
        r.facts = message.list_facts(await store.raw(r.blob), structs[r.id])
    async with store.raw_db.write() as c:
        await c.many(
            "UPDATE emails SET list_facts = ? WHERE id = ? AND list_facts IS NULL",
            [(json.dumps(r.facts, ensure_ascii=False), r.id) for r in todo],
        )


async def owns_blob(store, account_id: int, digest: str) -> bool:
    """Whether the account may read this blob: one of its Emails or one of its uploads."""
    async with store.raw_db.read() as c:
        if await c.scalar("SELECT 1 FROM emails WHERE account_id = ? AND blob = ? LIMIT 1", account_id, digest):
            return True
        return bool(
            await c.scalar("SELECT 1 FROM jmap_uploads WHERE account_id = ? AND blob = ? LIMIT 1", account_id, digest)
        )
