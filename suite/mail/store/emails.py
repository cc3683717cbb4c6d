"""The one mail model (RFC 8621 §1.6): Emails, their memberships, threads and the change log.

Every function here runs inside the caller's write transaction (a ``RawDB`` connection or
``suite.storage.db.conn`` of an ORM session), so an Email row, its memberships and its change-log
entries commit together with the IMAP change that made them.

- An Email is one ``emails`` row; each mailbox it is in is a ``messages`` row (its UID, MODSEQ and
  flags there). IMAP COPY adds a membership; JMAP ``mailboxIds`` patches add and remove them.
- Keywords belong to the Email (RFC 8621 §4.1.1). Each membership keeps the flags denormalised for
  IMAP; a flag change through either protocol is written to every membership, each taking its
  mailbox's next MODSEQ (RFC 7162 §3.1) so IMAP clients (and IDLE) see it. ``\\Deleted`` stays per
  membership: it is an IMAP expunge mark, not a keyword.
- Threads (RFC 8621 §3, RFC 5256 §2.2): at delivery an Email joins the thread of any message its
  Message-ID, In-Reply-To or References name, if that thread's base subject is the same
  (the guard that keeps a reply to an old mail with a new subject out of it).
- Changes: every transaction takes the account's ``mail_states`` row (last lock taken, after the
  account, mailbox and blob rows) and writes ``mail_changes`` rows; a JMAP state of a type is the
  last such row id of that type, so states advance with every IMAP MODSEQ.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from suite.mail import mime
from suite.mail.store import counters, search
from suite.storage import changelog
from suite.storage.db import Conn

EMAIL, MAILBOX, THREAD, SUBMISSION = "Email", "Mailbox", "Thread", "EmailSubmission"
IDENTITY = changelog.IDENTITY
CHUNK = 500

# RFC 8621 §4.1.1: IMAP system flags and their JMAP keywords
_FLAG_TO_KEYWORD = {"\\seen": "$seen", "\\flagged": "$flagged", "\\answered": "$answered", "\\draft": "$draft"}
_KEYWORD_TO_FLAG = {"$seen": "\\Seen", "$flagged": "\\Flagged", "$answered": "\\Answered", "$draft": "\\Draft"}


def in_list(c: Conn, column: str, values: Sequence) -> tuple[str, list]:
    """``column IN (?, …)`` (a list per value: works on every connection kind)."""
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


# ------------------------------------------------------------------ keywords
def keywords_of(flags: Iterable[str]) -> list[str]:
    """JMAP keywords (lower case) of IMAP flags; ``\\Deleted`` and ``\\Recent`` are not keywords."""
    out: list[str] = []
    for f in flags:
        low = f.lower()
        if low.startswith("\\"):
            kw = _FLAG_TO_KEYWORD.get(low)
            if kw is None:
                continue
        else:
            kw = low
        if kw not in out:
            out.append(kw)
    return out


def keywords_column(keywords: Iterable[str]) -> str:
    kws = sorted(set(keywords))
    return " " + " ".join(kws) + " " if kws else " "


def keywords_from_column(value: str) -> list[str]:
    return value.split()


def flags_for(keywords: Iterable[str], old_flags: str = "") -> str:
    """A membership's IMAP flags for these keywords; its ``\\Deleted`` mark is kept."""
    out = ["\\Deleted"] if any(f.lower() == "\\deleted" for f in old_flags.split()) else []
    for kw in sorted(set(keywords)):
        out.append(_KEYWORD_TO_FLAG.get(kw, kw))
    return " ".join(out)


VALID_KEYWORD = re.compile(r"^[\x21-\x7e]{1,255}$")
_FORBIDDEN = set('()]{%*"\\')


def valid_keyword(kw: str) -> bool:
    """RFC 8621 §4.1.1: the IMAP flag-keyword ABNF (atom characters, no specials)."""
    return bool(VALID_KEYWORD.match(kw)) and not (set(kw) & _FORBIDDEN)


# ------------------------------------------------------------------ headers → columns
_RE_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv|antw)\s*(\[\d+\])?\s*:\s*|\[[^\]]*\]\s*)", re.I)
_FWD_SUFFIX = re.compile(r"\s*\(fwd\)\s*$", re.I)
_MSGID = re.compile(r"<([^<>\s]+)>")


