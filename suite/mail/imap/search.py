"""SEARCH evaluation (RFC 9051 §6.4.4, RFC 7162 §3.1.5 MODSEQ, RFC 5032 OLDER/YOUNGER, RFC 5182 ``$``).

Pure: a search tree and per-message data in, a boolean out.  The session loads what the tree
needs (decoded texts for string keys, Date: header times for SENT*) in one batch beforehand.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from suite.mail.mime.searchtext import SearchText, fold

from .commands import (
    SearchAnd,
    SearchCriterion,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSet,
    walk_search,
)
from .view import Msg

TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO", "HEADER"})
SENT_KEYS = frozenset({"SENTBEFORE", "SENTON", "SENTSINCE"})
ID_KEYS = frozenset({"EMAILID", "THREADID"})  # RFC 8474 §6


@dataclass(frozen=True, slots=True)
class Requirements:
    text: bool
    sent: bool
    modseq: bool
    saved: bool
    ids: bool = False


def requirements(key: SearchKey) -> Requirements:
    text = sent = modseq = saved = ids = False
    for k in walk_search(key):
        if isinstance(k, SearchCriterion):
            text |= k.key in TEXT_KEYS
            sent |= k.key in SENT_KEYS
            ids |= k.key in ID_KEYS
        elif isinstance(k, SearchModSeq):
            modseq = True
        elif isinstance(k, SearchSet) and k.set.saved:
            saved = True
    return Requirements(text, sent, modseq, saved, ids)


INDEX_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TO"})


@dataclass(slots=True)
class Context:
    """Mailbox-wide values for one evaluation."""

    n_messages: int
    largest_uid: int
    saved: set[int] = field(default_factory=set)  # RFC 5182 saved result, as UIDs
    now: float = field(default_factory=time.time)
    texts: dict[int, SearchText] = field(default_factory=dict)
    sent: dict[int, float | None] = field(default_factory=dict)
    ids: dict[int, tuple[str, str]] = field(default_factory=dict)  # uid → (EMAILID, THREADID)


def _date(ts: float) -> _dt.date:
    # RFC 9051 §6.4.4: dates compare "disregarding time and timezone"; stored as UTC timestamps
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).date()


def _has(m: Msg, flag: str) -> bool:
    f = flag.lower()
    return any(x.lower() == f for x in m.flags)


def matches(key: SearchKey, seq: int, m: Msg, ctx: Context) -> bool:
    if isinstance(key, SearchAnd):
        return all(matches(k, seq, m, ctx) for k in key.keys)
    if isinstance(key, SearchOr):
        return matches(key.left, seq, m, ctx) or matches(key.right, seq, m, ctx)
    if isinstance(key, SearchNot):
        return not matches(key.key, seq, m, ctx)
    if isinstance(key, SearchSet):
        if key.set.saved:
            return m.uid in ctx.saved  # RFC 5182 §2.1
        if key.uid:
            return key.set.contains(m.uid, ctx.largest_uid)
        return key.set.contains(seq, ctx.n_messages)
    if isinstance(key, SearchModSeq):
        return m.modseq >= key.modseq  # RFC 7162 §3.1.5
    return _criterion(key, seq, m, ctx)


def _criterion(c: SearchCriterion, seq: int, m: Msg, ctx: Context) -> bool:
    k = c.key
    v: Any = c.value  # its type follows the key (see commands.SearchCriterion)
    if k == "ALL":
        return True
    if k in ("ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"):
        return _has(m, "\\" + k)
    if k in ("UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN"):
        return not _has(m, "\\" + k[2:])
    # RFC 3501 §6.4.4: \Recent as this session has it (never for IMAP4rev2 sessions, RFC 9051 App. E)
    if k == "RECENT":
        return m.recent
    if k == "NEW":
        return m.recent and "\\seen" not in m.flags_lower
    if k == "OLD":
        return not m.recent
    if k == "KEYWORD":
        return _has(m, v)
    if k == "UNKEYWORD":
        return not _has(m, v)
    if k == "LARGER":
        return m.size > v
    if k == "SMALLER":
        return m.size < v
    if k in ("BEFORE", "ON", "SINCE"):
        d = _date(m.internaldate)
        return d < v if k == "BEFORE" else d == v if k == "ON" else d >= v
    if k in SENT_KEYS:
        # RFC 9051 §6.4.4: the Date: header's date as written (stored so by the mail store); a
        # message without a parsable Date: matches by its internal date, as Dovecot does
        ts = ctx.sent.get(m.uid)
        d = _date(m.internaldate if ts is None else ts)
        return d < v if k == "SENTBEFORE" else d == v if k == "SENTON" else d >= v
    if k in ID_KEYS:
        # RFC 8474 §6: object ids compare exactly (case-sensitive)
        got = ctx.ids.get(m.uid)
        return got is not None and got[k == "THREADID"] == v
    if k == "OLDER":  # RFC 5032 §3
        return m.internaldate <= ctx.now - v
    if k == "YOUNGER":
        return m.internaldate >= ctx.now - v
    text = ctx.texts.get(m.uid)
    if text is None:
        return False
    if k == "BODY":
        return text.matches_body(v)
    if k == "TEXT":
        return text.matches_text(v)
    if k == "HEADER":
        name, term = v
        return text.matches_header(name, term)
    if k in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
        return text.matches_header(k.lower(), v)
    return False


# ---------------------------------------------------------------------------------------------
# Compiled form: the same semantics as :func:`matches`, with everything that does not depend on
# the message (folded terms, lower-case flag names, dispatch on the key) worked out once per
# SEARCH instead of once per message.

Matcher = Callable[[int, Msg], bool]

_FLAG_KEYS = {"ANSWERED", "DELETED", "DRAFT", "FLAGGED", "SEEN"}


def compile_key(key: SearchKey, ctx: Context) -> Matcher:
    """A function (seq, message) → bool equivalent to ``matches(key, seq, m, ctx)``."""
    if isinstance(key, SearchAnd):
        parts = [compile_key(k, ctx) for k in key.keys]
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            a, b = parts
            return lambda s, m: a(s, m) and b(s, m)
        return lambda s, m: all(f(s, m) for f in parts)
    if isinstance(key, SearchOr):
        left, right = compile_key(key.left, ctx), compile_key(key.right, ctx)
        return lambda s, m: left(s, m) or right(s, m)
    if isinstance(key, SearchNot):
        inner = compile_key(key.key, ctx)
        return lambda s, m: not inner(s, m)
    if isinstance(key, SearchSet):
        if key.set.saved:
            saved = ctx.saved
            return lambda s, m: m.uid in saved  # RFC 5182 §2.1
        sset = key.set
        if key.uid:
            largest = ctx.largest_uid
            return lambda s, m: sset.contains(m.uid, largest)
        n = ctx.n_messages
        return lambda s, m: sset.contains(s, n)
    if isinstance(key, SearchModSeq):
        modseq = key.modseq
        return lambda s, m: m.modseq >= modseq  # RFC 7162 §3.1.5
    return _compile_criterion(key, ctx)


def _compile_criterion(c: SearchCriterion, ctx: Context) -> Matcher:
    k = c.key
    v: Any = c.value  # its type follows the key (see commands.SearchCriterion)
    if k == "ALL":
        return lambda s, m: True
    # RFC 3501 §6.4.4: \Recent as this session has it (never for IMAP4rev2 sessions, RFC 9051 App. E)
    if k == "RECENT":
        return lambda s, m: m.recent
    if k == "NEW":
        return lambda s, m: m.recent and "\\seen" not in m.flags_lower
    if k == "OLD":
        return lambda s, m: not m.recent
    if k in _FLAG_KEYS or k == "KEYWORD":
        flag = ("\\" + k if k in _FLAG_KEYS else v).lower()
        return lambda s, m: flag in m.flags_lower
    if k.startswith("UN") and (k[2:] in _FLAG_KEYS or k == "UNKEYWORD"):
        flag = ("\\" + k[2:] if k[2:] in _FLAG_KEYS else v).lower()
        return lambda s, m: flag not in m.flags_lower
    texts = ctx.texts
    if k in ("FROM", "TO", "CC", "BCC", "SUBJECT", "HEADER"):
        name, term = (k.lower(), v) if k != "HEADER" else (v[0].lower(), v[1])
        t = fold(term)

        def header(s: int, m: Msg) -> bool:
            text = texts.get(m.uid)
            if text is None:
                return False
            vals = text.headers.get(name)
            return vals is not None and any(t in x for x in vals)

        return header
    if k == "BODY":
        t = fold(v)

        def body(s: int, m: Msg) -> bool:
            text = texts.get(m.uid)
            return text is not None and t in text.body

        return body
    if k == "TEXT":
        t = fold(v)

        def anywhere(s: int, m: Msg) -> bool:
            text = texts.get(m.uid)
            if text is None:
                return False
            return t in text.body or any(t in x for vals in text.headers.values() for x in vals)

        return anywhere
    # sizes, dates: cheap enough per message
    return lambda s, m: _criterion(c, s, m, ctx)
