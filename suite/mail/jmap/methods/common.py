"""Shared steps of the standard methods: /get argument checks (RFC 8620 §5.1) and /changes over
the account's change log (§5.2)."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap.api import CallContext
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError
from suite.mail.store import emails as model


def get_ids(cctx: CallContext, args: dict, kind: str) -> list[str] | None:
    """The ``ids`` argument (None = all), with ``#creationId`` references resolved (§5.3)."""
    ids = args.get("ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MethodError("invalidArguments", "ids must be a list of ids or null")
    if len(ids) > cctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", f"at most {cctx.limits.max_objects_in_get} ids per /get")
    out = []
    for i in ids:
        if i.startswith("#"):
            out.append(cctx.created_id(i[1:]) or i)
        else:
            out.append(i)
    return out


def get_properties(args: dict, known: set[str], default: list[str]) -> list[str]:
    props = args.get("properties")
    if props is None:
        return list(default)
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise MethodError("invalidArguments", "properties must be a list of names")
    bad = [p for p in props if p not in known]
    if bad:
        raise MethodError("invalidArguments", f"unknown property {bad[0]!r}")
    return list(dict.fromkeys(["id", *props]))


def check_known_args(args: dict, allowed: set[str]) -> None:
    extra = [k for k in args if k not in allowed]
    if extra:
        raise MethodError("invalidArguments", f"unknown argument {extra[0]!r}")


async def state(cctx: CallContext, kind: str) -> str:
    async with cctx.store.raw_db.read() as c:
        return types.state(await model.state(c, cctx.account_id, kind))


async def changes(cctx: CallContext, args: dict, kind: str, prefix: str) -> dict[str, Any]:
    """/changes (RFC 8620 §5.2) of one kind from the change log."""
    cctx.check_account(args)
    check_known_args(args, {"accountId", "sinceState", "maxChanges"})
    since = types.parse_state(args.get("sinceState"))
    max_changes = args.get("maxChanges")
    if max_changes is not None and (
        not isinstance(max_changes, int) or isinstance(max_changes, bool) or max_changes < 1
    ):
        raise MethodError("invalidArguments", "maxChanges must be a positive integer")
    limit = min(max_changes or cctx.limits.max_changes, cctx.limits.max_changes)
    async with cctx.store.raw_db.read(snapshot=True) as c:
        current = await model.state(c, cctx.account_id, kind)
        if since is None or since > current:
            raise MethodError("cannotCalculateChanges", "unknown sinceState; fetch everything again")
        first: dict[int, str] = {}
        last: dict[int, str] = {}
        new_state = since
        more = False
        cursor = since
        while True:
            rows = await c.all(
                "SELECT id, obj_id, op FROM mail_changes WHERE account_id = ? AND kind = ? AND id > ? "
                "ORDER BY id LIMIT 1000",
                cctx.account_id,
                kind,
                cursor,
            )
            for rid, obj, op in rows:
                if obj not in first and len(first) >= limit:
                    more = True
                    break
                first.setdefault(obj, op)
                last[obj] = op
                new_state = rid
            if more or len(rows) < 1000:
                break
            cursor = rows[-1][0]
        if not more:
            new_state = current
    created, updated, destroyed = [], [], []
    counts_only = True
    for obj, op in first.items():
        end = last[obj]
        if op == "c":
            if end != "d":
                created.append(types.make(prefix, obj))
        elif end == "d":
            destroyed.append(types.make(prefix, obj))
        else:
            updated.append(types.make(prefix, obj))
            if op != "k" or end != "k":
                counts_only = False
    out: dict[str, Any] = {
        "accountId": cctx.jmap_account_id,
        "oldState": types.state(since),
        "newState": types.state(new_state),
        "hasMoreChanges": more,
        "created": created,
        "updated": updated,
        "destroyed": destroyed,
    }
    if kind == model.MAILBOX:
        # RFC 8621 §2.2: only the counts changed for every updated mailbox
        out["updatedProperties"] = (
            ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"] if updated and counts_only else None
        )
    return out


def if_in_state(current: str, args: dict) -> None:
    want = args.get("ifInState")
    if want is not None and want != current:
        raise MethodError("stateMismatch", "ifInState does not match the current state")


async def changed_since(cctx: CallContext, kind: str, since: int) -> set[int]:
    async with cctx.store.raw_db.read() as c:
        rows = await c.all(
            "SELECT DISTINCT obj_id FROM mail_changes WHERE account_id = ? AND kind = ? AND id > ?",
            cctx.account_id,
            kind,
            since,
        )
    return {r[0] for r in rows}


def query_changes_answer(
    cctx: CallContext, args: dict, since: int, new_state: int, prefix: str, changed: set[int], ordered: list[int]
) -> dict[str, Any]:
    """RFC 8620 §5.6: every changed id is in ``removed`` (over-reporting is allowed) and re-added at
    its index when it is in the results now."""
    max_changes = args.get("maxChanges")
    up_to = args.get("upToId")
    added = []
    for index, n in enumerate(ordered):
        if n in changed:
            added.append({"id": types.make(prefix, n), "index": index})
        if up_to is not None and types.make(prefix, n) == up_to:
            break
    removed = [types.make(prefix, n) for n in sorted(changed)]
    if isinstance(max_changes, int) and len(removed) + len(added) > max_changes:
        raise MethodError("tooManyChanges", "more changes than maxChanges")
    out: dict[str, Any] = {
        "accountId": cctx.jmap_account_id,
        "oldQueryState": types.state(since),
        "newQueryState": types.state(new_state),
        "removed": removed,
        "added": added,
    }
    if args.get("calculateTotal"):
        out["total"] = len(ordered)
    return out


def since_query_state(args: dict, current: int) -> int:
    since = types.parse_state(args.get("sinceQueryState"))
    if since is None or since > current:
        raise MethodError("cannotCalculateChanges", "unknown sinceQueryState; query again")
    mc = args.get("maxChanges")
    if mc is not None and (not isinstance(mc, int) or isinstance(mc, bool) or mc < 1):
        raise MethodError("invalidArguments", "maxChanges must be a positive integer")
    return since
