"""Identities (RFC 8621 §6): the addresses the account may send from — its own and its aliases
(never the domain catch-all)."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap.protocol import types


async def identities(ctx, account_id: int) -> list[dict[str, Any]]:
    acct = await ctx.accounts.get_by_id(account_id)
    if acct is None:
        return []
    out = [_identity(types.make("I", 0), acct.display_name, acct.address)]
    for a in await ctx.accounts.list_aliases():
        if a.target == acct.address and not a.address.startswith("*@"):
            out.append(_identity(types.make("I", a.id), acct.display_name, a.address))
    return out


def _identity(iid: str, name: str, email: str) -> dict[str, Any]:
    return {
        "id": iid,
        "name": name,
        "email": email,
        "replyTo": None,
        "bcc": None,
        "textSignature": "",
        "htmlSignature": "",
        "mayDelete": False,
    }
