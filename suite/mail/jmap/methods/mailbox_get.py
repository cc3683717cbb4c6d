"""Mailbox/get (RFC 8621 §2.1, RFC 8620 §5.1)."""

from __future__ import annotations

from suite.mail.jmap import mailboxes
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args, get_ids, get_properties
from suite.mail.jmap.protocol import types
from suite.mail.store import emails as model


@method("Mailbox/get", MAIL)
async def mailbox_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ids", "properties"})
    ids = get_ids(cctx, args, "M")
    props = get_properties(args, set(mailboxes.PROPERTIES), mailboxes.PROPERTIES)
    mbs = await cctx.store.list_mailboxes(cctx.account_id)
    async with cctx.store.raw_db.read(snapshot=True) as c:
        st = await model.state(c, cctx.account_id, model.MAILBOX)
        cnt = await mailboxes.counts(c, cctx.account_id)
    by_name = {m.name: m for m in mbs}
    by_id = {types.make("M", m.id): m for m in mbs}
    want = list(by_id) if ids is None else ids
    found, not_found = [], []
    for i in want:
        mb = by_id.get(i)
        if mb is None:
            not_found.append(i)
            continue
        obj = mailboxes.to_json(mb, by_name, cnt.get(mb.id))
        found.append({k: obj[k] for k in props})
    return {"accountId": cctx.jmap_account_id, "state": types.state(st), "list": found, "notFound": not_found}
