"""Mailbox/query (RFC 8621 §2.3): filters parentId, name, role, hasAnyRole, isSubscribed;
sorts sortOrder, name."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap import mailboxes
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.store import emails as model

FILTERS = {"parentId", "name", "role", "hasAnyRole", "isSubscribed"}


def _match(cond: Any, obj: dict) -> bool:
    if not isinstance(cond, dict):
        raise MethodError("invalidArguments", "a filter must be an object")
    if "operator" in cond:
        op, subs = cond.get("operator"), cond.get("conditions")
        if op not in ("AND", "OR", "NOT") or not isinstance(subs, list):
            raise MethodError("invalidArguments", "bad FilterOperator")
        results = [_match(s, obj) for s in subs]
        return all(results) if op == "AND" else any(results) if op == "OR" else not any(results)
    bad = [k for k in cond if k not in FILTERS]
    if bad:
        raise MethodError("unsupportedFilter", f"unknown filter {bad[0]!r}")
    ok = True
    if "parentId" in cond:
        ok &= obj["parentId"] == cond["parentId"]
    if "name" in cond:
        ok &= isinstance(cond["name"], str) and cond["name"].casefold() in obj["name"].casefold()
    if "role" in cond:
        ok &= obj["role"] == cond["role"]
    if "hasAnyRole" in cond:
        ok &= (obj["role"] is not None) == bool(cond["hasAnyRole"])
    if "isSubscribed" in cond:
        ok &= obj["isSubscribed"] == bool(cond["isSubscribed"])
    return ok


@method("Mailbox/query", MAIL)
async def mailbox_query(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(
        args,
        {
            "accountId",
            "filter",
            "sort",
            "position",
            "anchor",
            "anchorOffset",
            "limit",
            "calculateTotal",
            "sortAsTree",
            "filterAsTree",
        },
    )
    mbs = await cctx.store.list_mailboxes(cctx.account_id)
    async with cctx.store.raw_db.read() as c:
        st = await model.state(c, cctx.account_id, model.MAILBOX)
    by_name = {m.name: m for m in mbs}
    objs = [(m, mailboxes.to_json(m, by_name, None)) for m in mbs]
    flt = args.get("filter")
    if flt is not None:
        objs = [(m, o) for m, o in objs if _match(flt, o)]
    sort = args.get("sort") or []
    if not isinstance(sort, list):
        raise MethodError("invalidArguments", "sort must be a list")
    for comp in reversed(sort):
        prop = comp.get("property") if isinstance(comp, dict) else None
        if prop not in ("sortOrder", "name"):
            raise MethodError("unsupportedSort", f"cannot sort by {prop!r}")
        desc = comp.get("isAscending", True) is False
        if prop == "sortOrder":
            objs.sort(key=lambda mo: mo[1]["sortOrder"], reverse=desc)
        else:
            objs.sort(key=lambda mo: mo[1]["name"].casefold(), reverse=desc)
    if args.get("sortAsTree"):
        objs.sort(key=lambda mo: mo[0].name.split("/")[:-1])
    ids = [o["id"] for _, o in objs]
    position = args.get("position", 0)
    limit = args.get("limit")
    if not isinstance(position, int) or (limit is not None and (not isinstance(limit, int) or limit < 0)):
        raise MethodError("invalidArguments", "position and limit must be integers")
    anchor = args.get("anchor")
    if anchor is not None:
        if anchor not in ids:
            raise MethodError("anchorNotFound", "the anchor is not in the results")
        position = max(0, ids.index(anchor) + int(args.get("anchorOffset", 0)))
    elif position < 0:
        position = max(0, len(ids) + position)
    page = ids[position : position + limit if limit is not None else None]
    out = {
        "accountId": cctx.jmap_account_id,
        "queryState": types.state(st),
        "canCalculateChanges": True,
        "position": position,
        "ids": page,
    }
    if args.get("calculateTotal"):
        out["total"] = len(ids)
    return out
