"""EmailSubmission/set (RFC 8621 §7.5): send an Email through the outbound queue (remote) and
local delivery, from an Identity of the account only; onSuccessUpdateEmail / onSuccessDestroyEmail
run as an implicit Email/set (§7.5)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

from suite.mail.jmap import emaildata, limits, message
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.identities import identities
from suite.mail.jmap.limits import SUBMISSION
from suite.mail.jmap.methods import email_set
from suite.mail.jmap.methods.setcommon import begin, finish, parse_set
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError, set_error
from suite.mail.mime.structure import iter_headers
from suite.mail.queue import queue
from suite.mail.smtp.interfaces import DeliveryError
from suite.mail.store import emails as model

_BCC = re.compile(rb"(?im)^bcc:.*(?:\r?\n[ \t].*)*\r?\n")


def strip_bcc(raw: bytes) -> bytes:
    """RFC 8621 §7.5: the Bcc header field is removed before sending."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    if end < 0:
        return raw
    return _BCC.sub(b"", raw[: end + 2]) + raw[end + 2 :]


# MAIL FROM parameters a client may pass through (RFC 1652 BODY, RFC 6531 SMTPUTF8, RFC 1870 SIZE,
# RFC 3461 ENVID/RET) and those of RFC 4865 FUTURERELEASE, which hold the submission
PASSED_PARAMETERS = {"BODY", "SMTPUTF8", "SIZE", "ENVID", "RET"}


def hold_until(params, now: float) -> float | None | str:
    """The release time asked by HOLDFOR / HOLDUNTIL (RFC 4865 §3), None when not held, or a
    description of what is wrong."""
    if params is None:
        return None
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        return "parameters must be an object"
    up = {k.upper(): v for k, v in params.items()}
    unknown = set(up) - PASSED_PARAMETERS - {"HOLDFOR", "HOLDUNTIL"}
    if unknown:
        return f"unsupported parameter {sorted(unknown)[0]}"
    if "HOLDFOR" in up and "HOLDUNTIL" in up:
        return "HOLDFOR and HOLDUNTIL together"
    if "HOLDFOR" in up:
        v = up["HOLDFOR"]
        v = str(v) if isinstance(v, int) and not isinstance(v, bool) else v
        if not isinstance(v, str) or not v.isdigit() or len(v) > 9 or int(v) > limits.MAX_DELAYED_SEND:
            return f"HOLDFOR is 0 to {limits.MAX_DELAYED_SEND} seconds"
        return now + int(v)
    if "HOLDUNTIL" in up:
        try:
            when = datetime.fromisoformat(str(up["HOLDUNTIL"]).replace("Z", "+00:00"))
        except ValueError:
            return "HOLDUNTIL is an RFC 3339 date-time"
        if when.tzinfo is None:
            return "HOLDUNTIL needs a time zone"
        t = when.timestamp()
        if t > now + limits.MAX_DELAYED_SEND:
            return f"HOLDUNTIL is at most {limits.MAX_DELAYED_SEND} seconds ahead"
        return max(t, now)
    return None


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _addr_list(value) -> list[str]:
    return [a["email"] for a in value or [] if a.get("email")]


async def _may_send_as(cctx: CallContext, ident: dict, address: str) -> bool:
    """The sender is bound to the account: the identity's own address (checked when the identity
    was made, possibly under a catch-all; it goes when its alias goes) or any address the account
    may send as (its own, its aliases, +details)."""
    if address.lower() == ident["email"]:
        return True
    return await cctx.ctx.accounts.may_send_as(cctx.account_id, address)