def base_subject(subject: str) -> str:
    """RFC 5256 §2.1 base subject (simplified): whitespace collapsed, "Re:", "Fwd:", "[list]"
    prefixes and "(fwd)" suffixes removed, case folded."""
    s = " ".join(subject.split())
    while True:
        t = _FWD_SUFFIX.sub("", s)
        t = _RE_PREFIX.sub("", t)
        if t.lower().startswith("[fwd:") and t.endswith("]"):
            t = t[5:-1].strip()
        if t == s:
            break
        s = t
    return s.casefold()


def msgids(value: str) -> list[str]:
    return [m for m in _MSGID.findall(value)][:200]


@dataclass
class Meta:
    """What an Email row caches from the message's headers."""

    subject: str = ""
    from_sort: str = ""
    to_sort: str = ""
    message_id: str = ""
    refs: list[str] = field(default_factory=list)  # In-Reply-To and References ids
    has_attachment: bool = False
    attachment_names: list[str] = field(default_factory=list)


def _first_line(values: list[str] | None) -> str:
    if not values:
        return ""
    return values[0].split("\n", 1)[0].strip()[:400]


def has_attachment(st: mime.MessageStructure) -> bool:
    def walk(p: mime.Part, top: bool) -> bool:
        if p.is_multipart:
            return any(walk(c, False) for c in p.children)
        disp = (p.disposition or b"").lower()
        if disp == b"attachment":
            return True
        ctype = (p.ctype or b"text").lower()
        return not top and ctype not in (b"text", b"multipart") and not (ctype == b"message" and not p.children)

    return walk(st.root, True)


def attachment_names(st: mime.MessageStructure) -> list[str]:
    from suite.mail.mime.searchtext import decode_header_value

    out: list[str] = []

    def walk(p: mime.Part) -> None:
        for c in p.children:
            walk(c)
        for k, v in list(p.disp_params or []) + list(p.params):
            if k.lower() in (b"filename", b"name") and len(out) < 100:
                out.append(decode_header_value(v))
                return

    walk(st.root)
    return out


def meta_of(headers_json: str, structure: bytes | None = None) -> Meta:
    h = json.loads(headers_json) if headers_json else {}
    st: mime.MessageStructure | None = None
    broken = False
    if structure is not None:
        try:
            st = mime.MessageStructure.from_json(structure)
        except (ValueError, KeyError, TypeError):
            broken = True
    return meta_from(h, st, broken=broken)


def meta_from(h: dict, st: mime.MessageStructure | None, *, broken: bool = False) -> Meta:
    """:func:`meta_of` from headers and a structure already parsed (delivery parses them once)."""
    m = Meta()
    m.subject = base_subject((h.get("subject") or [""])[0])[:1000]
    m.from_sort = _first_line(h.get("from"))
    m.to_sort = _first_line(h.get("to"))
    own = msgids(" ".join(h.get("message-id") or []))
    m.message_id = own[0][:490] if own else ""
    refs = msgids(" ".join(h.get("references") or [])) + msgids(" ".join(h.get("in-reply-to") or []))
    m.refs = [r[:490] for r in dict.fromkeys(refs) if r != m.message_id]
    if st is not None:
        try:
            m.has_attachment = has_attachment(st)
            m.attachment_names = attachment_names(st)
        except (ValueError, KeyError, TypeError):
            m.has_attachment = False
    elif broken:
        m.has_attachment = False
    return m


# ------------------------------------------------------------------ change log
# (shared with the account store, which logs Identity changes: suite.storage.changelog)
log = changelog.log
state = changelog.state


