"""Identity/get (RFC 8621 §6.1)."""

from __future__ import annotations

from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.identities import identities
from suite.mail.jmap.limits import SUBMISSION
from suite.mail.jmap.methods.common import check_known_args, get_ids, get_properties, state
from suite.mail.store import emails as model

PROPS = ["id", "name", "email", "replyTo", "bcc", "textSignature", "htmlSignature", "mayDelete"]


@method("Identity/get", SUBMISSION)
async def identity_get(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(args, {"accountId", "ids", "properties"})
    ids = get_ids(cctx, args, "I")
    props = get_properties(args, set(PROPS), PROPS)
    all_ = {i["id"]: i for i in await identities(cctx.ctx, cctx.account_id)}
    want = list(all_) if ids is None else ids
    found = [{k: all_[i][k] for k in props} for i in want if i in all_]
    return {
        "accountId": cctx.jmap_account_id,
        "state": await state(cctx, model.IDENTITY),
        "list": found,
        "notFound": [i for i in want if i not in all_],
    }
