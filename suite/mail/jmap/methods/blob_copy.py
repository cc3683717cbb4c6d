"""Blob/copy (RFC 8620 §6.3). Each user sees only their own account, so a copy is from and to it."""

from __future__ import annotations

from suite.mail.jmap import emailops
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import CORE
from suite.mail.jmap.methods.common import check_known_args
from suite.mail.jmap.protocol.errors import MethodError, set_error


@method("Blob/copy", CORE)
async def blob_copy(cctx: CallContext, args: dict) -> dict:
    check_known_args(args, {"fromAccountId", "accountId", "blobIds"})
    cctx.check_account(args)
    if args.get("fromAccountId") != cctx.jmap_account_id:
        raise MethodError("fromAccountNotFound", "no such account")
    ids = args.get("blobIds")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MethodError("invalidArguments", "blobIds must be a list of ids")
    copied, not_copied = {}, {}
    for bid in ids:
        if await emailops.read_blob(cctx.store, cctx.account_id, bid) is None:
            not_copied[bid] = set_error("blobNotFound")
        else:
            copied[bid] = bid
    return {
        "fromAccountId": cctx.jmap_account_id,
        "accountId": cctx.jmap_account_id,
        "copied": copied or None,
        "notCopied": not_copied or None,
    }
