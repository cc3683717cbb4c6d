"""Mailbox/set (RFC 8621 §2.5): create, rename/move, (un)subscribe, destroy with
``onDestroyRemoveEmails``."""

from __future__ import annotations

from typing import Any

from suite.mail.jmap import mailboxes
from suite.mail.jmap.api import CallContext, method
from suite.mail.jmap.limits import MAIL
from suite.mail.jmap.methods.setcommon import begin, finish, parse_set
from suite.mail.jmap.protocol import types
from suite.mail.jmap.protocol.errors import MethodError, set_error
from suite.mail.store import SEPARATOR, MailboxInfo, MailStoreError, NoSuchMailbox
from suite.mail.store import emails as model

SETTABLE = {"name", "parentId", "isSubscribed", "role", "sortOrder"}


def _parent_name(cctx: CallContext, value: Any, by_id: dict[str, MailboxInfo]) -> str | None | bool:
    """The parent's full name, None for top level, False when it does not exist."""
    if value is None:
        return None
    if isinstance(value, str) and value.startswith("#"):
        value = cctx.created_id(value[1:]) or value
    mb = by_id.get(value) if isinstance(value, str) else None
    return mb.name if mb else False


def _check_name(name: Any) -> str | None:
    if not isinstance(name, str) or not name or SEPARATOR in name or len(name.encode()) > 490:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return None
    return name


@method("Mailbox/set", MAIL)
async def mailbox_set(cctx: CallContext, args: dict) -> dict:
    create, update, destroy = parse_set(cctx, args, {"onDestroyRemoveEmails"})
    remove_emails = bool(args.get("onDestroyRemoveEmails", False))
    out = await begin(cctx, args, model.MAILBOX)
    store = cctx.store

    async def index() -> tuple[dict[str, MailboxInfo], dict[str, MailboxInfo]]:
        mbs = await store.list_mailboxes(cctx.account_id)
        return {types.make("M", m.id): m for m in mbs}, {m.name: m for m in mbs}

    by_id, by_name = await index()
    for cid, obj in create.items():
        if not isinstance(obj, dict):
            out["notCreated"][cid] = set_error("invalidProperties", "a Mailbox object is required")
            continue
        bad = [k for k in obj if k not in SETTABLE]
        name = _check_name(obj.get("name"))
        parent = _parent_name(cctx, obj.get("parentId"), by_id)
        role = obj.get("role")
        if bad or name is None or parent is False or (role is not None and role not in mailboxes.USE_OF):
            props = bad or (["name"] if name is None else ["parentId"] if parent is False else ["role"])
            out["notCreated"][cid] = set_error("invalidProperties", "invalid or unknown properties", properties=props)
            continue
        full = f"{parent}{SEPARATOR}{name}" if parent else name
        if full in by_name:
            out["notCreated"][cid] = set_error("invalidProperties", "a sibling has that name", properties=["name"])
            continue
        try:
            mb = await store.create_mailbox(cctx.account_id, full, special_use=mailboxes.USE_OF.get(role or ""))
            if obj.get("isSubscribed") is False:
                await store.set_subscribed(cctx.account_id, full, False)
        except MailStoreError as exc:
            out["notCreated"][cid] = set_error("invalidProperties", str(exc))
            continue
        mid = types.make("M", mb.id)
        cctx.request.created[cid] = mid
        by_id, by_name = await index()
        out["created"][cid] = {
            k: v
            for k, v in mailboxes.to_json(by_id[mid], by_name, None).items()
            if k not in ("name", "parentId", "isSubscribed", "role")
        }
    for mid, patch in update.items():
        mb = by_id.get(mid)
        if mb is None:
            out["notUpdated"][mid] = set_error("notFound")
            continue
        if not isinstance(patch, dict) or [k for k in patch if k not in SETTABLE]:
            out["notUpdated"][mid] = set_error("invalidProperties", "only name, parentId, isSubscribed may change")
            continue
        cur = mailboxes.to_json(mb, by_name, None)
        if (
            "role" in patch
            and patch["role"] != cur["role"]
            or "sortOrder" in patch
            and patch["sortOrder"] != cur["sortOrder"]
        ):
            out["notUpdated"][mid] = set_error("invalidProperties", "role and sortOrder are fixed", properties=["role"])
            continue
        name = _check_name(patch.get("name", cur["name"]))
        parent = _parent_name(cctx, patch.get("parentId", cur["parentId"]), by_id)
        if name is None or parent is False:
            out["notUpdated"][mid] = set_error(
                "invalidProperties", "bad name or parentId", properties=["name" if name is None else "parentId"]
            )
            continue
        full = f"{parent}{SEPARATOR}{name}" if parent else name
        try:
            if full != mb.name:
                if full.startswith(mb.name + SEPARATOR):
                    out["notUpdated"][mid] = set_error(
                        "invalidProperties", "cannot move a mailbox into itself", properties=["parentId"]
                    )
                    continue
                if full in by_name:
                    out["notUpdated"][mid] = set_error(
                        "invalidProperties", "a sibling has that name", properties=["name"]
                    )
                    continue
                await store.rename_mailbox(cctx.account_id, mb.name, full)
            if "isSubscribed" in patch and bool(patch["isSubscribed"]) != mb.subscribed:
                await store.set_subscribed(cctx.account_id, full, bool(patch["isSubscribed"]))
        except MailStoreError as exc:
            out["notUpdated"][mid] = set_error("invalidProperties", str(exc))
            continue
        out["updated"][mid] = None
        by_id, by_name = await index()
    for mid in destroy:
        mb = by_id.get(mid)
        if mb is None:
            out["notDestroyed"][mid] = set_error("notFound")
            continue
        if any(n.startswith(mb.name + SEPARATOR) for n in by_name):
            out["notDestroyed"][mid] = set_error("mailboxHasChild", "destroy the child mailboxes first")
            continue
        if mb.name == "INBOX":
            out["notDestroyed"][mid] = set_error("forbidden", "INBOX cannot be destroyed")
            continue
        if not remove_emails:
            async with store.raw_db.read() as c:
                has = await c.scalar("SELECT 1 FROM messages WHERE mailbox_id = ? LIMIT 1", mb.id)
            if has:
                out["notDestroyed"][mid] = set_error("mailboxHasEmail", "set onDestroyRemoveEmails to destroy it")
                continue
        try:
            await store.delete_mailbox(cctx.account_id, mb.name)
        except NoSuchMailbox:
            out["notDestroyed"][mid] = set_error("notFound")
            continue
        except MailStoreError as exc:
            raise MethodError("serverFail", str(exc)) from None
        out["destroyed"].append(mid)
        by_id, by_name = await index()
    return await finish(cctx, out, model.MAILBOX)