# ------------------------------------------------------------------ threads
async def _assign_thread(
    c: Conn, account_id: int, email_id: int, meta: Meta, deltas: counters.Deltas
) -> tuple[int, bool, list]:
    """(thread id, created, extra log entries) for a new Email (RFC 5256 §2.2 with the base subject as
    guard). A message that links several threads merges them into the oldest one."""
    ids = ([meta.message_id] if meta.message_id else []) + meta.refs
    joined: list[int] = []
    if ids:
        cond, args = in_list(c, "msgid", ids)
        cands = [
            r[0]
            for r in await c.all(
                f"SELECT DISTINCT thread_id FROM thread_refs WHERE account_id = ? AND {cond}", account_id, *args
            )
        ]
        for t in sorted(cands):
            subj = await c.scalar(
                "SELECT subject FROM emails WHERE account_id = ? AND thread_id = ? ORDER BY id LIMIT 1", account_id, t
            )
            if subj is None or subj == meta.subject:
                joined.append(t)
    extra: list[tuple[str, int, str]] = []
    created = not joined
    thread = joined[0] if joined else email_id
    await counters.merge_threads(c, deltas, thread, joined[1:])
    for other in joined[1:]:
        moved = [
            r[0] for r in await c.all("SELECT id FROM emails WHERE account_id = ? AND thread_id = ?", account_id, other)
        ]
        await c.run("UPDATE emails SET thread_id = ? WHERE account_id = ? AND thread_id = ?", thread, account_id, other)
        await c.run(
            "INSERT INTO thread_refs (account_id, msgid, thread_id) SELECT account_id, msgid, ? FROM thread_refs "
            "WHERE account_id = ? AND thread_id = ? ON CONFLICT (account_id, msgid, thread_id) DO NOTHING",
            thread,
            account_id,
            other,
        )
        await c.run("DELETE FROM thread_refs WHERE account_id = ? AND thread_id = ?", account_id, other)
        extra += [(EMAIL, m, "u") for m in moved] + [(THREAD, other, "d")]
    if ids:
        sql = (
            "INSERT INTO thread_refs (account_id, msgid, thread_id) VALUES (?, ?, ?) "
            "ON CONFLICT (account_id, msgid, thread_id) DO NOTHING"
        )
        await c.many(sql, [(account_id, i, thread) for i in ids])
    return thread, created, extra


# ------------------------------------------------------------------ store hooks
async def on_append(
    c: Conn,
    account_id: int,
    mailbox_id: int,
    uid: int,
    *,
    blob: str,
    size: int,
    received_at: float,
    sent_at: float | None,
    flags: str,
    headers_json: str,
    structure: bytes | None,
    body: str = "",
    parsed: tuple[Meta, dict[str, str]] | None = None,
    list_facts: str | None = None,
) -> int:
    """A new message in a mailbox is a new Email: its row, its thread, the membership's link, the log.
    ``parsed``: its Meta and search document when the caller made them already (off the event loop)."""
    meta, doc = parsed if parsed is not None else (meta_of(headers_json, structure), None)
    kws = keywords_column(keywords_of(flags.split()))
    cols = "account_id, blob, size, thread_id, received_at, sent_at, keywords, message_id, subject, from_sort, "
    cols += "to_sort, has_attachment, list_facts"
    email_id = await c.scalar(
        f"INSERT INTO emails ({cols}) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        account_id,
        blob,
        size,
        received_at,
        sent_at,
        kws,
        meta.message_id,
        meta.subject,
        meta.from_sort,
        meta.to_sort,
        meta.has_attachment,
        list_facts,
    )
    deltas = counters.new()
    thread, created, extra = await _assign_thread(c, account_id, email_id, meta, deltas)
    d = deltas[(mailbox_id, thread)]
    d[0] += 1
    d[1] += counters.unread(kws)
    await counters.apply(c, deltas)
    await c.run("UPDATE emails SET thread_id = ? WHERE id = ?", thread, email_id)
    await c.run("UPDATE messages SET email_id = ? WHERE mailbox_id = ? AND uid = ?", email_id, mailbox_id, uid)
    if doc is None:
        doc = search.document(headers_json, body, meta.attachment_names)
    await search.index(c, account_id, email_id, doc)
    await log(
        c,
        account_id,
        [(EMAIL, email_id, "c"), (THREAD, thread, "c" if created else "u"), (MAILBOX, mailbox_id, "k"), *extra],
    )
    return email_id


