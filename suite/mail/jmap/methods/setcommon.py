"""The frame of every /set (RFC 8620 §5.3): ifInState, object count limit, the response shape."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap.api import CallContext
from suite.mail.jmap.methods.common import check_known_args, if_in_state, state
from suite.mail.jmap.protocol.errors import MethodError


def parse_set(cctx: CallContext, args: dict, extra: set[str] = frozenset()) -> tuple[dict, dict, list]:  # type: ignore[assignment]
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ifInState", "create", "update", "destroy", *extra})
    create = args.get("create") or {}
    update = args.get("update") or {}
    destroy = args.get("destroy") or []
    if not isinstance(create, dict) or not isinstance(update, dict) or not isinstance(destroy, list):
        raise MethodError("invalidArguments", "create and update are maps, destroy a list")
    if len(create) + len(update) + len(destroy) > cctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"at most {cctx.limits.max_objects_in_set} objects per /set")
    resolved_destroy = []
    for d in destroy:
        if not isinstance(d, str):
            raise MethodError("invalidArguments", "destroy must list ids")
        resolved_destroy.append(cctx.created_id(d[1:]) or d if d.startswith("#") else d)
    resolved_update = {}
    for k, v in update.items():
        key = (cctx.created_id(k[1:]) or k) if k.startswith("#") else k
        resolved_update[key] = v
    return create, resolved_update, resolved_destroy


async def begin(cctx: CallContext, args: dict, kind: str) -> dict[str, Any]:
    old = await state(cctx, kind)
    if_in_state(old, args)
    return {
        "accountId": cctx.jmap_account_id,
        "oldState": old,
        "newState": old,
        "created": {},
        "updated": {},
        "destroyed": [],
        "notCreated": {},
        "notUpdated": {},
        "notDestroyed": {},
    }


async def finish(cctx: CallContext, out: dict[str, Any], kind: str) -> dict[str, Any]:
    out["newState"] = await state(cctx, kind)
    for k in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
        if not out[k]:
            out[k] = None
    if not out["destroyed"]:
        out["destroyed"] = None
    return out
