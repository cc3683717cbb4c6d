"""FETCH item rendering (RFC 9051 §6.4.5, §7.5.2; RFC 3516 BINARY; RFC 7162 MODSEQ).

Pure: a message's cached view data, its parsed structure and raw bytes in, response items out
(plus an optional per-blob cache of header sections, which never change).
Output follows Dovecot: ``UID`` first, then the items in the order asked; BODY[...] data always
as a literal; a BINARY item whose part cannot be decoded is left out and the command ends in
``NO [UNKNOWN-CTE]`` / ``NO [PARSE]`` (RFC 3516 §4.3).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass

from suite.mail import mime
from suite.mail.mime import MimeError, SectionError
from suite.mail.mime.sections import SectionSpec

from .commands import FetchAttr
from .responses import Atom, Literal, Literal8, Raw, date_time
from .view import Msg

#: items answered from the view alone
VIEW_ITEMS = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"})
#: items answered from the cached structure without the message bytes
STRUCTURE_ITEMS = frozenset({"ENVELOPE", "BODYSTRUCTURE"})
#: items answered from the store's object ids (RFC 8474 §5)
ID_ITEMS = frozenset({"EMAILID", "THREADID"})


@dataclass(frozen=True, slots=True)
class Needs:
    structure: bool
    raw: bool
    ids: bool = False


def needs(attrs: tuple[FetchAttr, ...]) -> Needs:
    structure = raw = ids = False
    for a in attrs:
        n = a.name
        if n in VIEW_ITEMS:
            continue
        if n in ID_ITEMS:
            ids = True
            continue
        if n in STRUCTURE_ITEMS or (n == "BODY" and a.section is None):
            structure = True
        elif n == "RFC822":
            raw = True
        elif n == "BODY" and a.section is not None and not a.section.part and a.section.text is None:
            raw = True  # BODY[] is the raw message
        else:
            raw = structure = True
    return Needs(structure, raw, ids)


def view_only(attrs: tuple[FetchAttr, ...]) -> bool:
    return all(a.name in VIEW_ITEMS for a in attrs)


def view_renderer(attrs: tuple[FetchAttr, ...], *, uid: bool, add_modseq: bool = False) -> Callable[[int, Msg], bytes]:
    """Fast path of :func:`render` for items answered from the view (UID FLAGS MODSEQ …), made once
    per command: the items' order worked out once, each distinct flag list encoded once; the
    response lines are the general path's bytes."""
    names: list[str] = []
    if uid or any(a.name == "UID" for a in attrs):
        names.append("UID")
    for a in attrs:
        if a.name not in names:
            names.append(a.name)
    if add_modseq and "MODSEQ" not in names:
        names.append("MODSEQ")
    encoded: dict[tuple[str, ...], bytes] = {}

    def flags(m: Msg) -> bytes:
        shown = m.shown_flags
        b = encoded.get(shown)
        if b is None:
            b = encoded[shown] = b"FLAGS (" + " ".join(shown).encode("utf-8") + b")"
        return b

    if names == ["FLAGS"]:  # FETCH 1:* (FLAGS), the clients' resync
        return lambda seq, m: b"* %d FETCH (%s)\r\n" % (seq, flags(m))
    items: dict[str, Callable[[Msg], bytes]] = {
        "UID": lambda m: b"UID %d" % m.uid,
        "FLAGS": flags,
        "INTERNALDATE": lambda m: b"INTERNALDATE " + internaldate(m.internaldate),
        "RFC822.SIZE": lambda m: b"RFC822.SIZE %d" % m.size,
        "MODSEQ": lambda m: b"MODSEQ (%d)" % m.modseq,
    }
    parts = [items[n] for n in names]
    return lambda seq, m: b"* %d FETCH (" % seq + b" ".join([p(m) for p in parts]) + b")\r\n"


#: sections small and costly enough to cache per blob (header parsing)
CACHED_SECTIONS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "MIME"})


def internaldate(ts: float) -> bytes:
    # Stored as a timestamp; shown in UTC (RFC 9051 §2.3.3 allows any zone).
    return date_time(_dt.datetime.fromtimestamp(ts, _dt.UTC))


def flags_value(flags: tuple[str, ...]) -> list[Atom]:
    return [Atom(f) for f in flags]


def _spec(attr: FetchAttr) -> SectionSpec:
    s = attr.section
    assert s is not None
    return SectionSpec(s.part, s.text, tuple(h.encode("utf-8", "replace") for h in s.headers))


def _partial(data: bytes, attr: FetchAttr) -> bytes:
    p = attr.partial
    if p is None:
        return data
    return mime.partial(data, p.start, p.length)


