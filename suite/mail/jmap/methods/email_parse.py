"""Email/parse (RFC 8621 §4.9): an uploaded blob (or a message/rfc822 part) read as an Email
without storing it."""

from __future__ import annotations

import asyncio

from suite.mail import mime
from suite.mail.jmap import emailops
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.common import check_known_args
from suite.mail.jmap.methods.email_get import DEFAULT as GET_DEFAULT
from suite.mail.jmap.methods.email_get import METADATA, body_options, parse_properties, render
from suite.mail.jmap.protocol.errors import MethodError

# RFC 8621 §4.9: the Email/get defaults without the metadata only a stored Email has
DEFAULT = [p for p in GET_DEFAULT if p not in METADATA]
NOT_PARSED = {"id", "mailboxIds", "keywords", "receivedAt", "threadId"}


@method("Email/parse", MAIL)
async def email_parse(cctx: CallContext, args: dict) -> dict:
    cctx.check_account(args)
    check_known_args(
        args,
        {
            "accountId",
            "blobIds",
            "properties",
            "bodyProperties",
            "fetchTextBodyValues",
            "fetchHTMLBodyValues",
            "fetchAllBodyValues",
            "maxBodyValueBytes",
        },
    )
    blob_ids = args.get("blobIds")
    if not isinstance(blob_ids, list) or not all(isinstance(b, str) for b in blob_ids):
        raise MethodError("invalidArguments", "blobIds must be a list of ids")
    if len(blob_ids) > cctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", "too many blobs")
    props, body_props = parse_properties({**args, "properties": args.get("properties") or DEFAULT})
    props = [p for p in props if p not in NOT_PARSED or p == "id"]
    props = [p for p in props if p != "id"]
    opts = body_options(args)
    parsed, not_parsable, not_found = {}, [], []
    for bid in blob_ids:
        got = await emailops.read_blob(cctx.store, cctx.account_id, bid)
        if got is None:
            not_found.append(bid)
            continue
        raw = got[0]
        if got[1] not in (None, "message/rfc822") or not raw.strip():
            not_parsable.append(bid)
            continue
        try:
            st = await asyncio.to_thread(mime.parse_structure, raw)
        except Exception:
            not_parsable.append(bid)
            continue
        obj = render(raw, st, ["blobId", *props], body_props, opts, None, None, blob_id=bid)
        parsed[bid] = obj
    return {
        "accountId": cctx.jmap_account_id,
        "parsed": parsed or None,
        "notParsable": not_parsable or None,
        "notFound": not_found or None,
    }
