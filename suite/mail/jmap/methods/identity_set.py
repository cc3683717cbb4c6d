"""Identity/set (RFC 8621 §6.3): identities for addresses the account owns (its own, an alias, an
address of a domain whose catch-all it has) — any other is ``forbiddenFrom``; ``email`` is
immutable; the own address's identity cannot be destroyed (``mayDelete`` false)."""

from __future__ import annotations

from typing import Any

from suite.accounts.store import AccountError
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import SUBMISSION
from suite.mail.jmap.methods.setcommon import begin, finish, parse_set
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import set_error
from suite.mail.store import emails as model

# JMAP property → account store field
SETTABLE = {
    "name": "name",
    "replyTo": "reply_to",
    "bcc": "bcc",
    "textSignature": "text_signature",
    "htmlSignature": "html_signature",
}
MAX_SIGNATURE = 64 * 1024


def _addresses(value: Any) -> bool:
    """null or a list of EmailAddress objects (RFC 8621 §4.1.2.3)."""
    if value is None:
        return True
    return isinstance(value, list) and all(
        isinstance(a, dict)
        and isinstance(a.get("email"), str)
        and "@" in a["email"]
        and isinstance(a.get("name"), str | None)
        and set(a) <= {"name", "email"}
        for a in value
    )


def _fields(obj: dict, *, creating: bool) -> tuple[dict[str, Any], list[str]]:
    """The account-store fields of an Identity object (or patch), and the invalid properties."""
    out: dict[str, Any] = {}
    bad: list[str] = []
    for k, v in obj.items():
        if k == "email" and creating:
            continue
        if k in ("id", "mayDelete", "email"):
            bad.append(k)  # server-set or immutable (RFC 8621 §6)
        elif k not in SETTABLE:
            bad.append(k)
        elif k == "name" and not (isinstance(v, str) and len(v) <= 200):
            bad.append(k)
        elif k in ("replyTo", "bcc") and not _addresses(v):
            bad.append(k)
        elif k in ("textSignature", "htmlSignature") and not (isinstance(v, str) and len(v) <= MAX_SIGNATURE):
            bad.append(k)
        else:
            out[SETTABLE[k]] = v
    return out, bad


@method("Identity/set", SUBMISSION)
async def identity_set(cctx: CallContext, args: dict) -> dict:
    create, update, destroy = parse_set(cctx, args)
    out = await begin(cctx, args, model.IDENTITY)
    accounts = cctx.ctx.accounts
    for cid, obj in create.items():
        if not isinstance(obj, dict) or not isinstance(obj.get("email"), str):
            out["notCreated"][cid] = set_error("invalidProperties", "email is required", properties=["email"])
            continue
        fields, bad = _fields(obj, creating=True)
        if bad:
            out["notCreated"][cid] = set_error("invalidProperties", f"{bad[0]!r} cannot be set", properties=bad)
            continue
        try:
            made = await accounts.create_identity(cctx.account_id, obj["email"], **fields)
        except AccountError:
            # RFC 8621 §6.3: an address the user may not send from
            out["notCreated"][cid] = set_error("forbiddenFrom", f"may not send as {obj['email']}")
            continue
        iid = types.make("I", made.id)
        cctx.request.created[cid] = iid
        out["created"][cid] = {"id": iid, "mayDelete": made.may_delete}
        if "name" not in obj:
            out["created"][cid]["name"] = made.name
    for iid, patch in update.items():
        n = types.parse("I", iid)
        if not isinstance(patch, dict):
            out["notUpdated"][iid] = set_error("invalidPatch", "a patch object is required")
            continue
        fields, bad = _fields(patch, creating=False)
        if bad:
            out["notUpdated"][iid] = set_error("invalidProperties", f"{bad[0]!r} cannot be set", properties=bad)
        elif n is None or not await accounts.update_identity(cctx.account_id, n, fields):
            out["notUpdated"][iid] = set_error("notFound")
        else:
            out["updated"][iid] = None
    for iid in destroy:
        n = types.parse("I", iid)
        res = "notFound" if n is None else await accounts.destroy_identity(cctx.account_id, n)
        if res == "destroyed":
            out["destroyed"].append(iid)
        elif res == "forbidden":
            out["notDestroyed"][iid] = set_error("forbidden", "the account's own address cannot be removed")
        else:
            out["notDestroyed"][iid] = set_error("notFound")
    return await finish(cctx, out, model.IDENTITY)
