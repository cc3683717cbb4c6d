"""The mail store API: mailboxes, delivery, flags, copy/move, expunge — what IMAP, SMTP delivery,
the webmail and voicemail all call.

Rules:
- a message is its raw bytes in the blob store (exactly as received) plus a row; ``deliver`` returns
  only after the blob is fsynced and the row committed;
- every change takes the mailbox's next MODSEQ (RFC 7162 §3.1) and publishes ``MailboxChanged``;
- UIDs strictly ascend within a UIDVALIDITY (RFC 9051 §2.3.1.1), never reused;
- one quota per account, charged per stored copy.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from suite.accounts.store import AccountStore
from suite.mail import mime
from suite.mail.jmap import message as jmap_message
from suite.mail.mime import searchtext
from suite.mail.store import emails, search
from suite.mail.store.email_models import MailboxThread
from suite.mail.store.models import Counter, Expunged, LostSubscription, Mailbox, Message, MessageText
from suite.storage import db as dbmod
from suite.storage.blobs import BlobRef, BlobStore
from suite.storage.events import MailboxChanged, MailboxListChanged, MailDelivered

if TYPE_CHECKING:
    from suite.context import Context

SEPARATOR = "/"
# RFC 6154 §2 roles, created with every account (Dovecot's default namespace has the same).
DEFAULT_MAILBOXES = (
    ("INBOX", None),
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Junk", "\\Junk"),
    ("Trash", "\\Trash"),
    ("Archive", "\\Archive"),
)
SPECIAL_USES = {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
MAX_SEARCH_BODY = 2 * 1024 * 1024  # characters of decoded body text kept for SEARCH BODY/TEXT
MAX_NAME = 500


class MailStoreError(Exception):
    """Refused; ``code`` is the IMAP response code that fits (RFC 5530)."""

    code = "CANNOT"


class NoSuchMailbox(MailStoreError):
    code = "NONEXISTENT"


class MailboxExists(MailStoreError):
    code = "ALREADYEXISTS"


class QuotaExceeded(MailStoreError):
    code = "OVERQUOTA"


class BadMailboxName(MailStoreError):
    code = "CANNOT"


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    id: int
    account_id: int
    name: str
    special_use: str | None
    uidvalidity: int
    uidnext: int
    highestmodseq: int
    subscribed: bool


@dataclass(frozen=True, slots=True)
class MessageInfo:
    uid: int
    modseq: int
    flags: tuple[str, ...]
    size: int
    internaldate: float
    blob: str


@dataclass(frozen=True, slots=True)
class AppendItem:
    """One message of :meth:`MailStore.append_many`."""

    raw: bytes
    flags: tuple[str, ...] = ()
    internaldate: float | None = None
    blob: BlobRef | None = None  # already in the blob store (SMTP spools straight into it)


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    messages: int
    unseen: int
    deleted: int
    size: int
    uidnext: int
    uidvalidity: int
    highestmodseq: int


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a mailbox after a MODSEQ: messages with a newer MODSEQ and expunged UIDs."""

    highestmodseq: int
    uidnext: int
    changed: list[MessageInfo]
    expunged: list[int]


# Hot paths (every IMAP command) run plain SQL through ``suite.storage.db.RawDB`` — see there why;
# the rarely used ones (create, rename, delete, copy/move) keep the ORM.
_MB_COLS = "id, account_id, name, special_use, uidvalidity, uidnext, highestmodseq, subscribed"
_MSG_COLS = "uid, modseq, flags, size, internaldate, blob"
CHUNK = 500


def _mbrow(r) -> MailboxInfo:
    return MailboxInfo(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bool(r[7]))


def _in(c, column: str, values: Sequence) -> tuple[str, list]:
    """``column IN (…)`` for SQLite, ``column = ANY(?)`` (one array parameter) for PostgreSQL."""
    if c.pg:
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({dbmod.placeholders(len(values))})", list(values)


def _has_flag(flags: str, low: str) -> bool:
    return low in flags.lower() and any(f.lower() == low for f in flags.split())


def _mb(m: Mailbox) -> MailboxInfo:
    return MailboxInfo(
        m.id, m.account_id, m.name, m.special_use, m.uidvalidity, m.uidnext, m.highestmodseq, m.subscribed
    )


class _FlagTuples:
    """Flag strings as tuples, memoised per store: a mailbox has few distinct flag strings, and
    equal tuples can then be shared by every message that has them."""

    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d: dict[str, tuple[str, ...]] = {}

    def __call__(self, text: str) -> tuple[str, ...]:
        t = self._d.get(text)
        if t is None:
            if len(self._d) >= 4096:
                self._d.clear()
            t = self._d[text] = tuple(text.split()) if text else ()
        return t


def normalize_flags(flags: Iterable[str]) -> list[str]:
    """System flags in canonical case (RFC 9051 §2.3.2), keywords as given; no duplicates, in order."""
    out: list[str] = []
    seen: set[str] = set()
    canon = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")}
    for f in flags:
        f = canon.get(f.lower(), f)
        key = f.lower()
        if key not in seen and f.lower() != "\\recent":
            seen.add(key)
            out.append(f)
    return out


def check_name(name: str) -> str:
    """A mailbox name as stored: INBOX in canonical case, no empty levels, no control characters."""
    if not name or len(name) > MAX_NAME:
        raise BadMailboxName("mailbox name is empty or too long")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name) or "*" in name or "%" in name:
        raise BadMailboxName("mailbox name has a forbidden character")
    parts = name.split(SEPARATOR)
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"  # RFC 9051 §5.1: INBOX is case-insensitive
    if any(p == "" for p in parts):
        raise BadMailboxName("mailbox name has an empty level")
    return SEPARATOR.join(parts)


