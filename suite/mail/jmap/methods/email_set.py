"""Email/set (RFC 8621 §4.6): create drafts from JSON, keywords and mailboxIds (whole or by
patch), destroy — each through the store so IMAP sees it at once."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap import compose, emaildata, emailops
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.setcommon import begin, finish, parse_set
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import set_error
from suite.mail.store import MailStoreError, QuotaExceeded
from suite.mail.store import emails as model


def _unescape(s: str) -> str:
    return s.replace("~1", "/").replace("~0", "~")


def _mailbox(cctx: CallContext, value: str, owned: set[int]) -> int | None:
    if value.startswith("#"):
        value = cctx.created_id(value[1:]) or value
    n = types.parse("M", value)
    return n if n in owned else None


def apply_patch(
    cctx: CallContext, patch: Any, keywords: list[str], mailboxes: list[int], owned: set[int]
) -> tuple[list[str], set[int]] | dict:
    """The new (keywords, mailboxes) or a SetError."""
    if not isinstance(patch, dict):
        return set_error("invalidPatch", "the patch must be an object")
    kws = set(keywords)
    mbs = set(mailboxes)
    for key, value in patch.items():
        path = [_unescape(p) for p in key.split("/")]
        if path == ["keywords"]:
            if not isinstance(value, dict) or not all(v is True for v in value.values()):
                return set_error("invalidProperties", "keywords is a map of keyword to true", properties=["keywords"])
            if not all(model.valid_keyword(k) for k in value):
                return set_error("invalidProperties", "bad keyword", properties=["keywords"])
            kws = {k.lower() for k in value}
        elif len(path) == 2 and path[0] == "keywords":
            if not model.valid_keyword(path[1]) or value not in (True, None):
                return set_error("invalidPatch", f"bad patch {key!r}")
            if value:
                kws.add(path[1].lower())
            else:
                kws.discard(path[1].lower())
        elif path == ["mailboxIds"]:
            if not isinstance(value, dict) or not all(v is True for v in value.values()):
                return set_error("invalidProperties", "mailboxIds is a map of id to true", properties=["mailboxIds"])
            new = set()
            for mid in value:
                n = _mailbox(cctx, mid, owned)
                if n is None:
                    return set_error("invalidProperties", f"no mailbox {mid!r}", properties=["mailboxIds"])
                new.add(n)
            mbs = new
        elif len(path) == 2 and path[0] == "mailboxIds":
            n = _mailbox(cctx, path[1], owned)
            if n is None or value not in (True, None):
                return set_error("invalidProperties", f"bad mailbox patch {key!r}", properties=["mailboxIds"])
            if value:
                mbs.add(n)
            else:
                mbs.discard(n)
        else:
            return set_error("invalidProperties", f"{path[0]!r} cannot be changed", properties=[path[0]])
    if not mbs:
        return set_error("invalidProperties", "an Email must be in at least one mailbox", properties=["mailboxIds"])
    return sorted(kws), mbs


async def create_one(cctx: CallContext, obj: Any, owned: set[int]) -> dict:
    store = cctx.store
    if not isinstance(obj, dict):
        return {"error": set_error("invalidProperties", "an Email object is required")}
    res = apply_patch(
        cctx,
        {k: v for k, v in obj.items() if k in ("mailboxIds", "keywords")},
        [],
        [],
        owned,
    )
    if isinstance(res, dict):
        return {"error": res}
    kws, mbs = res
    blobs: dict[str, bytes] = {}
    for bid in compose.blob_ids(obj):
        got = await emailops.read_blob(store, cctx.account_id, bid)
        if got is None:
            return {"error": set_error("blobNotFound", f"no blob {bid!r}", notFound=[bid])}
        blobs[bid] = got[0]
    try:
        raw = compose.build(obj, cctx.ctx.settings.hostname, blobs)
    except compose.ComposeError as exc:
        return {"error": set_error("invalidProperties", str(exc), properties=exc.properties)}
    first, *rest = sorted(mbs)
    try:
        _, info = await store.append(cctx.account_id, first, raw, flags=model.flags_for(kws).split())
        async with store.raw_db.read() as c:
            email_id = await c.scalar("SELECT email_id FROM messages WHERE mailbox_id = ? AND uid = ?", first, info.uid)
        for dst in rest:
            await store.copy(cctx.account_id, first, [info.uid], dst)
    except QuotaExceeded:
        return {"error": set_error("overQuota", "the account's quota is full")}
    rows = await emaildata.rows(store, cctx.account_id, [email_id])
    row = rows[email_id]
    return {
        "id": types.make("e", email_id),
        "blobId": types.blob_id(row.blob),
        "threadId": types.make("T", row.thread_id),
        "size": row.size,
    }


async def update_many(cctx: CallContext, update: dict, owned: set[int], out: dict) -> None:
    store = cctx.store
    nums = {eid: types.parse("e", eid) for eid in update}
    rows = await emaildata.rows(store, cctx.account_id, [n for n in nums.values() if n is not None])
    new_kws: dict[int, list[str]] = {}
    for eid, patch in update.items():
        n = nums[eid]
        row = rows.get(n) if n is not None else None
        if row is None:
            out["notUpdated"][eid] = set_error("notFound")
            continue
        res = apply_patch(cctx, patch, row.keywords, row.mailbox_ids, owned)
        if isinstance(res, dict):
            out["notUpdated"][eid] = res
            continue
        kws, mbs = res
        try:
            if mbs != set(row.mailbox_ids):
                await emailops.set_mailboxes(store, cctx.account_id, row.id, mbs)
        except QuotaExceeded:
            out["notUpdated"][eid] = set_error("overQuota", "the account's quota is full")
            continue
        except MailStoreError as exc:
            out["notUpdated"][eid] = set_error("invalidProperties", str(exc), properties=["mailboxIds"])
            continue
        if sorted(kws) != sorted(row.keywords):
            new_kws[row.id] = kws
        out["updated"][eid] = None
    if new_kws:
        await emailops.set_keywords(store, cctx.account_id, new_kws)  # one transaction for all of them


@method("Email/set", MAIL)
async def email_set(cctx: CallContext, args: dict) -> dict:
    create, update, destroy = parse_set(cctx, args)
    out = await begin(cctx, args, model.EMAIL)
    store = cctx.store
    owned = {m.id for m in await store.list_mailboxes(cctx.account_id)}
    for cid, obj in create.items():
        res = await create_one(cctx, obj, owned)
        if "error" in res:
            out["notCreated"][cid] = res["error"]
        else:
            cctx.request.created[cid] = res["id"]
            out["created"][cid] = res
    await update_many(cctx, update, owned, out)
    nums = {eid: types.parse("e", eid) for eid in destroy}
    rows = await emaildata.rows(store, cctx.account_id, [n for n in nums.values() if n is not None])
    for eid in destroy:
        n = nums[eid]
        if n is None or n not in rows:
            out["notDestroyed"][eid] = set_error("notFound")
            continue
        await emailops.destroy(store, cctx.account_id, n)
        out["destroyed"].append(eid)
    return await finish(cctx, out, model.EMAIL)