def render(
    seq: int,
    msg: Msg,
    attrs: tuple[FetchAttr, ...],
    *,
    uid: bool,
    structure: mime.MessageStructure | None,
    raw: bytes | None,
    add_flags: bool = False,
    add_modseq: bool = False,
    cache=None,
    ids: tuple[str, str] | None = None,
) -> tuple[list, tuple[str, str] | None]:
    """The (name, value) items of ``* seq FETCH (...)`` and the (code, text) of a failed BINARY
    item (or None)."""
    items: list[tuple[str, object]] = []
    error: tuple[str, str] | None = None
    seen: set[str] = set()
    if uid or any(a.name == "UID" for a in attrs):
        items.append(("UID", msg.uid))
        seen.add("UID")

    def st() -> mime.MessageStructure:
        assert structure is not None, "needs() asks for the structure of these items"
        return structure

    def whole() -> bytes:
        assert raw is not None, "needs() asks for the message of these items"
        return raw

    for a in attrs:
        n = a.name
        if n in ("UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE") and n in seen:
            continue
        seen.add(n)
        if n == "FLAGS":
            items.append(("FLAGS", flags_value(msg.shown_flags)))
        elif n == "INTERNALDATE":
            items.append(("INTERNALDATE", Raw(internaldate(msg.internaldate))))
        elif n == "RFC822.SIZE":
            items.append(("RFC822.SIZE", msg.size))
        elif n == "MODSEQ":
            items.append(("MODSEQ", Raw(b"(%d)" % msg.modseq)))  # RFC 7162 §3.1.4.1
        elif n == "ENVELOPE":
            items.append(("ENVELOPE", Raw(mime.envelope(st(), raw))))  # raw only when not cached
        elif n == "BODYSTRUCTURE":
            items.append(("BODYSTRUCTURE", Raw(mime.bodystructure(st(), True))))
        elif n == "BODY" and a.section is None:
            items.append(("BODY", Raw(mime.bodystructure(st(), False))))
        elif n == "RFC822":
            items.append(("RFC822", Literal(whole())))
        elif n == "RFC822.HEADER":
            items.append(("RFC822.HEADER", Literal(mime.section(whole(), st(), SectionSpec((), "HEADER")))))
        elif n == "RFC822.TEXT":
            items.append(("RFC822.TEXT", Literal(mime.section(whole(), st(), SectionSpec((), "TEXT")))))
        elif n == "BODY":
            name = a.response_name()
            sec = a.section
            assert sec is not None  # BODY without a section is BODYSTRUCTURE's short form, above
            data: bytes | None
            if not sec.part and sec.text is None:
                data = whole()
            else:
                key = None
                data = None
                if cache is not None and sec.text in CACHED_SECTIONS:
                    key = f"{msg.blob}\0{sec}"
                    data = cache.get(key)
                if data is None:
                    try:
                        data = mime.section(whole(), st(), _spec(a))
                    except SectionError:
                        items.append((name, None))  # no such part: NIL (as Dovecot)
                        continue
                    if key is not None:
                        cache.put(key, data, len(data) + len(key))
            assert data is not None
            items.append((name, Literal(_partial(data, a))))
        elif n in ("BINARY", "BINARY.SIZE"):
            name = a.response_name()
            try:
                data = mime.binary(whole(), st(), a.section.part if a.section else ())
            except SectionError:
                items.append((name, None))
                continue
            except MimeError as exc:
                # RFC 3516 §4.3: UNKNOWN-CTE; Dovecot answers PARSE for undecodable data
                error = error or (exc.code, exc.text)
                continue
            if n == "BINARY.SIZE":
                items.append((name, len(data)))
            else:
                data = _partial(data, a)
                items.append((name, Literal8(data) if b"\0" in data else Literal(data)))
        elif n in ID_ITEMS:
            # RFC 8474 §5.1: ``EMAILID (id)`` / ``THREADID (id)``; every Email here has a thread,
            # so THREADID is never NIL (§5.2)
            if ids is None:
                items.append((n, None))
            else:
                items.append((n, Raw(b"(" + ids[n == "THREADID"].encode("ascii") + b")")))
        # SAVEDATE is not advertised; the parser may still accept it
        elif n == "SAVEDATE":
            items.append(("SAVEDATE", None))
        else:
            items.append((n, None))
    if add_flags and "FLAGS" not in seen:
        items.append(("FLAGS", flags_value(msg.shown_flags)))
    if add_modseq and "MODSEQ" not in seen:
        items.append(("MODSEQ", Raw(b"(%d)" % msg.modseq)))
    return items, error
