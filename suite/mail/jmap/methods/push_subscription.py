"""PushSubscription/get|set (RFC 8620 §7.2): callbacks only to URLs the admin allows
(``jmap_push_allowed_urls``), active once the client echoes the verification code."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from suite.mail.jmap import emailquery
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import CORE
from suite.mail.jmap.methods.common import check_known_args
from suite.mail.jmap.protocol.errors import MethodError, set_error
from suite.mail.jmap.push import TYPES, url_allowed

MAX_LIFETIME = 7 * 86400
PROPS = ["id", "deviceClientId", "verificationCode", "expires", "types"]


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _rows(cctx: CallContext) -> dict[str, tuple]:
    async with cctx.store.raw_db.read() as c:
        rows = await c.all(
            "SELECT id, device_client_id, verification_code, verified, expires, types FROM jmap_push_subscriptions "
            "WHERE account_id = ?",
            cctx.account_id,
        )
    return {str(r[0]): r for r in rows}


@method("PushSubscription/get", CORE)
async def push_get(cctx: CallContext, args: dict) -> dict:
    # RFC 8620 §7.2.1: no accountId; url and keys are never returned
    check_known_args(args, {"ids", "properties"})
    rows = await _rows(cctx)
    ids = args.get("ids")
    want = list(rows) if ids is None else ids
    if not isinstance(want, list):
        raise MethodError("invalidArguments", "ids must be a list or null")
    props = args.get("properties") or PROPS
    if any(p not in PROPS for p in props):
        raise MethodError("forbidden" if {"url", "keys"} & set(props) else "invalidArguments", "unknown property")
    out = []
    for i in want:
        r = rows.get(i)
        if r is None:
            continue
        obj = {
            "id": i,
            "deviceClientId": r[1],
            "verificationCode": r[2] if r[3] else None,
            "expires": _date(r[4]),
            "types": json.loads(r[5]) if r[5] else None,
        }
        out.append({k: obj[k] for k in ["id", *props] if k in obj})
    return {"list": out, "notFound": [i for i in want if i not in rows]}


def _types(value: Any) -> str | None | bool:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) and t in TYPES for t in value):
        return False
    return json.dumps(value)


def _expires(value: Any) -> float:
    now = time.time()
    if value is None:
        return now + MAX_LIFETIME
    ts = emailquery.utc_date(value, "expires")
    return min(max(ts, now), now + MAX_LIFETIME)


@method("PushSubscription/set", CORE)
async def push_set(cctx: CallContext, args: dict) -> dict:
    check_known_args(args, {"create", "update", "destroy", "ifInState"})
    if args.get("ifInState") is not None:
        raise MethodError("invalidArguments", "PushSubscription has no state")
    create, update, destroy = args.get("create") or {}, args.get("update") or {}, args.get("destroy") or []
    if not isinstance(create, dict) or not isinstance(update, dict) or not isinstance(destroy, list):
        raise MethodError("invalidArguments", "create and update are maps, destroy a list")
    settings = cctx.ctx.settings
    out: dict[str, Any] = {
        "created": {},
        "updated": {},
        "destroyed": [],
        "notCreated": {},
        "notUpdated": {},
        "notDestroyed": {},
    }
    for cid, obj in create.items():
        if not isinstance(obj, dict) or not isinstance(obj.get("deviceClientId"), str):
            out["notCreated"][cid] = set_error("invalidProperties", "deviceClientId and url are required")
            continue
        if set(obj) - {"deviceClientId", "url", "keys", "expires", "types"} or obj.get("verificationCode"):
            out["notCreated"][cid] = set_error("invalidProperties", "only deviceClientId, url, keys, expires, types")
            continue
        url = obj.get("url")
        if not url_allowed(settings, url):
            out["notCreated"][cid] = set_error("forbidden", "the administrator does not allow that push URL")
            continue
        types_ = _types(obj.get("types"))
        try:
            expires = _expires(obj.get("expires"))
        except MethodError:
            types_ = False
        if types_ is False:
            out["notCreated"][cid] = set_error("invalidProperties", "bad types or expires")
            continue
        code = secrets.token_urlsafe(24)
        async with cctx.store.raw_db.write() as c:
            sid = await c.scalar(
                "INSERT INTO jmap_push_subscriptions (account_id, device_client_id, url, keys, verification_code, "
                "verified, expires, types) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                cctx.account_id,
                obj["deviceClientId"][:255],
                url,
                json.dumps(obj["keys"]) if obj.get("keys") else None,
                code,
                False,
                expires,
                types_,
            )
        cctx.request.created[cid] = str(sid)
        out["created"][cid] = {"id": str(sid), "keys": None, "expires": _date(expires)}
        await cctx.pusher.verify(sid, url, code)
    rows = await _rows(cctx)
    for uid, patch in update.items():
        r = rows.get(uid)
        if r is None:
            out["notUpdated"][uid] = set_error("notFound")
            continue
        if not isinstance(patch, dict) or set(patch) - {"verificationCode", "expires", "types"}:
            out["notUpdated"][uid] = set_error("invalidProperties", "only verificationCode, expires, types change")
            continue
        verified = bool(r[3])
        if "verificationCode" in patch:
            if not isinstance(patch["verificationCode"], str) or not secrets.compare_digest(
                patch["verificationCode"], r[2]
            ):
                out["notUpdated"][uid] = set_error(
                    "invalidProperties", "wrong verificationCode", properties=["verificationCode"]
                )
                continue
            verified = True
        types_ = _types(patch["types"]) if "types" in patch else r[5]
        try:
            expires = _expires(patch["expires"]) if "expires" in patch else r[4]
        except MethodError:
            types_ = False
        if types_ is False:
            out["notUpdated"][uid] = set_error("invalidProperties", "bad types or expires")
            continue
        async with cctx.store.raw_db.write() as c:
            await c.run(
                "UPDATE jmap_push_subscriptions SET verified = ?, expires = ?, types = ? WHERE id = ?",
                verified,
                expires,
                types_,
                int(uid),
            )
        out["updated"][uid] = {"expires": _date(expires)} if "expires" in patch else None
    for did in destroy:
        if did not in rows:
            out["notDestroyed"][did] = set_error("notFound")
            continue
        async with cctx.store.raw_db.write() as c:
            await c.run(
                "DELETE FROM jmap_push_subscriptions WHERE id = ? AND account_id = ?", int(did), cctx.account_id
            )
        out["destroyed"].append(did)
    return {k: (v or None) for k, v in out.items()}