async def on_flags(
    c: Conn, account_id: int, mailbox_id: int, changed: Sequence[tuple[int, str]]
) -> list[tuple[int, int]]:
    """IMAP STORE changed the flags of these (uid, new flags) memberships: the Emails' keywords
    follow, and so do their memberships in other mailboxes. Returns [(mailbox id, new MODSEQ)] of
    the other mailboxes touched (the caller publishes MailboxChanged for them)."""
    if not changed:
        return []
    by_uid = dict(changed)
    rows: list = []
    uids = list(by_uid)
    for i in range(0, len(uids), CHUNK):
        cond, args = in_list(c, "uid", uids[i : i + CHUNK])
        rows += await c.all(f"SELECT uid, email_id FROM messages WHERE mailbox_id = ? AND {cond}", mailbox_id, *args)
    email_kws: dict[int, list[str]] = {}
    for uid, email_id in rows:
        if email_id is not None:
            email_kws[email_id] = keywords_of(by_uid[uid].split())
    return await _write_keywords(c, account_id, email_kws, skip_mailbox=mailbox_id, logged_mailboxes={mailbox_id})


async def _write_keywords(
    c: Conn,
    account_id: int,
    email_kws: dict[int, list[str]],
    *,
    skip_mailbox: int | None = None,
    logged_mailboxes: set[int] | None = None,
) -> list[tuple[int, int]]:
    """Set Emails' keywords and every membership's flags (except in ``skip_mailbox``, already
    written). Returns [(mailbox id, MODSEQ)] of the mailboxes whose memberships changed."""
    if not email_kws:
        return []
    ids = list(email_kws)
    members: list = []
    for i in range(0, len(ids), CHUNK):
        cond, args = in_list(c, "email_id", ids[i : i + CHUNK])
        members += await c.all(f"SELECT mailbox_id, uid, flags, email_id FROM messages WHERE {cond}", *args)
    old: dict[int, tuple[int, str]] = {}
    for i in range(0, len(ids), CHUNK):
        cond, args = in_list(c, "id", ids[i : i + CHUNK])
        for eid, tid, kws in await c.all(f"SELECT id, thread_id, keywords FROM emails WHERE {cond}", *args):
            old[eid] = (tid, kws)
    deltas = counters.new()
    for mbid, _uid, _flags, email_id in members:
        if email_id in old:
            tid, kws = old[email_id]
            du = counters.unread(keywords_column(email_kws[email_id])) - counters.unread(kws)
            if du:
                deltas[(mbid, tid)][1] += du
    groups: dict[int, list[tuple[int, str]]] = {}
    for mbid, uid, flags, email_id in members:
        if mbid == skip_mailbox:
            continue
        new = flags_for(email_kws[email_id], flags)
        if set(new.lower().split()) != set(flags.lower().split()):
            groups.setdefault(mbid, []).append((uid, new))
    touched: list[tuple[int, int]] = []
    for mbid in sorted(groups):
        modseq = await c.scalar(
            "UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ? RETURNING highestmodseq", mbid
        )
        await c.many(
            "UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
            [(new, modseq, mbid, uid) for uid, new in groups[mbid]],
        )
        touched.append((mbid, modseq))
    await counters.apply(c, deltas)
    for email_id, kws in email_kws.items():
        await c.run("UPDATE emails SET keywords = ? WHERE id = ?", keywords_column(kws), email_id)
    mbs = set(logged_mailboxes or ()) | set(groups)
    await log(
        c,
        account_id,
        [(EMAIL, e, "u") for e in email_kws] + [(MAILBOX, m, "k") for m in sorted(mbs)],
    )
    return touched


async def set_keywords(c: Conn, account_id: int, email_kws: dict[int, list[str]]) -> list[tuple[int, int]]:
    """JMAP Email/set keywords: every membership's flags and its mailbox's MODSEQ."""
    return await _write_keywords(c, account_id, email_kws)


