"""Email/queryChanges (RFC 8621 §4.5, RFC 8620 §5.6) from the change log: changed Emails (and,
with collapseThreads, every Email of a changed thread) are removed and re-added at their index."""

from __future__ import annotations

from suite.mail.jmap import emailquery
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import changed_since, check_known_args, query_changes_answer, since_query_state
from suite.mail.store import emails as model


@method("Email/queryChanges", MAIL)
async def email_query_changes(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(
        args,
        {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId", "calculateTotal", "collapseThreads"},
    )
    collapse = bool(args.get("collapseThreads"))
    store = cctx.store
    async with store.raw_db.read(snapshot=True) as c:
        current = await model.state(c, cctx.account_id, model.EMAIL)
        since = since_query_state(args, current)
        src, sargs, order, oargs = emailquery.build(cctx.account_id, args.get("filter"), args.get("sort"), c.pg)
        rows = await c.all(f"SELECT e.id, e.thread_id {src} ORDER BY {order}", *sargs, *oargs)
    changed = await changed_since(cctx, model.EMAIL, since)
    ordered: list[int] = []
    if collapse:
        threads = await changed_since(cctx, model.THREAD, since)
        seen: set[int] = set()
        for eid, tid in rows:
            if eid in changed:
                threads.add(tid)
        for eid, tid in rows:
            if tid in threads:
                changed.add(eid)
            if tid not in seen:
                seen.add(tid)
                ordered.append(eid)
    else:
        ordered = [r[0] for r in rows]
    return query_changes_answer(cctx, args, since, current, "e", changed, ordered)