async def _create(cctx: CallContext, obj, submitter) -> dict:
    store = cctx.store
    if not isinstance(obj, dict):
        return {"error": set_error("invalidProperties", "an EmailSubmission object is required")}
    bad = [k for k in obj if k not in ("identityId", "emailId", "envelope")]
    if bad:
        return {"error": set_error("invalidProperties", f"{bad[0]!r} cannot be set", properties=bad)}
    idents = {i["id"]: i for i in await identities(cctx.ctx, cctx.account_id)}
    ident = idents.get(obj.get("identityId"))
    if ident is None:
        return {"error": set_error("invalidProperties", "no such identity", properties=["identityId"])}
    eid = obj.get("emailId")
    if isinstance(eid, str) and eid.startswith("#"):
        eid = cctx.created_id(eid[1:]) or eid
    n = types.parse("e", eid)
    rows = await emaildata.rows(store, cctx.account_id, [n] if n is not None else [])
    if n is None or n not in rows:
        return {"error": set_error("invalidProperties", "no such Email", properties=["emailId"])}
    row = rows[n]
    raw = await store.raw(row.blob)
    st = (await emaildata.structures(store, [n]))[n]
    headers = iter_headers(raw, st.root.hdr_start, st.root.body_start)
    from_ = message.header_value(raw, headers, message.CONVENIENCE["from"]) or []
    # the From address must be one the account may send as (RFC 8621 §7.5 forbiddenFrom)
    for a in from_:
        if not await _may_send_as(cctx, ident, a["email"]):
            return {"error": set_error("forbiddenFrom", f"may not send as {a['email']}")}
    env = obj.get("envelope")
    now = time.time()
    held: float | None = None
    params = None
    if env is None:
        mail_from = ident["email"]
        rcpts = []
        for p in ("to", "cc", "bcc"):
            rcpts += _addr_list(message.header_value(raw, headers, message.CONVENIENCE[p]))
    else:
        try:
            mail_from = env["mailFrom"]["email"]
            rcpts = [r["email"] for r in env["rcptTo"]]
        except (KeyError, TypeError):
            return {"error": set_error("invalidProperties", "bad envelope", properties=["envelope"])}
        if not isinstance(mail_from, str) or not all(isinstance(r, str) for r in rcpts):
            return {"error": set_error("invalidProperties", "bad envelope", properties=["envelope"])}
        params = env["mailFrom"].get("parameters")
        got = hold_until(params, now)
        if isinstance(got, str):
            return {"error": set_error("invalidProperties", got, properties=["envelope"])}
        held = got
    if mail_from and not await _may_send_as(cctx, ident, mail_from):
        return {"error": set_error("forbiddenMailFrom", f"may not send as {mail_from}")}
    rcpts = list(dict.fromkeys(r.strip() for r in rcpts if r.strip()))
    if not rcpts:
        return {"error": set_error("noRecipients", "the Email has no recipients")}
    bad_rcpts = [r for r in rcpts if "@" not in r or any(c in r for c in " <>\r\n")]
    for r in rcpts:
        if r not in bad_rcpts and await submitter.is_local(r) and not await submitter.known_local(r):
            bad_rcpts.append(r)
    if bad_rcpts:
        return {"error": set_error("invalidRecipients", "unknown or malformed recipients", invalidRecipients=bad_rcpts)}
    envelope = {
        "mailFrom": {"email": mail_from, "parameters": params or None},
        "rcptTo": [{"email": r, "parameters": None} for r in rcpts],
    }
    async with store.raw_db.write() as c:
        sid = await c.scalar(
            "INSERT INTO jmap_submissions (account_id, email_id, thread_id, identity_id, envelope, send_at, "
            "undo_status, queue_id) VALUES (?, ?, ?, ?, ?, ?, 'final', NULL) RETURNING id",
            cctx.account_id,
            n,
            row.thread_id,
            ident["id"],
            json.dumps(envelope),
            now if held is None else held,
        )
        await model.log(c, cctx.account_id, [(model.SUBMISSION, sid, "c")])
    try:
        await submitter.submit(cctx.account_id, mail_from, rcpts, strip_bcc(raw), f"jmap-{sid}", held)
    except DeliveryError as exc:
        async with store.raw_db.write() as c:
            await c.run("DELETE FROM jmap_submissions WHERE id = ?", sid)
            await model.log(c, cctx.account_id, [(model.SUBMISSION, sid, "d")])
        return {"error": set_error("forbiddenToSend", str(exc.reply))}
    # remote recipients wait in the outbound queue: until sent, the submission can be canceled
    async with store.raw_db.write() as c:
        queue_id = await c.scalar("SELECT id FROM queue_messages WHERE session_id = ?", f"jmap-{sid}")
        if queue_id is not None:
            await c.run("UPDATE jmap_submissions SET queue_id = ?, undo_status = 'pending' WHERE id = ?", queue_id, sid)
    return {
        "id": types.make("S", sid),
        "sendAt": _utc(now if held is None else held),
        "undoStatus": "pending" if queue_id is not None else "final",
        "threadId": types.make("T", row.thread_id),
        "envelope": envelope,
    }