def _parse(raw: bytes) -> tuple[bytes, str, str, float | None, tuple[emails.Meta, dict[str, str]], str]:
    """Structure JSON, search headers JSON, search body, Date: header, the Email's Meta and search
    document, and its JMAP list facts JSON (runs in a thread: parsed once, nothing of it left for the
    event loop inside the write)."""
    st = mime.parse_structure(raw)
    text = mime.search_text(raw, st)
    sent = searchtext.sent_date(raw, st)
    body = text.body[:MAX_SEARCH_BODY].replace("\x00", "")
    headers = json.dumps(text.headers, ensure_ascii=False).replace("\\u0000", "")
    # RFC 9051 §6.4.4: SENT* compare the Date: header's date as written, "disregarding time and
    # timezone": keep its wall-clock time as if it were UTC, so that its UTC date is the written one
    written = sent.replace(tzinfo=datetime.UTC).timestamp() if sent else None
    h = json.loads(headers)  # as stored (NULs dropped), so the Email row matches what is read back
    meta = emails.meta_from(h, st)
    facts = json.dumps(jmap_message.list_facts(raw, st), ensure_ascii=False)
    return st.to_json(), headers, body, written, (meta, search.document_of(h, body, meta.attachment_names)), facts


def retried(fn):
    """Run a store write again when the database refused its transaction transiently (a deadlock or
    serialization failure on PostgreSQL, a busy SQLite: rolled back, nothing written), so that
    callers (IMAP, delivery) never see a driver's exception for it."""

    @functools.wraps(fn)
    async def run(*args, **kw):
        attempts = 8
        for attempt in range(attempts):
            try:
                return await fn(*args, **kw)
            except MailStoreError:
                raise
            except Exception as exc:
                if attempt == attempts - 1 or not dbmod.is_transient(exc):
                    raise
                await asyncio.sleep(0.005 * 2**attempt * (1 + random.random()))
        raise AssertionError("unreachable")

    return run


