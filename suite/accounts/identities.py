"""Identities (RFC 8621 §6): the addresses an account sends from, with name, Reply-To, Bcc and
signatures. The account store keeps them with the account and its aliases — one made with the
account (not deletable), one per alias (made and removed with it) and any the user adds for an
address the account owns (its own, an alias, or any address of a domain whose catch-all it has).
Every change is logged in the account's change log (suite.storage.changelog) in the same
transaction, so the JMAP Identity state moves when an admin adds or removes an alias."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from suite.accounts.models import Account, Alias, Identity
from suite.storage import changelog, db

FIELDS = ("name", "reply_to", "bcc", "text_signature", "html_signature")


@dataclass(frozen=True, slots=True)
class IdentityInfo:
    id: int
    email: str
    name: str
    reply_to: list[dict] | None
    bcc: list[dict] | None
    text_signature: str
    html_signature: str
    may_delete: bool


def info(row: Identity, display_name: str) -> IdentityInfo:
    return IdentityInfo(
        row.id,
        row.email,
        display_name if row.name is None else row.name,
        json.loads(row.reply_to) if row.reply_to else None,
        json.loads(row.bcc) if row.bcc else None,
        row.text_signature,
        row.html_signature,
        row.may_delete,
    )


async def _log(s: AsyncSession, account_id: int, changes: list[tuple[int, str]]) -> None:
    await changelog.log(await db.conn(s), account_id, [(changelog.IDENTITY, i, op) for i, op in changes])


async def add(
    s: AsyncSession, account_id: int, email: str, *, alias_id: int | None = None, may_delete: bool = True, **fields
) -> Identity:
    row = Identity(
        account_id=account_id,
        email=email,
        name=fields.get("name"),
        reply_to=_json(fields.get("reply_to")),
        bcc=_json(fields.get("bcc")),
        text_signature=fields.get("text_signature") or "",
        html_signature=fields.get("html_signature") or "",
        may_delete=may_delete,
        alias_id=alias_id,
        created_at=time.time(),
    )
    s.add(row)
    await s.flush()
    await _log(s, account_id, [(row.id, "c")])
    return row


def _json(value) -> str | None:
    return None if value is None else json.dumps(value)


async def owns(s: AsyncSession, account_id: int, address: str, *, catch_all: bool = True) -> bool:
    """The address is the account's own, one of its aliases, or (``catch_all``) in a domain whose
    catch-all alias points at the account."""
    local, _, domain = address.rpartition("@")
    own = await s.scalar(select(Account.address).where(Account.id == account_id))
    if own == address:
        return True
    wanted = [address, f"*@{domain}"] if catch_all else [address]
    hit = await s.scalar(select(Alias.id).where(Alias.account_id == account_id, Alias.address.in_(wanted)))
    return hit is not None and bool(local)


async def after_alias_removed(s: AsyncSession, alias: Alias) -> None:
    """The alias's identity goes, and so does any identity no longer covered by what the account owns."""
    rows = list(await s.scalars(select(Identity).where(Identity.account_id == alias.account_id)))
    gone = []
    for row in rows:
        if row.alias_id == alias.id or (row.may_delete and not await owns(s, alias.account_id, row.email)):
            gone.append(row.id)
            await s.delete(row)
    if gone:
        await s.flush()
        await _log(s, alias.account_id, [(i, "d") for i in gone])


async def update(s: AsyncSession, row: Identity, fields: dict) -> None:
    for k, v in fields.items():
        if k not in FIELDS:
            raise KeyError(k)
        setattr(row, k, _json(v) if k in ("reply_to", "bcc") else ("" if v is None and k != "name" else v))
    await s.flush()
    await _log(s, row.account_id, [(row.id, "u")])
