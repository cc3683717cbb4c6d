"""Email/query (RFC 8621 §4.4, RFC 8620 §5.5): filters, sorts, collapseThreads, position/anchor,
calculateTotal — one indexed SQL statement, read in pages."""

from __future__ import annotations

import json
from typing import Any

from suite.mail.jmap import emailquery, mailboxes
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.store import emails as model

ARGS = {
    "accountId",
    "filter",
    "sort",
    "position",
    "anchor",
    "anchorOffset",
    "limit",
    "calculateTotal",
    "collapseThreads",
}
MAX_LIMIT = 5000
MAX_CACHED_TOTALS = 256
PAGE = 1000


def _int(args: dict, name: str, default: int | None) -> int | None:
    v = args.get(name, default)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool):
        raise MethodError("invalidArguments", f"{name} must be an integer")
    return v


@method("Email/query", MAIL)
async def email_query(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, ARGS)
    position = _int(args, "position", 0) or 0
    anchor_offset = _int(args, "anchorOffset", 0) or 0
    limit = _int(args, "limit", None)
    if limit is not None and limit < 0:
        raise MethodError("invalidArguments", "limit must not be negative")
    capped = limit is None or limit > MAX_LIMIT
    limit = MAX_LIMIT if capped or limit is None else limit
    anchor = args.get("anchor")
    if anchor is not None and not isinstance(anchor, str):
        raise MethodError("invalidArguments", "anchor must be an id")
    collapse = bool(args.get("collapseThreads"))
    store = cctx.store
    async with store.raw_db.read(snapshot=True) as c:
        src, sargs, order, oargs = emailquery.build(cctx.account_id, args.get("filter"), args.get("sort"), c.pg)
        st = await model.state(c, cctx.account_id, model.EMAIL)
        total = None
        if args.get("calculateTotal") or position < 0:
            only = emailquery.only_mailbox(args.get("filter"))
            if only is not None:
                # a whole folder: its Mailbox totalEmails/totalThreads, the counters kept with every change;
                # counting a 100 000-message folder again costs ~150 ms on every page
                cnt = (await mailboxes.counts(c, cctx.account_id)).get(only)
                total = (cnt[2] if collapse else cnt[0]) if cnt else 0
            else:
                # a search's total: counting every match of a common word in 100 000 messages costs
                # ~0.5 s, and the web app asks it with every page of results; the count only changes
                # with the Email state (the same snapshot), so it is kept per filter and state
                totals = cctx.cache.setdefault("query_totals", {})
                key = (cctx.account_id, json.dumps(args.get("filter"), sort_keys=True), collapse, st)
                total = totals.get(key)
                if total is None:
                    what = "count(DISTINCT e.thread_id)" if collapse else "count(DISTINCT e.id)"
                    total = int(await c.scalar(f"SELECT {what} {src}", *sargs) or 0)
                    while len(totals) >= MAX_CACHED_TOTALS:
                        del totals[next(iter(totals))]  # the oldest first
                    totals[key] = total
        if position < 0:
            position = max(0, (total or 0) + position)
        sql = f"SELECT e.id, e.thread_id {src} ORDER BY {order}"
        ids: list[int] = []
        found_anchor = anchor is None
        if not collapse and anchor is None:
            rows = await c.all(f"{sql} LIMIT ? OFFSET ?", *sargs, *oargs, limit, position)
            ids = [r[0] for r in rows]
        else:
            # walk the ordered rows once, in pages: threads collapsed, the anchor looked for
            anchor_n = types.parse("e", anchor) if anchor is not None else None
            seen_threads: set[int] = set()
            seq: list[int] = []
            offset = 0
            stop_at = None if anchor is not None else position + limit
            while True:
                rows = await c.all(f"{sql} LIMIT ? OFFSET ?", *sargs, *oargs, PAGE, offset)
                for eid, tid in rows:
                    if collapse:
                        if tid in seen_threads:
                            continue
                        seen_threads.add(tid)
                    seq.append(eid)
                    if anchor_n is not None and eid == anchor_n and not found_anchor:
                        found_anchor = True
                        position = max(0, len(seq) - 1 + anchor_offset)
                        stop_at = position + limit
                if stop_at is not None and len(seq) >= stop_at or len(rows) < PAGE:
                    break
                offset += PAGE
            if not found_anchor:
                raise MethodError("anchorNotFound", "the anchor is not in the results")
            ids = seq[position : position + limit]
    out: dict[str, Any] = {
        "accountId": cctx.jmap_account_id,
        "queryState": types.state(st),
        "canCalculateChanges": True,  # Email/queryChanges
        "position": position,
        "ids": [types.make("e", i) for i in ids],
    }
    if total is not None and args.get("calculateTotal"):
        out["total"] = total
    if capped and len(ids) == MAX_LIMIT:
        out["limit"] = MAX_LIMIT
    return out
