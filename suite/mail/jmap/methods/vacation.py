"""VacationResponse/get|set (RFC 8621 §8) as the account's Sieve "Out of office"
(suite.mail.sieve.rules): one setting for the web page's rule builder and JMAP clients, answered
at delivery by the Sieve vacation action (RFC 5230: once per sender per period, never to lists,
bulk or auto-submitted mail)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from suite.mail.jmap import emailquery
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import VACATION as CAPABILITY
from suite.mail.jmap.methods.common import check_known_args, get_ids, get_properties, state
from suite.mail.jmap.methods.setcommon import begin, finish, parse_set
from suite.mail.jmap.protocol.errors import MethodError, set_error
from suite.mail.sieve import rules as rulesmod
from suite.mail.sieve.store import NoSuchScript, SieveStore, SieveStoreError
from suite.mail.store import emails as model

KIND = "VacationResponse"
PROPS = ["id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody"]


def _date(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def _ruleset(cctx: CallContext) -> tuple[SieveStore, rulesmod.RuleSet | None, bool]:
    """(store, the rules — None when the script was written by hand —, whether it is active)."""
    store = SieveStore(cctx.ctx)
    try:
        text = await store.get_script(cctx.account_id, rulesmod.SCRIPT_NAME)
    except NoSuchScript:
        return store, rulesmod.RuleSet(), False
    active = await store.active_name(cctx.account_id) == rulesmod.SCRIPT_NAME
    return store, rulesmod.parse_rules(text), active


def _object(rs: rulesmod.RuleSet | None, active: bool) -> dict[str, Any]:
    ooo = rs.out_of_office if rs is not None else rulesmod.OutOfOffice()
    return {
        "id": "singleton",
        "isEnabled": bool(ooo.enabled and active),
        "fromDate": _date(ooo.start),
        "toDate": _date(ooo.end),
        "subject": ooo.subject,
        "textBody": ooo.text or None,
        "htmlBody": None,
    }


@method("VacationResponse/get", CAPABILITY)
async def vacation_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ids", "properties"})
    ids = get_ids(cctx, args, "")
    props = get_properties(args, set(PROPS), PROPS)
    _, rs, active = await _ruleset(cctx)
    cur = _object(rs, active)
    want = ["singleton"] if ids is None else ids
    return {
        "accountId": cctx.jmap_account_id,
        "state": await state(cctx, KIND),
        "list": [{k: cur[k] for k in props} for i in want if i == "singleton"],
        "notFound": [i for i in want if i != "singleton"],
    }


def _when(value: Any, name: str) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(emailquery.utc_date(value, name), UTC)


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
        store, rs, active = await _ruleset(cctx)
        if rs is None:
            out["notUpdated"][uid] = set_error("forbidden", "the Sieve script was written by hand; change it there")
            continue
        if not isinstance(patch, dict) or set(patch) - set(PROPS[1:]):
            out["notUpdated"][uid] = set_error("invalidProperties", "unknown property")
            continue
        new = {**_object(rs, active), **patch}
        if new["htmlBody"] is not None:
            out["notUpdated"][uid] = set_error("invalidProperties", "only a text body", properties=["htmlBody"])
            continue
        try:
            ooo = rulesmod.OutOfOffice(
                enabled=bool(new["isEnabled"]),
                subject=new["subject"],
                text=new["textBody"] or "",
                days=rs.out_of_office.days,
                start=_when(new["fromDate"], "fromDate"),
                end=_when(new["toDate"], "toDate"),
            )
            ruleset = rs.model_copy(update={"out_of_office": ooo})
            text = rulesmod.to_sieve(ruleset)
        except (MethodError, ValueError) as exc:
            out["notUpdated"][uid] = set_error("invalidProperties", str(exc))
            continue
        try:
            await store.put_script(cctx.account_id, rulesmod.SCRIPT_NAME, text, activate=active or ooo.enabled)
        except SieveStoreError as exc:
            out["notUpdated"][uid] = set_error("forbidden", str(exc))
            continue
        async with cctx.store.raw_db.write() as c:
            await model.log(c, cctx.account_id, [(KIND, 0, "u")])
        out["updated"][uid] = None
    return await finish(cctx, out, KIND)
