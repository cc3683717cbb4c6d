"""VacationResponse/get|set (RFC 8621 §8): one object per account, id "singleton"; the replies
themselves are sent at delivery (suite.mail.store.vacation)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from suite.mail.jmap import emailquery
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import VACATION as CAPABILITY
from suite.mail.jmap.methods.common import check_known_args, get_ids, get_properties, state
from suite.mail.jmap.methods.setcommon import begin, finish, parse_set
from suite.mail.jmap.protocol.errors import MethodError, set_error
from suite.mail.store import emails as model
from suite.mail.store import vacation

KIND = "VacationResponse"
PROPS = ["id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody"]


def _date(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _current(cctx: CallContext) -> dict[str, Any]:
    async with cctx.store.raw_db.read() as c:
        v = await vacation.settings(c, cctx.account_id)
    v = v or {
        "is_enabled": False,
        "from_date": None,
        "to_date": None,
        "subject": None,
        "text_body": None,
        "html_body": None,
    }
    return {
        "id": "singleton",
        "isEnabled": bool(v["is_enabled"]),
        "fromDate": _date(v["from_date"]),
        "toDate": _date(v["to_date"]),
        "subject": v["subject"],
        "textBody": v["text_body"],
        "htmlBody": v["html_body"],
    }


@method("VacationResponse/get", CAPABILITY)
async def vacation_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ids", "properties"})
    ids = get_ids(cctx, args, "")
    props = get_properties(args, set(PROPS), PROPS)
    cur = await _current(cctx)
    want = ["singleton"] if ids is None else ids
    return {
        "accountId": cctx.jmap_account_id,
        "state": await state(cctx, KIND),
        "list": [{k: cur[k] for k in props} for i in want if i == "singleton"],
        "notFound": [i for i in want if i != "singleton"],
    }


@method("VacationResponse/set", CAPABILITY)
async def vacation_set(cctx: CallContext, args: dict) -> dict:
    create, update, destroy = parse_set(cctx, args)
    out = await begin(cctx, args, KIND)
    for cid in create:
        out["notCreated"][cid] = set_error("singleton", "the VacationResponse exists already")
    for did in destroy:
        out["notDestroyed"][did] = set_error("singleton", "the VacationResponse cannot be destroyed")
    for uid, patch in update.items():
        if uid != "singleton":
            out["notUpdated"][uid] = set_error("notFound")
            continue
        cur = await _current(cctx)
        if not isinstance(patch, dict) or set(patch) - set(PROPS[1:]):
            out["notUpdated"][uid] = set_error("invalidProperties", "unknown property")
            continue
        new = {**cur, **patch}
        try:
            frm = emailquery.utc_date(new["fromDate"], "fromDate") if new["fromDate"] else None
            to = emailquery.utc_date(new["toDate"], "toDate") if new["toDate"] else None
        except MethodError:
            out["notUpdated"][uid] = set_error("invalidProperties", "bad date", properties=["fromDate", "toDate"])
            continue
        if not isinstance(new["isEnabled"], bool) or any(
            new[k] is not None and not isinstance(new[k], str) for k in ("subject", "textBody", "htmlBody")
        ):
            out["notUpdated"][uid] = set_error("invalidProperties", "bad value")
            continue
        async with cctx.store.raw_db.write() as c:
            await c.run(
                "INSERT INTO vacation_responses (account_id, is_enabled, from_date, to_date, subject, text_body, "
                "html_body, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET "
                "is_enabled = excluded.is_enabled, from_date = excluded.from_date, to_date = excluded.to_date, "
                "subject = excluded.subject, text_body = excluded.text_body, html_body = excluded.html_body, "
                "updated_at = excluded.updated_at",
                cctx.account_id,
                new["isEnabled"],
                frm,
                to,
                new["subject"],
                new["textBody"],
                new["htmlBody"],
                time.time(),
            )
            await model.log(c, cctx.account_id, [(KIND, 0, "u")])
        out["updated"][uid] = None
    return await finish(cctx, out, KIND)