async def on_copy(
    c: Conn, account_id: int, dst_mailbox_id: int, email_ids: Iterable[int | None], src_mailbox_id: int | None
) -> None:
    """IMAP COPY/MOVE: the Emails gained a membership (and lost one on MOVE); one entry in
    ``email_ids`` per copied membership."""
    every = list(email_ids)
    deltas = counters.new()
    await counters.members(c, deltas, [(dst_mailbox_id, e) for e in every], 1)
    if src_mailbox_id is not None:
        await counters.members(c, deltas, [(src_mailbox_id, e) for e in every], -1)
    await counters.apply(c, deltas)
    ids = [e for e in dict.fromkeys(every) if e is not None]
    changes = [(EMAIL, e, "u") for e in ids] + [(MAILBOX, dst_mailbox_id, "k")]
    if src_mailbox_id is not None:
        changes.append((MAILBOX, src_mailbox_id, "k"))
    await log(c, account_id, changes)


async def on_removed(
    c: Conn,
    account_id: int,
    email_ids: Iterable[int | None],
    mailbox_ids: Iterable[int],
    members: Sequence[tuple[int, int | None]] = (),
) -> list[int]:
    """Memberships of these Emails are gone (EXPUNGE, mailbox deleted, JMAP patch): Emails left in
    no mailbox are destroyed (RFC 8621 §1.6: an Email is in at least one mailbox). Returns those.
    ``members`` (mailbox id, email id) are the removed memberships whose mailboxes stay (counters)."""
    if members:
        deltas = counters.new()
        await counters.members(c, deltas, members, -1)
        await counters.apply(c, deltas)
    ids = sorted({e for e in email_ids if e is not None})
    gone: list[int] = []
    threads: dict[int, int] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        cond, args = in_list(c, "email_id", chunk)
        still = {r[0] for r in await c.all(f"SELECT DISTINCT email_id FROM messages WHERE {cond}", *args)}
        dead = [e for e in chunk if e not in still]
        if dead:
            cond, args = in_list(c, "id", dead)
            for eid, tid in await c.all(f"SELECT id, thread_id FROM emails WHERE {cond}", *args):
                threads[eid] = tid
            await c.run(f"DELETE FROM emails WHERE {cond}", *args)
            await search.unindex(c, dead)
            gone += dead
    changes = [(EMAIL, e, "d" if e in threads else "u") for e in ids]
    for tid in sorted(set(threads.values())):
        left = await c.scalar("SELECT 1 FROM emails WHERE account_id = ? AND thread_id = ? LIMIT 1", account_id, tid)
        changes.append((THREAD, tid, "u" if left else "d"))
        if not left:
            await c.run("DELETE FROM thread_refs WHERE account_id = ? AND thread_id = ?", account_id, tid)
    changes += [(MAILBOX, m, "k") for m in sorted(set(mailbox_ids))]
    await log(c, account_id, changes)
    return gone


async def on_mailbox(c: Conn, account_id: int, mailbox_ids: Iterable[int], op: str) -> None:
    """A mailbox was created, renamed/subscribed ("u") or destroyed ("d")."""
    await log(c, account_id, [(MAILBOX, m, op) for m in mailbox_ids])


# ------------------------------------------------------------------ ids both protocols show
def email_object_id(email_id: int) -> str:
    """The id of an Email in JMAP and (RFC 8474 EMAILID) in IMAP: one spelling for both."""
    return f"e{email_id}"


def thread_object_id(thread_id: int) -> str:
    return f"T{thread_id}"  # JMAP threadId, IMAP THREADID (RFC 8474 §5)


def mailbox_object_id(mailbox_id: int) -> str:
    return f"M{mailbox_id}"  # JMAP Mailbox id, IMAP MAILBOXID (RFC 8474 §4)


async def object_ids(c: Conn, mailbox_id: int, uids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """uid → (EMAILID, THREADID) of a mailbox's messages, for IMAP FETCH (RFC 8474 §5)."""
    out: dict[int, tuple[str, str]] = {}
    for i in range(0, len(uids), CHUNK):
        cond, args = in_list(c, "m.uid", uids[i : i + CHUNK])
        for uid, eid, tid in await c.all(
            f"SELECT m.uid, e.id, e.thread_id FROM messages m JOIN emails e ON e.id = m.email_id "
            f"WHERE m.mailbox_id = ? AND {cond}",
            mailbox_id,
            *args,
        ):
            out[uid] = (email_object_id(eid), thread_object_id(tid))
    return out
