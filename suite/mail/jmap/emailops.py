"""Changes to Emails through the mail store's public API, so IMAP sees each as it would its own:
keywords on every membership, mailboxes added by COPY and removed by EXPUNGE of that UID."""

from __future__ import annotations

from suite.mail import mime
from suite.mail.jmap import emaildata, message
from suite.mail.jmap.protocol import types
from suite.mail.store import emails as model
from suite.storage.events import MailboxChanged


async def memberships(store, email_id: int) -> list[tuple[int, int]]:
    async with store.raw_db.read() as c:
        rows = await c.all("SELECT mailbox_id, uid FROM messages WHERE email_id = ? ORDER BY mailbox_id", email_id)
    return [(r[0], r[1]) for r in rows]


async def set_keywords(store, account_id: int, email_kws: dict[int, list[str]]) -> None:
    async with store.raw_db.write() as c:
        touched = await model.set_keywords(c, account_id, email_kws)
    for mailbox_id, modseq in touched:
        await store.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=mailbox_id, modseq=modseq))


async def remove_membership(store, account_id: int, mailbox_id: int, uid: int) -> None:
    """EXPUNGE of one UID (RFC 4315 UID EXPUNGE semantics): \\Deleted then expunge just that UID."""
    await store.store_flags(account_id, mailbox_id, [uid], "add", ["\\Deleted"])
    await store.expunge(account_id, mailbox_id, [uid])


async def set_mailboxes(store, account_id: int, email_id: int, wanted: set[int]) -> None:
    """Make the Email's mailboxes ``wanted`` (non-empty): COPY into new ones first, then remove;
    one added and one removed is an atomic MOVE (RFC 6851)."""
    current = await memberships(store, email_id)
    have = {m for m, _ in current}
    add = sorted(wanted - have)
    remove = [(m, u) for m, u in current if m not in wanted]
    if len(add) == 1 and len(remove) == 1:
        await store.move(remove[0][0], [remove[0][1]], add[0], account_id)
        return
    src_mb, src_uid = current[0]
    for dst in add:
        await store.copy(account_id, src_mb, [src_uid], dst)
    for mb, uid in remove:
        await remove_membership(store, account_id, mb, uid)


async def destroy(store, account_id: int, email_id: int) -> None:
    for mb, uid in await memberships(store, email_id):
        await remove_membership(store, account_id, mb, uid)


async def read_blob(store, account_id: int, blob_id: str) -> tuple[bytes, str | None] | None:
    """A blob the account may read: (bytes, content type if known), or None."""
    digest = types.blob_digest(blob_id)
    if digest is not None:
        if not await emaildata.owns_blob(store, account_id, digest):
            return None
        return await store.blobs.read_bytes(digest), None
    part = types.parse_part_blob(blob_id)
    if part is None:
        return None
    email_id, path = part
    rows = await emaildata.rows(store, account_id, [email_id])
    if email_id not in rows:
        return None
    structs = await emaildata.structures(store, [email_id])
    raw = await store.raw(rows[email_id].blob)
    st: mime.MessageStructure = structs[email_id]
    bp = message.find_part(message.body_tree(raw, st), path)
    if bp is None:
        return None
    return message.leaf_content(raw, bp), bp.type