class MailStore:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.sessions = ctx.sessions
        self.blobs: BlobStore = ctx.blobs
        self.accounts: AccountStore = ctx.accounts
        self.bus = ctx.bus
        self._engine = ctx.engine
        self._flags = _FlagTuples()
        self._vocabulary = search.Vocabulary()  # SQLite: the FTS5 tokens, for SEARCH's leading words

    def _msgrow(self, r) -> MessageInfo:
        return MessageInfo(r[0], r[1], self._flags(r[2]), r[3], r[4], r[5])

    @property
    def raw_db(self) -> dbmod.RawDB:
        return dbmod.raw(self._engine)

    # ------------------------------------------------------------------ mailboxes
    async def ensure_defaults(self, account_id: int) -> None:
        """Create INBOX and the special-use mailboxes if the account has none yet (idempotent)."""
        async with self.sessions() as s:
            have = set(await s.scalars(select(Mailbox.name).where(Mailbox.account_id == account_id)))
        if "INBOX" in have:
            return
        for name, use in DEFAULT_MAILBOXES:
            if name not in have:
                try:
                    await self.create_mailbox(account_id, name, special_use=use, publish=False)
                except MailStoreError:
                    pass  # a concurrent first access created it

    async def list_mailboxes(self, account_id: int) -> list[MailboxInfo]:
        for attempt in range(2):
            async with self.raw_db.read() as c:
                rows = await c.all(f"SELECT {_MB_COLS} FROM mailboxes WHERE account_id = ? ORDER BY name", account_id)
            if attempt or any(r[2] == "INBOX" for r in rows):
                break
            await self.ensure_defaults(account_id)  # first access: create INBOX and the special-use ones
        return [_mbrow(r) for r in rows]

    async def get_mailbox(self, account_id: int, name: str) -> MailboxInfo | None:
        try:
            name = check_name(name)
        except BadMailboxName:
            return None
        sql = f"SELECT {_MB_COLS} FROM mailboxes WHERE account_id = ? AND name = ?"
        async with self.raw_db.read() as c:
            r = await c.one(sql, account_id, name)
        if r is None and name == "INBOX":
            await self.ensure_defaults(account_id)
            async with self.raw_db.read() as c:
                r = await c.one(sql, account_id, name)
        return _mbrow(r) if r else None

    async def mailbox_by_id(self, mailbox_id: int) -> MailboxInfo | None:
        async with self.raw_db.read() as c:
            r = await c.one(f"SELECT {_MB_COLS} FROM mailboxes WHERE id = ?", mailbox_id)
        return _mbrow(r) if r else None

    async def require_mailbox(self, account_id: int, name: str) -> MailboxInfo:
        mb = await self.get_mailbox(account_id, name)
        if mb is None:
            raise NoSuchMailbox(f"no mailbox {name!r}")
        return mb

    @retried
    async def create_mailbox(
        self, account_id: int, name: str, *, special_use: str | None = None, publish: bool = True
    ) -> MailboxInfo:
        """Create ``name`` and any missing parents (RFC 9051 §6.3.4)."""
        name = check_name(name)
        if special_use is not None and special_use not in SPECIAL_USES:
            raise MailStoreError(f"unknown special use {special_use}")
        parts = name.split(SEPARATOR)
        try:
            async with self.sessions.begin() as s:
                existing = set(await s.scalars(select(Mailbox.name).where(Mailbox.account_id == account_id)))
                if name in existing:
                    raise MailboxExists(f"mailbox {name!r} exists already")
                if special_use is not None:
                    used = await s.scalar(
                        select(Mailbox.name).where(Mailbox.account_id == account_id, Mailbox.special_use == special_use)
                    )
                    if used is not None:
                        raise MailStoreError(f"{special_use} is used by {used!r} already")
                created = None
                for i in range(1, len(parts) + 1):
                    sub = SEPARATOR.join(parts[:i])
                    if sub in existing:
                        continue
                    row = Mailbox(
                        account_id=account_id,
                        name=sub,
                        special_use=special_use if sub == name else None,
                        uidvalidity=await self._new_uidvalidity(s),
                        uidnext=1,
                        highestmodseq=1,
                        subscribed=True,
                        created_at=time.time(),
                    )
                    s.add(row)
                    await s.flush()
                    created = row
                    await emails.on_mailbox(await dbmod.conn(s), account_id, [row.id], "c")
                assert created is not None
                info = _mb(created)
        except IntegrityError:
            raise MailboxExists(f"mailbox {name!r} exists already") from None
        if publish:
            await self.bus.publish(MailboxListChanged(account_id=account_id))
        return info

    async def _new_uidvalidity(self, s: AsyncSession) -> int:
        # Unique per name incarnation: seconds since the epoch, bumped past any value already used
        # (RFC 9051 §2.3.1.1: a re-created mailbox must get a new UIDVALIDITY).
        # A persistent counter (not MAX over existing rows, which forgets deleted mailboxes).
        res = await s.execute(
            update(Counter)
            .where(Counter.name == "uidvalidity")
            .values(value=Counter.value + 1)
            .returning(Counter.value)
        )
        value = res.scalar_one_or_none()
        if value is None:
            value = int(time.time())
            s.add(Counter(name="uidvalidity", value=value))
            await s.flush()
        return value % 0xFFFFFFFF + 1

    @retried
    async def delete_mailbox(self, account_id: int, name: str) -> None:
        """RFC 9051 §6.3.5: INBOX cannot be deleted; a mailbox with children keeps existing as their
        parent only if it has \\Noselect semantics — we refuse instead, as Dovecot does by default."""
        name = check_name(name)
        if name == "INBOX":
            raise MailStoreError("INBOX cannot be deleted")
        async with self.sessions.begin() as s:
            mb = await s.scalar(select(Mailbox).where(Mailbox.account_id == account_id, Mailbox.name == name))
            if mb is None:
                raise NoSuchMailbox(f"no mailbox {name!r}")
            child = await s.scalar(
                select(Mailbox.id).where(Mailbox.account_id == account_id, Mailbox.name.startswith(name + SEPARATOR))
            )
            if child is not None:
                raise MailStoreError(f"mailbox {name!r} has children; delete them first")
            rows = (await s.execute(select(Message.blob, Message.size).where(Message.mailbox_id == mb.id))).all()
            email_ids = list(await s.scalars(select(Message.email_id).where(Message.mailbox_id == mb.id)))
            total = sum(size for _, size in rows)
            if total:
                await AccountStore.charge(s, account_id, -total)  # account row first (lock order)
            await BlobStore.unref_many(s, (b for b, _ in rows))
            await s.execute(delete(Message).where(Message.mailbox_id == mb.id))
            await s.execute(delete(Expunged).where(Expunged.mailbox_id == mb.id))
            await s.execute(delete(MailboxThread).where(MailboxThread.mailbox_id == mb.id))
            await s.delete(mb)
            await self._drop_orphan_texts(s, [b for b, _ in rows])
            await emails.on_removed(await dbmod.conn(s), account_id, email_ids, [])
            await emails.on_mailbox(await dbmod.conn(s), account_id, [mb.id], "d")
        await self.bus.publish(MailboxListChanged(account_id=account_id))
        await self.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=mb.id, modseq=0))

    @retried
    async def rename_mailbox(self, account_id: int, old: str, new: str) -> None:
        """RFC 9051 §6.3.6: children move along; renaming INBOX moves its messages to a new
        mailbox and leaves INBOX empty."""
        old, new = check_name(old), check_name(new)
        if old == "INBOX":
            await self._rename_inbox(account_id, new)
            return
        if new == "INBOX" or new.startswith(old + SEPARATOR):
            raise MailStoreError("cannot rename a mailbox to INBOX or into itself")
        async with self.sessions.begin() as s:
            rows = list(
                await s.scalars(
                    select(Mailbox).where(
                        Mailbox.account_id == account_id,
                        (Mailbox.name == old) | Mailbox.name.startswith(old + SEPARATOR),
                    )
                )
            )
            if not any(r.name == old for r in rows):
                raise NoSuchMailbox(f"no mailbox {old!r}")
            taken = await s.scalar(select(Mailbox.id).where(Mailbox.account_id == account_id, Mailbox.name == new))
            if taken is not None:
                raise MailboxExists(f"mailbox {new!r} exists already")
            existing = set(await s.scalars(select(Mailbox.name).where(Mailbox.account_id == account_id)))
            for r in rows:
                r.name = new + r.name[len(old) :]
                # Renamed mailboxes keep their UIDs, so a client's cache stays valid only if
                # UIDVALIDITY changes with the name (RFC 9051 §6.3.6 allows either; we keep UIDs and
                # change UIDVALIDITY so no client mixes the two incarnations).
                r.uidvalidity = await self._new_uidvalidity(s)
            # create missing parents of the new name
            parts = new.split(SEPARATOR)
            parents: list[str] = []
            for i in range(1, len(parts)):
                sub = SEPARATOR.join(parts[:i])
                if sub not in existing:
                    s.add(
                        Mailbox(
                            account_id=account_id,
                            name=sub,
                            special_use=None,
                            uidvalidity=await self._new_uidvalidity(s),
                            uidnext=1,
                            highestmodseq=1,
                            subscribed=True,
                            created_at=time.time(),
                        )
                    )
                    existing.add(sub)
                    parents.append(sub)
            await s.flush()
            renamed = [r.id for r in rows]
            made = await s.scalars(
                select(Mailbox.id).where(Mailbox.account_id == account_id, Mailbox.name.in_(parents))
            )
            await emails.on_mailbox(await dbmod.conn(s), account_id, renamed, "u")
            await emails.on_mailbox(await dbmod.conn(s), account_id, list(made), "c")
        await self.bus.publish(MailboxListChanged(account_id=account_id))

    async def _rename_inbox(self, account_id: int, new: str) -> None:
        inbox = await self.require_mailbox(account_id, "INBOX")
        target = await self.create_mailbox(account_id, new)
        uids = [m.uid for m in await self.messages(inbox.id)]
        if uids:
            await self.move(inbox.id, uids, target.id)

    @retried
    async def set_subscribed(self, account_id: int, name: str, subscribed: bool) -> None:
        name = check_name(name)
        async with self.sessions.begin() as s:
            res = await s.execute(
                update(Mailbox)
                .where(Mailbox.account_id == account_id, Mailbox.name == name)
                .values(subscribed=subscribed)
                .returning(Mailbox.id)
            )
            changed_ids = list(res.scalars())
            await emails.on_mailbox(await dbmod.conn(s), account_id, changed_ids, "u")
            lost = await s.get(LostSubscription, (account_id, name))
            if not changed_ids and subscribed and lost is None:
                # RFC 9051 §6.3.7 / RFC 3501 §6.3.6: a name without a mailbox may be subscribed (as Dovecot)
                s.add(LostSubscription(account_id=account_id, name=name))
            elif not subscribed and lost is not None:
                await s.delete(lost)

    async def lost_subscriptions(self, account_id: int) -> list[str]:
        """Subscribed names that have no mailbox (RFC 5258 §3.1 ``\\NonExistent``)."""
        async with self.raw_db.read() as c:
            rows = await c.all(
                "SELECT name FROM mail_lost_subscriptions l WHERE account_id = ? AND NOT EXISTS "
                "(SELECT 1 FROM mailboxes m WHERE m.account_id = l.account_id AND m.name = l.name)",
                account_id,
            )
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ delivery
    async def deliver(
        self,
        account_id: int,
        mailbox: str | int,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        blob: BlobRef | None = None,
    ) -> tuple[MailboxInfo, int]:
        """Store ``raw`` in a mailbox; returns (mailbox, UID) once the blob is fsynced and the row
        committed. Raises QuotaExceeded when the account's one quota would be passed. When the caller
        already stored the bytes (SMTP spooling straight into the blob store) it passes ``blob``."""
        mb, msg = await self.append(account_id, mailbox, raw, flags=flags, internaldate=internaldate, blob=blob)
        return mb, msg.uid

    async def append(
        self,
        account_id: int,
        mailbox: str | int | MailboxInfo,
        raw: bytes,
        *,
        flags: Iterable[str] = (),
        internaldate: float | None = None,
        blob: BlobRef | None = None,
    ) -> tuple[MailboxInfo, MessageInfo]:
        """:meth:`deliver` returning the stored message (its UID and MODSEQ) too."""
        mb, msgs = await self.append_many(account_id, mailbox, [AppendItem(raw, tuple(flags), internaldate, blob)])
        return mb, msgs[0]

    @retried
    async def append_many(
        self, account_id: int, mailbox: str | int | MailboxInfo, items: Sequence[AppendItem]
    ) -> tuple[MailboxInfo, list[MessageInfo]]:
        """Store several messages in one transaction — all or none (IMAP MULTIAPPEND, RFC 3502 §6:
        "the server MUST NOT add any of the messages if any fails").  The blobs are written and
        fsynced first; the rows, UIDs (consecutive) and the quota charge commit together, under one
        MODSEQ.  Returns the mailbox as it was before and the stored messages in order."""
        if isinstance(mailbox, MailboxInfo):
            mailbox_id = mailbox.id
        elif isinstance(mailbox, int):
            mailbox_id = mailbox
        else:
            mailbox_id = (await self.require_mailbox(account_id, mailbox)).id
        stored = []
        for item in items:
            if item.blob is None:  # on disk one worker-thread hop: parse, then write + fsync the blob
                parsed, ref = await self.blobs.put_with(item.raw, _parse)
            else:
                parsed = await asyncio.to_thread(_parse, item.raw)
                ref = item.blob
            stored.append((parsed, ref, " ".join(normalize_flags(item.flags))))
        now = time.time()
        total = sum(ref.size for _, ref, _ in stored)
        async with self.raw_db.write() as c:
            # lock order everywhere: account row, then mailbox rows (by id), then blob rows (by digest)
            if not await AccountStore.charge(c, account_id, total):
                raise QuotaExceeded("mailbox quota exceeded")
            r = await c.one(
                "UPDATE mailboxes SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1 "
                f"WHERE id = ? AND account_id = ? RETURNING {_MB_COLS}",
                len(stored),
                mailbox_id,
                account_id,
            )
            if r is None:
                raise NoSuchMailbox("no such mailbox")
            first_uid, modseq = r[5] - len(stored), r[6]
            msgs = []
            for n, ((structure, _headers, _body, sent, _, _facts), ref, flag_text) in enumerate(stored):
                item = items[n]
                date = float(item.internaldate) if item.internaldate is not None else now
                await c.run(
                    "INSERT INTO messages (mailbox_id, uid, modseq, blob, size, internaldate, sent_date, flags, structure) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    mailbox_id,
                    first_uid + n,
                    modseq,
                    ref.digest,
                    ref.size,
                    date,
                    sent,
                    flag_text,
                    structure,
                )
                msgs.append(MessageInfo(first_uid + n, modseq, self._flags(flag_text), ref.size, date, ref.digest))
            await BlobStore.ref_many(c, [ref for _, ref, _ in stored])
            for (_, headers, body, _, _, _), ref, _ in sorted(stored, key=lambda s: s[1].digest):
                await c.run(
                    "INSERT INTO message_texts (blob, headers, body) VALUES (?, ?, ?) ON CONFLICT (blob) DO NOTHING",
                    ref.digest,
                    headers,
                    body,
                )
            # one Email per message (suite.mail.store.emails); its account state row is the last lock
            for n, ((structure, headers, body, sent, meta_doc, facts), ref, flag_text) in enumerate(stored):
                await emails.on_append(
                    c,
                    account_id,
                    mailbox_id,
                    first_uid + n,
                    blob=ref.digest,
                    size=ref.size,
                    received_at=msgs[n].internaldate,
                    sent_at=sent,
                    flags=flag_text,
                    headers_json=headers,
                    structure=structure,
                    body=body,
                    parsed=meta_doc,
                    list_facts=facts,
                )
        # the mailbox as it was before these messages (uidnext = the first UID just taken)
        mb = MailboxInfo(r[0], r[1], r[2], r[3], r[4], first_uid, modseq - 1, bool(r[7]))
        for m in msgs:
            await self.bus.publish(MailDelivered(account_id=account_id, mailbox_id=mailbox_id, uid=m.uid))
        await self.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=mailbox_id, modseq=modseq))
        return mb, msgs

    async def usage(self, account_id: int) -> tuple[int, int] | None:
        """(used bytes, quota bytes) of the account's one quota (the account store's answer)."""
        return await self.accounts.usage(account_id)

    @staticmethod
    async def _allocate(s: AsyncSession, mailbox_id: int, n_uids: int = 1) -> tuple[int, int]:
        """Take ``n_uids`` UIDs and one MODSEQ; the row lock serialises writers of this mailbox."""
        row = (
            await s.execute(
                update(Mailbox)
                .where(Mailbox.id == mailbox_id)
                .values(uidnext=Mailbox.uidnext + n_uids, highestmodseq=Mailbox.highestmodseq + 1)
                .returning(Mailbox.uidnext, Mailbox.highestmodseq)
            )
        ).one()
        return row[0] - n_uids, row[1]

    @staticmethod
    async def _next_modseq(s: AsyncSession, mailbox_id: int) -> int:
        return (
            await s.execute(
                update(Mailbox)
                .where(Mailbox.id == mailbox_id)
                .values(highestmodseq=Mailbox.highestmodseq + 1)
                .returning(Mailbox.highestmodseq)
            )
        ).scalar_one()

    # ------------------------------------------------------------------ reading
    async def messages(self, mailbox_id: int) -> list[MessageInfo]:
        """All messages in UID order: a session's view on SELECT."""
        async with self.raw_db.read() as c:
            rows = await c.all(f"SELECT {_MSG_COLS} FROM messages WHERE mailbox_id = ? ORDER BY uid", mailbox_id)
        return [self._msgrow(r) for r in rows]

    async def message_rows(self, mailbox_id: int) -> list[tuple]:
        """:meth:`messages` as plain (uid, modseq, flags, size, internaldate, blob) tuples."""
        async with self.raw_db.read() as c:
            rows = await c.all(f"SELECT {_MSG_COLS} FROM messages WHERE mailbox_id = ? ORDER BY uid", mailbox_id)
        return [(r[0], r[1], self._flags(r[2]), r[3], r[4], r[5]) for r in rows]

    async def changes_since(self, mailbox_id: int, modseq: int) -> Changes:
        async with self.raw_db.read(snapshot=True) as c:
            mb = await c.one("SELECT highestmodseq, uidnext FROM mailboxes WHERE id = ?", mailbox_id)
            if mb is None:
                return Changes(0, 0, [], [])
            rows = await c.all(
                f"SELECT {_MSG_COLS} FROM messages WHERE mailbox_id = ? AND modseq > ? ORDER BY uid",
                mailbox_id,
                modseq,
            )
            gone = await c.all(
                "SELECT uid FROM expunged WHERE mailbox_id = ? AND modseq > ? ORDER BY uid", mailbox_id, modseq
            )
        return Changes(mb[0], mb[1], [self._msgrow(r) for r in rows], [g[0] for g in gone])

    async def structure(self, mailbox_id: int, uid: int) -> mime.MessageStructure | None:
        async with self.raw_db.read() as c:
            data = await c.scalar("SELECT structure FROM messages WHERE mailbox_id = ? AND uid = ?", mailbox_id, uid)
        return mime.MessageStructure.from_json(data) if data is not None else None

    async def structures(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, mime.MessageStructure]:
        out: dict[int, mime.MessageStructure] = {}
        async with self.raw_db.read() as c:
            for i in range(0, len(uids), CHUNK):
                cond, args = _in(c, "uid", uids[i : i + CHUNK])
                rows = await c.all(
                    f"SELECT uid, structure FROM messages WHERE mailbox_id = ? AND {cond}", mailbox_id, *args
                )
                for uid, data in rows:
                    out[uid] = mime.MessageStructure.from_json(data)
        return out

    async def text_candidates(self, mailbox_id: int, key: str, term: str) -> set[int] | None:
        """UIDs of the mailbox's messages that may match IMAP ``key`` (SUBJECT, FROM, TO, CC, BCC,
        BODY) ``term``, from the full-text index (suite.mail.store.search); None when the term can't
        use it. A superset: the caller checks each candidate with the substring matcher."""
        async with self.raw_db.read() as c:
            q = await search.candidates_query(c, key, term, self._vocabulary)
            if q is None:
                return None
            sql, args = q
            rows = await c.all(
                f"SELECT m.uid FROM messages m JOIN emails e ON e.id = m.email_id WHERE m.mailbox_id = ? AND {sql}",
                mailbox_id,
                *args,
            )
            out = {r[0] for r in rows}
            if key == "BODY":  # the index keeps the first MAX_BODY characters of a body
                big = await c.all(
                    "SELECT uid FROM messages WHERE mailbox_id = ? AND size > ?", mailbox_id, search.MAX_BODY
                )
                out.update(r[0] for r in big)
        return out

    async def search_texts(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, searchtext.SearchText]:
        out: dict[int, searchtext.SearchText] = {}
        async with self.raw_db.read() as c:
            for i in range(0, len(uids), CHUNK):
                cond, args = _in(c, "m.uid", uids[i : i + CHUNK])
                rows = await c.all(
                    "SELECT m.uid, t.headers, t.body FROM messages m JOIN message_texts t ON t.blob = m.blob "
                    f"WHERE m.mailbox_id = ? AND {cond}",
                    mailbox_id,
                    *args,
                )
                for uid, headers, body in rows:
                    out[uid] = searchtext.SearchText(headers=json.loads(headers), body=body)
        return out

    async def object_ids(self, mailbox_id: int, uids: Sequence[int]) -> dict[int, tuple[str, str]]:
        """uid → (Email id, Thread id) as JMAP shows them (IMAP EMAILID/THREADID, RFC 8474 §5)."""
        async with self.raw_db.read() as c:
            return await emails.object_ids(c, mailbox_id, uids)

    def mailbox_object_id(self, mailbox_id: int) -> str:
        """The JMAP Mailbox id, shown by IMAP as MAILBOXID (RFC 8474 §4)."""
        return emails.mailbox_object_id(mailbox_id)

    async def sent_dates(self, mailbox_id: int) -> dict[int, float | None]:
        async with self.raw_db.read() as c:
            rows = await c.all("SELECT uid, sent_date FROM messages WHERE mailbox_id = ?", mailbox_id)
        return {r[0]: r[1] for r in rows}

    async def raw(self, blob: str) -> bytes:
        return await self.blobs.read_bytes(blob)

    async def status(self, mailbox_id: int) -> MailboxStatus:
        async with self.raw_db.read(snapshot=True) as c:
            mb = await c.one("SELECT uidnext, uidvalidity, highestmodseq FROM mailboxes WHERE id = ?", mailbox_id)
            if mb is None:
                raise NoSuchMailbox("no such mailbox")
            rows = await c.all("SELECT flags, size FROM messages WHERE mailbox_id = ?", mailbox_id)
        unseen = deleted = size = 0
        for flags, sz in rows:
            low = flags.lower()
            unseen += "\\seen" not in low
            deleted += "\\deleted" in low
            size += sz
        return MailboxStatus(len(rows), unseen, deleted, size, mb[0], mb[1], mb[2])

    # ------------------------------------------------------------------ changes
    @retried
    async def store_flags(
        self,
        account_id: int,
        mailbox_id: int,
        uids: Sequence[int],
        mode: str,
        flags: Iterable[str],
        *,
        unchangedsince: int | None = None,
        durable: bool = True,
    ) -> tuple[list[MessageInfo], list[int]]:
        """Set (``mode`` "replace"), add ("add") or remove ("remove") flags. Returns the messages whose
        flags changed (with their new MODSEQ) and the UIDs that failed UNCHANGEDSINCE (RFC 7162 §3.1.3).
        ``durable=False``: committed, fsynced soon after (``RawDB.write``)."""
        if mode not in ("replace", "add", "remove"):
            raise ValueError(mode)
        wanted = normalize_flags(flags)
        wanted_low = {f.lower() for f in wanted}
        changed: list[MessageInfo] = []
        modified: list[int] = []
        others: list[tuple[int, int]] = []
        if not uids:
            return changed, modified
        async with self.raw_db.write(durable=durable) as c:
            if c.pg:  # the mailbox row first: two writers never compute flags from the same old row
                await c.run("SELECT id FROM mailboxes WHERE id = ? FOR UPDATE", mailbox_id)
            rows = []
            for i in range(0, len(uids), CHUNK):
                cond, args = _in(c, "uid", uids[i : i + CHUNK])
                rows += await c.all(
                    f"SELECT {_MSG_COLS} FROM messages WHERE mailbox_id = ? AND {cond}", mailbox_id, *args
                )
            updates: dict[str, list] = {}
            for uid, mseq, text, size, date, blob in rows:
                if unchangedsince is not None and mseq > unchangedsince:
                    modified.append(uid)
                    continue
                cur = list(self._flags(text))
                if mode == "replace":
                    new = wanted
                    if {f.lower() for f in new} == {f.lower() for f in cur}:
                        continue
                elif mode == "add":
                    have = {f.lower() for f in cur}
                    new = cur + [f for f in wanted if f.lower() not in have]
                    if len(new) == len(cur):
                        continue
                else:
                    new = [f for f in cur if f.lower() not in wanted_low]
                    if len(new) == len(cur):
                        continue
                new_text = " ".join(new)
                updates.setdefault(new_text, []).append(uid)
                changed.append(MessageInfo(uid, 0, tuple(new), size, date, blob))
            if changed:
                modseq = await c.scalar(
                    "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
                    mailbox_id,
                )
                for new_text, group in updates.items():
                    for i in range(0, len(group), CHUNK):
                        cond, args = _in(c, "uid", group[i : i + CHUNK])
                        await c.run(
                            f"UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND {cond}",
                            new_text,
                            modseq,
                            mailbox_id,
                            *args,
                        )
                changed = [MessageInfo(m.uid, modseq, m.flags, m.size, m.internaldate, m.blob) for m in changed]
                # keywords are per Email: its memberships in other mailboxes follow (RFC 8621 §4.1.1)
                others = await emails.on_flags(c, account_id, mailbox_id, [(m.uid, " ".join(m.flags)) for m in changed])
        if changed:
            await self.bus.publish(
                MailboxChanged(account_id=account_id, mailbox_id=mailbox_id, modseq=changed[0].modseq)
            )
            for other, other_modseq in others:
                await self.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=other, modseq=other_modseq))
        changed.sort(key=lambda x: x.uid)
        return changed, sorted(modified)

    @retried
    async def copy(
        self,
        account_id: int,
        src_mailbox_id: int,
        uids: Sequence[int],
        dst_mailbox_id: int,
        *,
        expunge_source: bool = False,
    ) -> list[tuple[int, int]]:
        """COPY (RFC 9051 §6.4.7) or MOVE (RFC 6851) in one transaction: returns [(src uid, dst uid)]
        in ascending source order for COPYUID (RFC 4315 §3). The copies take the source's flags."""
        async with self.sessions.begin() as s:
            dst = await s.get(Mailbox, dst_mailbox_id)
            if dst is None or dst.account_id != account_id:
                raise NoSuchMailbox("no such destination mailbox")
            src_rows: list[Message] = []
            for i in range(0, len(uids), 500):
                src_rows += list(
                    await s.scalars(
                        select(Message).where(Message.mailbox_id == src_mailbox_id, Message.uid.in_(uids[i : i + 500]))
                    )
                )
            src_rows.sort(key=lambda m: m.uid)
            if not src_rows:
                return []
            total = sum(m.size for m in src_rows)
            if not expunge_source and not await AccountStore.charge(s, account_id, total):
                raise QuotaExceeded("quota exceeded")
            src_modseq = None
            if expunge_source and src_mailbox_id < dst_mailbox_id:
                src_modseq = await self._next_modseq(s, src_mailbox_id)  # mailbox rows locked in id order
            first_uid, modseq = await self._allocate(s, dst_mailbox_id, len(src_rows))
            if expunge_source and src_modseq is None:
                src_modseq = await self._next_modseq(s, src_mailbox_id)
            pairs = []
            for n, m in enumerate(src_rows):
                s.add(
                    Message(
                        mailbox_id=dst_mailbox_id,
                        uid=first_uid + n,
                        modseq=modseq,
                        blob=m.blob,
                        size=m.size,
                        internaldate=m.internaldate,
                        sent_date=m.sent_date,
                        flags=m.flags,
                        structure=m.structure,
                        email_id=m.email_id,  # a COPY is one more membership of the same Email
                    )
                )
                pairs.append((m.uid, first_uid + n))
            if not expunge_source:
                await BlobStore.ref_many(s, [BlobRef(m.blob, m.size) for m in src_rows])
            if expunge_source:
                await s.execute(delete(Message).where(Message.id.in_([m.id for m in src_rows])))
                s.add_all(Expunged(mailbox_id=src_mailbox_id, uid=m.uid, modseq=src_modseq) for m in src_rows)
            await s.flush()
            await emails.on_copy(
                await dbmod.conn(s),
                account_id,
                dst_mailbox_id,
                [m.email_id for m in src_rows],
                src_mailbox_id if expunge_source else None,
            )
        await self.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=dst_mailbox_id, modseq=modseq))
        if src_modseq is not None:
            await self.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=src_mailbox_id, modseq=src_modseq))
        return pairs

    async def move(
        self, src_mailbox_id: int, uids: Sequence[int], dst_mailbox_id: int, account_id: int | None = None
    ) -> list[tuple[int, int]]:
        if account_id is None:
            mb = await self.mailbox_by_id(src_mailbox_id)
            if mb is None:
                raise NoSuchMailbox("no such mailbox")
            account_id = mb.account_id
        return await self.copy(account_id, src_mailbox_id, uids, dst_mailbox_id, expunge_source=True)

    async def expunge(self, account_id: int, mailbox_id: int, uids: Sequence[int] | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only those in ``uids`` when given: UID EXPUNGE,
        RFC 4315 §2.1). Returns the expunged UIDs, ascending."""
        gone, _ = await self.expunge_modseq(account_id, mailbox_id, uids)
        return gone

    @retried
    async def expunge_modseq(
        self, account_id: int, mailbox_id: int, uids: Sequence[int] | None = None
    ) -> tuple[list[int], int | None]:
        """:meth:`expunge`, with the MODSEQ the expunge took (None when nothing was expunged)."""
        async with self.raw_db.write() as c:
            # lock order everywhere: account row, then mailbox rows (by id), then blob rows
            await AccountStore.lock(c, account_id)
            if c.pg:
                await c.run("SELECT id FROM mailboxes WHERE id = ? FOR UPDATE", mailbox_id)
            rows = await c.all(
                "SELECT id, uid, blob, size, flags, email_id FROM messages "
                "WHERE mailbox_id = ? AND lower(flags) LIKE ? ESCAPE '/'",
                mailbox_id,
                "%\\deleted%",
            )
            rows = [r for r in rows if _has_flag(r[4], "\\deleted")]
            if uids is not None:
                keep = set(uids)
                rows = [r for r in rows if r[1] in keep]
            if not rows:
                return [], None
            await AccountStore.charge(c, account_id, -sum(r[3] for r in rows))
            modseq = await c.scalar(
                "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq",
                mailbox_id,
            )
            ids = [r[0] for r in rows]
            for i in range(0, len(ids), CHUNK):
                cond, args = _in(c, "id", ids[i : i + CHUNK])
                await c.run(f"DELETE FROM messages WHERE {cond}", *args)
            await c.many(
                "INSERT INTO expunged (mailbox_id, uid, modseq) VALUES (?, ?, ?)",
                [(mailbox_id, r[1], modseq) for r in rows],
            )
            await BlobStore.unref_many(c, (r[2] for r in rows))
            # search texts of blobs no message refers to any more
            digests = sorted({r[2] for r in rows})
            for i in range(0, len(digests), CHUNK):
                chunk = digests[i : i + CHUNK]
                cond, args = _in(c, "blob", chunk)
                still = {r[0] for r in await c.all(f"SELECT DISTINCT blob FROM messages WHERE {cond}", *args)}
                orphans = [d for d in chunk if d not in still]
                if orphans:
                    cond, args = _in(c, "blob", orphans)
                    await c.run(f"DELETE FROM message_texts WHERE {cond}", *args)
            await emails.on_removed(
                c, account_id, [r[5] for r in rows], [mailbox_id], [(mailbox_id, r[5]) for r in rows]
            )
        await self.bus.publish(MailboxChanged(account_id=account_id, mailbox_id=mailbox_id, modseq=modseq))
        return sorted(r[1] for r in rows), modseq

    @staticmethod
    async def _drop_orphan_texts(s: AsyncSession, blobs: list[str]) -> None:
        for i in range(0, len(blobs), 500):
            chunk = list(set(blobs[i : i + 500]))
            still = set(await s.scalars(select(Message.blob).where(Message.blob.in_(chunk))))
            gone = [b for b in chunk if b not in still]
            if gone:
                await s.execute(delete(MessageText).where(MessageText.blob.in_(gone)))

    # ------------------------------------------------------------------ IMAP4rev1 \Recent
    @retried
    async def claim_recent(self, mailbox_id: int) -> tuple[int, int]:
        """Take the messages no session has had as recent yet (RFC 3501 §2.3.2): returns the UID
        range ``[first, upto)`` now recent for the caller alone.  One upsert on the mailbox's
        row of ``mail_recent``: concurrent claimers (other sessions, other processes) are
        serialised by it and get disjoint ranges."""
        async with self.raw_db.read() as c:  # nothing new since the last claim: no write at all
            r = await c.one(
                "SELECT m.uidnext, r.upto FROM mailboxes m LEFT JOIN mail_recent r ON r.mailbox_id = m.id "
                "WHERE m.id = ?",
                mailbox_id,
            )
        if r is None or (r[1] is not None and r[1] >= r[0]):
            return 0, 0
        async with self.raw_db.write() as c:
            r = await c.one("SELECT uidnext FROM mailboxes WHERE id = ?", mailbox_id)
            if r is None:
                return 0, 0
            got = await c.one(
                "INSERT INTO mail_recent (mailbox_id, prev, upto) VALUES (?, 1, ?) "
                "ON CONFLICT (mailbox_id) DO UPDATE SET prev = mail_recent.upto, upto = excluded.upto "
                "WHERE mail_recent.upto < excluded.upto RETURNING prev, upto",
                mailbox_id,
                r[0],
            )
        return (int(got[0]), int(got[1])) if got else (0, 0)

    async def recent_from(self, mailbox_id: int) -> int:
        """The first UID not claimed as recent yet (what a read-only session shows as recent)."""
        async with self.raw_db.read() as c:
            r = await c.one("SELECT upto FROM mail_recent WHERE mailbox_id = ?", mailbox_id)
        return int(r[0]) if r else 1

    async def recent_count(self, mailbox_id: int) -> int:
        """Messages no session has had as recent yet (STATUS RECENT, RFC 3501 §6.3.10)."""
        async with self.raw_db.read() as c:
            r = await c.one(
                "SELECT COUNT(*) FROM messages WHERE mailbox_id = ? AND uid >= "
                "COALESCE((SELECT upto FROM mail_recent WHERE mailbox_id = ?), 1)",
                mailbox_id,
                mailbox_id,
            )
        return int(r[0]) if r else 0
