"""Identities (RFC 8621 §6) as JMAP objects, from the account store (suite.accounts.identities):
the account's own address, one per alias, and those the user made."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap.protocol import types


async def identities(ctx, account_id: int) -> list[dict[str, Any]]:
    return [
        {
            "id": types.make("I", i.id),
            "name": i.name,
            "email": i.email,
            "replyTo": i.reply_to,
            "bcc": i.bcc,
            "textSignature": i.text_signature,
            "htmlSignature": i.html_signature,
            "mayDelete": i.may_delete,
        }
        for i in await ctx.accounts.identities(account_id)
    ]