async def submission_status(cctx: CallContext, stored: str, queue_id: int | None) -> str:
    """pending while it can be canceled, else final (or canceled): a held message (RFC 4865) until
    a queue worker claims it, any other while a recipient waits in the outbound queue."""
    if stored != "pending" or queue_id is None:
        return stored
    async with cctx.store.raw_db.read() as c:
        held = await c.one("SELECT hold_until FROM queue_messages WHERE id = ?", queue_id)
        if held is None:
            return "final"
        if held[0] is None:
            waiting = await c.scalar(
                "SELECT 1 FROM queue_recipients WHERE message_id = ? AND status = 'queued' LIMIT 1", queue_id
            )
            return "pending" if waiting else "final"
        taken = await c.scalar(
            "SELECT 1 FROM queue_recipients WHERE message_id = ? AND NOT (status = 'queued' AND attempts = 0 "
            "AND next_attempt_at <= ?) LIMIT 1",
            queue_id,
            held[0],
        )
    return "final" if taken else "pending"


async def _cancel(cctx: CallContext, queue_id: int) -> bool:
    """Take a pending submission out of the outbound queue: a held one (RFC 4865) only while no
    worker has claimed it, in any process (suite.mail.queue.queue.cancel_held)."""
    async with cctx.store.raw_db.read() as c:
        row = await c.one("SELECT hold_until FROM queue_messages WHERE id = ?", queue_id)
    if row is None:
        return False
    if row[0] is not None:
        return await queue.cancel_held(cctx.ctx, queue_id)
    return await queue.delete_message(cctx.ctx, queue_id)


@method("EmailSubmission/set", SUBMISSION)
async def submission_set(cctx: CallContext, args: dict) -> dict:
    create, update, destroy = parse_set(cctx, args, {"onSuccessUpdateEmail", "onSuccessDestroyEmail"})
    on_update = args.get("onSuccessUpdateEmail")
    on_destroy = args.get("onSuccessDestroyEmail")
    if (
        on_update is not None
        and not isinstance(on_update, dict)
        or on_destroy is not None
        and not isinstance(on_destroy, list)
    ):
        raise MethodError("invalidArguments", "onSuccessUpdateEmail is a map, onSuccessDestroyEmail a list")
    out = await begin(cctx, args, model.SUBMISSION)
    submitter = cctx.submitter
    email_of: dict[str, str] = {}
    for cid, obj in create.items():
        res = await _create(cctx, obj, submitter)
        if "error" in res:
            out["notCreated"][cid] = res["error"]
            continue
        cctx.request.created[cid] = res["id"]
        eid = obj["emailId"]
        email_of["#" + cid] = (cctx.created_id(eid[1:]) or eid) if eid.startswith("#") else eid
        email_of[res["id"]] = email_of["#" + cid]
        out["created"][cid] = res
    for sid, patch in update.items():
        # RFC 8621 §7.5: only undoStatus "canceled" may be set, and only while pending
        n = types.parse("S", sid) or -1
        if not isinstance(patch, dict) or set(patch) != {"undoStatus"} or patch["undoStatus"] != "canceled":
            out["notUpdated"][sid] = set_error("invalidProperties", "only undoStatus: canceled may be set")
            continue
        async with cctx.store.raw_db.read() as c:
            row = await c.one(
                "SELECT undo_status, queue_id FROM jmap_submissions WHERE id = ? AND account_id = ?",
                n,
                cctx.account_id,
            )
        status = await submission_status(cctx, row[0], row[1]) if row else None
        if row is None:
            out["notUpdated"][sid] = set_error("notFound")
        elif status != "pending" or not await _cancel(cctx, row[1]):
            out["notUpdated"][sid] = set_error("cannotUnsend", "the message has been sent")
        else:
            async with cctx.store.raw_db.write() as c:
                await c.run("UPDATE jmap_submissions SET undo_status = 'canceled' WHERE id = ?", n)
                await model.log(c, cctx.account_id, [(model.SUBMISSION, n, "u")])
            out["updated"][sid] = None
    for sid in destroy:
        out["notDestroyed"][sid] = (
            set_error("notFound")
            if types.parse("S", sid) is None
            else set_error("forbidden", "sent submissions are kept")
        )
    result = await finish(cctx, out, model.SUBMISSION)
    # the implicit Email/set (§7.5), answered after this call with the same call id
    upd = {email_of[k]: v for k, v in (on_update or {}).items() if k in email_of}
    dst = [email_of[k] for k in (on_destroy or []) if k in email_of]
    if upd or dst:
        call_id = getattr(cctx, "call_id", "")
        res = await email_set.email_set(cctx, {"accountId": cctx.jmap_account_id, "update": upd, "destroy": dst})
        cctx.extra.append(("Email/set", res, call_id))
    return result
