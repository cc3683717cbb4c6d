"""Mailbox/queryChanges (RFC 8621 §2.4, RFC 8620 §5.6)."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import changed_since, query_changes_answer, since_query_state
from suite.mail.jmap.methods.mailbox_query import mailbox_query
from suite.mail.jmap.protocol import types
from suite.mail.store import emails as model


@method("Mailbox/queryChanges", MAIL)
async def mailbox_query_changes(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    async with cctx.store.raw_db.read() as c:
        current = await model.state(c, cctx.account_id, model.MAILBOX)
    since = since_query_state(args, current)
    q = {k: v for k, v in args.items() if k in ("accountId", "filter", "sort", "sortAsTree", "filterAsTree")}
    res = await mailbox_query(cctx, q)
    ordered = [n for n in (types.parse("M", i) for i in res["ids"]) if n is not None]
    changed = await changed_since(cctx, model.MAILBOX, since)
    return query_changes_answer(cctx, args, since, current, "M", changed, ordered)
