"""EmailSubmission/get|changes|query (RFC 8621 §7.1–7.3) and Identity/changes (§6.2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import SUBMISSION
from suite.mail.jmap.methods.common import changes, check_known_args, get_ids, get_properties, state
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.store import emails as model

PROPS = [
    "id",
    "identityId",
    "emailId",
    "threadId",
    "envelope",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
]


def _obj(r) -> dict[str, Any]:
    return {
        "id": types.make("S", r[0]),
        "identityId": r[3],
        "emailId": types.make("e", r[1]),
        "threadId": types.make("T", r[2]),
        "envelope": json.loads(r[4]),
        "sendAt": datetime.fromtimestamp(r[5], UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "undoStatus": r[6],
        "deliveryStatus": _delivery(json.loads(r[4]), r[7]),
        "dsnBlobIds": [],
        "mdnBlobIds": [],
    }


def _delivery(envelope: dict, queued: dict[str, tuple[str, str]] | None) -> dict[str, Any]:
    """RFC 8621 §7 deliveryStatus: remote recipients from the queue, local ones delivered at once."""
    out: dict[str, Any] = {}
    for rcpt in envelope.get("rcptTo", []):
        addr = rcpt["email"]
        st, reply = (queued or {}).get(addr, ("sent", "250 2.0.0 delivered locally"))
        delivered = {"queued": "queued", "sent": "yes", "failed": "no"}.get(st, "unknown")
        out[addr] = {"smtpReply": reply or "250 2.0.0 OK", "delivered": delivered, "displayed": "unknown"}
    return out


async def _rows(cctx: CallContext) -> list:
    """Submissions with their live undoStatus and deliveryStatus (from the outbound queue)."""
    from suite.mail.jmap.methods.submission_set import submission_status

    async with cctx.store.raw_db.read() as c:
        rows = await c.all(
            "SELECT id, email_id, thread_id, identity_id, envelope, send_at, undo_status, queue_id "
            "FROM jmap_submissions WHERE account_id = ? ORDER BY send_at, id",
            cctx.account_id,
        )
        queued: dict[int, dict[str, tuple[str, str]]] = {}
        for r in rows:
            if r[7] is not None:
                recips = await c.all(
                    "SELECT address, status, last_reply FROM queue_recipients WHERE message_id = ?", r[7]
                )
                queued[r[0]] = {a: (st, reply) for a, st, reply in recips}
    out = []
    for r in rows:
        status = await submission_status(cctx, r[6], r[7])
        out.append((*r[:6], status, queued.get(r[0])))
    return out


@method("EmailSubmission/get", SUBMISSION)
async def submission_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ids", "properties"})
    ids = get_ids(cctx, args, "S")
    props = get_properties(args, set(PROPS), PROPS)
    objs = {o["id"]: o for o in (_obj(r) for r in await _rows(cctx))}
    want = list(objs) if ids is None else ids
    return {
        "accountId": cctx.jmap_account_id,
        "state": await state(cctx, model.SUBMISSION),
        "list": [{k: objs[i][k] for k in props} for i in want if i in objs],
        "notFound": [i for i in want if i not in objs],
    }


@method("EmailSubmission/changes", SUBMISSION)
async def submission_changes(cctx: CallContext, args: dict) -> dict:
    return await changes(cctx, args, model.SUBMISSION, "S")


@method("EmailSubmission/query", SUBMISSION)
async def submission_query(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(
        args, {"accountId", "filter", "sort", "position", "limit", "calculateTotal", "anchor", "anchorOffset"}
    )
    objs = [_obj(r) for r in await _rows(cctx)]
    flt = args.get("filter") or {}
    if not isinstance(flt, dict) or set(flt) - {
        "identityIds",
        "emailIds",
        "threadIds",
        "undoStatus",
        "before",
        "after",
    }:
        raise MethodError("unsupportedFilter", "filter by identityIds, emailIds, threadIds, undoStatus")
    for fkey, fprop in (("identityIds", "identityId"), ("emailIds", "emailId"), ("threadIds", "threadId")):
        if fkey in flt:
            objs = [o for o in objs if o[fprop] in (flt[fkey] or [])]
    if "undoStatus" in flt:
        objs = [o for o in objs if o["undoStatus"] == flt["undoStatus"]]
    sort = args.get("sort") or []
    for comp in reversed(sort if isinstance(sort, list) else []):
        prop = comp.get("property") if isinstance(comp, dict) else None
        if prop not in ("emailId", "threadId", "sentAt"):
            raise MethodError("unsupportedSort", f"cannot sort by {prop!r}")
        key: str = "sendAt" if prop == "sentAt" else str(prop)
        desc = comp.get("isAscending", True) is False
        objs.sort(key=lambda o: str(o[key]), reverse=desc)
    position = args.get("position", 0) or 0
    limit = args.get("limit")
    ids = [o["id"] for o in objs]
    out = {
        "accountId": cctx.jmap_account_id,
        "queryState": await state(cctx, model.SUBMISSION),
        "canCalculateChanges": False,
        "position": position,
        "ids": ids[position : position + limit if isinstance(limit, int) else None],
    }
    if args.get("calculateTotal"):
        out["total"] = len(ids)
    return out


@method("Identity/changes", SUBMISSION)
async def identity_changes(cctx: CallContext, args: dict) -> dict:
    return await changes(cctx, args, model.IDENTITY, "I")
