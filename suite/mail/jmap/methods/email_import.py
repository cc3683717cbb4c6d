"""Email/import (RFC 8621 §4.8): uploaded RFC 5322 blobs stored as Emails in mailboxes."""

from __future__ import annotations

from suite.mail.jmap import emaildata, emailops, emailquery
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args, if_in_state, state
from suite.mail.jmap.methods.email_set import apply_patch
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError, set_error
from suite.mail.store import QuotaExceeded
from suite.mail.store import emails as model


@method("Email/import", MAIL)
async def email_import(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ifInState", "emails"})
    emails = args.get("emails")
    if not isinstance(emails, dict):
        raise MethodError("invalidArguments", "emails must be a map of creation id to EmailImport")
    if len(emails) > cctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", f"at most {cctx.limits.max_objects_in_set} emails per call")
    old = await state(cctx, model.EMAIL)
    if_in_state(old, args)
    store = cctx.store
    owned = {m.id for m in await store.list_mailboxes(cctx.account_id)}
    created, not_created = {}, {}
    for cid, imp in emails.items():
        if not isinstance(imp, dict) or not isinstance(imp.get("blobId"), str):
            not_created[cid] = set_error("invalidProperties", "blobId is required", properties=["blobId"])
            continue
        res = apply_patch(cctx, {k: v for k, v in imp.items() if k in ("mailboxIds", "keywords")}, [], [], owned)
        if isinstance(res, dict):
            not_created[cid] = res
            continue
        kws, mbs = res
        when = None
        if imp.get("receivedAt") is not None:
            try:
                when = emailquery.utc_date(imp["receivedAt"], "receivedAt")
            except MethodError:
                not_created[cid] = set_error("invalidProperties", "bad receivedAt", properties=["receivedAt"])
                continue
        got = await emailops.read_blob(store, cctx.account_id, imp["blobId"])
        if got is None:
            not_created[cid] = set_error("blobNotFound", "no such blob", notFound=[imp["blobId"]])
            continue
        raw = got[0]
        if not raw.strip() or b":" not in raw[:1000]:
            not_created[cid] = set_error("invalidEmail", "the blob is not an RFC 5322 message")
            continue
        first, *rest = sorted(mbs)
        try:
            _, info = await store.append(
                cctx.account_id, first, raw, flags=model.flags_for(kws).split(), internaldate=when
            )
            async with store.raw_db.read() as c:
                email_id = await c.scalar(
                    "SELECT email_id FROM messages WHERE mailbox_id = ? AND uid = ?", first, info.uid
                )
            for dst in rest:
                await store.copy(cctx.account_id, first, [info.uid], dst)
        except QuotaExceeded:
            not_created[cid] = set_error("overQuota", "the account's quota is full")
            continue
        row = (await emaildata.rows(store, cctx.account_id, [email_id]))[email_id]
        eid = types.make("e", email_id)
        cctx.request.created[cid] = eid
        created[cid] = {
            "id": eid,
            "blobId": types.blob_id(row.blob),
            "threadId": types.make("T", row.thread_id),
            "size": row.size,
        }
    return {
        "accountId": cctx.jmap_account_id,
        "oldState": old,
        "newState": await state(cctx, model.EMAIL),
        "created": created or None,
        "notCreated": not_created or None,
    }
