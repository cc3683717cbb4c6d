"""Typed IMAP commands and the events produced by :class:`~suite.mail.imap.parse.reader.CommandReader`.

Everything here is plain data: the parser validates syntax at the edge and hands the
session these frozen dataclasses.  Semantics (is the mailbox there, is the state right,
is the charset known) are the session's business.

Naming: each command class has a ``name`` class attribute holding the IMAP command
name as the client spelled it in canonical upper case (``"UID FETCH"`` for the UID
form of FETCH; ``uid`` is also a field on the commands that have a UID form).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

__all__ = [
    # events
    "Event",
    "NeedContinuation",
    "ParseError",
    "RawLine",
    "IdleDone",
    "AppendData",
    # values
    "SequenceSet",
    "Section",
    "FetchAttr",
    "Partial",
    "AppendMessage",
    "ListReturn",
    "QResync",
    "SearchKey",
    "SearchAnd",
    "SearchOr",
    "SearchNot",
    "SearchSet",
    "SearchModSeq",
    "SearchCriterion",
    "SYSTEM_FLAGS",
    "walk_search",
    # commands
    "Command",
    "Capability",
    "Noop",
    "Logout",
    "StartTLS",
    "Authenticate",
    "Login",
    "Enable",
    "Compress",
    "Select",
    "Create",
    "Delete",
    "Rename",
    "Subscribe",
    "Unsubscribe",
    "List",
    "Lsub",
    "Namespace",
    "Status",
    "Append",
    "Idle",
    "Check",
    "Close",
    "Unselect",
    "Expunge",
    "Search",
    "Fetch",
    "Store",
    "Copy",
    "Move",
    "Id",
    "GetQuota",
    "GetQuotaRoot",
    "SetQuota",
]

# RFC 9051 §2.3.2 system flags, canonical spelling (matching is case-insensitive).
SYSTEM_FLAGS = {f.lower(): f for f in ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft", "\\Recent")}


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A sequence set (RFC 9051 §9 ``sequence-set``) or the saved result ``$`` (RFC 5182).

    ``ranges`` holds ``(lo, hi)`` pairs as written; ``None`` stands for ``*``.  A single
    number ``n`` is ``(n, n)``.  ``saved`` is True for ``$``; ``ranges`` is then empty.
    """

    ranges: tuple[tuple[int | None, int | None], ...] = ()
    saved: bool = False

    @classmethod
    def of(cls, *items: int | tuple[int | None, int | None]) -> SequenceSet:
        """Build a set: ``SequenceSet.of(1, (3, 5), (7, None))`` is ``1,3:5,7:*``."""
        rs = tuple(i if isinstance(i, tuple) else (i, i) for i in items)
        return cls(rs)

    def uses_star(self) -> bool:
        return any(lo is None or hi is None for lo, hi in self.ranges)

    def max_explicit(self) -> int:
        """Largest number written explicitly (0 if none); checks ``seq-number`` range."""
        return max((n for r in self.ranges for n in r if n is not None), default=0)

    def iter_ranges(self, largest: int, saved: Iterable[int] | None = None) -> list[tuple[int, int]]:
        """Sorted, merged, non-overlapping ``(lo, hi)`` ranges clipped to ``1..largest``.

        ``*`` stands for ``largest`` (RFC 9051 §9 seq-number: "*" is the largest number
        in use); ``a:b`` equals ``b:a``.  For ``$`` pass the saved numbers in ``saved``.
        A range wholly above ``largest`` keeps only what ``*`` adds, so ``UID 559:*``
        includes the last UID even when it is below 559 (RFC 9051 §6.4.9).
        """
        if self.saved:
            nums = sorted(set(saved or ()))
            return _merge((n, n) for n in nums if 1 <= n <= largest)
        out = []
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            if a > b:
                a, b = b, a
            a, b = max(a, 1), min(b, largest)  # "*" of an empty mailbox is 0: never a number
            if a <= b:
                out.append((a, b))
        return _merge(out)

    def resolve(self, largest: int, saved: Iterable[int] | None = None) -> list[int]:
        """Every number of the set within ``1..largest``, ascending, without duplicates."""
        return [n for a, b in self.iter_ranges(largest, saved) for n in range(a, b + 1)]

    def contains(self, n: int, largest: int, saved: Iterable[int] | None = None) -> bool:
        if self.saved:
            return n in set(saved or ())
        for lo, hi in self.ranges:
            a = largest if lo is None else lo
            b = largest if hi is None else hi
            if a > b:
                a, b = b, a
            if a <= n <= b:
                return True
        return False

    def __str__(self) -> str:
        if self.saved:
            return "$"

        def one(v: int | None) -> str:
            return "*" if v is None else str(v)

        return ",".join(one(lo) if lo == hi else f"{one(lo)}:{one(hi)}" for lo, hi in self.ranges)


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True, slots=True)
class Section:
    """``section-spec`` of BODY[...] / BINARY[...] (RFC 9051 §6.4.5).

    ``part`` is the dotted part number (empty for the whole message); ``text`` is one of
    ``None``, ``"HEADER"``, ``"HEADER.FIELDS"``, ``"HEADER.FIELDS.NOT"``, ``"TEXT"``,
    ``"MIME"``; ``headers`` lists the field names for HEADER.FIELDS(.NOT), upper-cased.
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    headers: tuple[str, ...] = ()

    def __str__(self) -> str:
        s = ".".join(str(p) for p in self.part)
        if self.text:
            s = f"{s}.{self.text}" if s else self.text
            if self.text.startswith("HEADER.FIELDS"):
                s += " (" + " ".join(self.headers) + ")"
        return s


@dataclass(frozen=True, slots=True)
class Partial:
    """``<start.length>`` of a FETCH body/binary section (RFC 9051 §6.4.5)."""

    start: int
    length: int


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """One FETCH item.

    ``name`` is the canonical upper-case attribute: ENVELOPE, FLAGS, INTERNALDATE,
    RFC822, RFC822.HEADER, RFC822.SIZE, RFC822.TEXT, BODY, BODYSTRUCTURE, UID, MODSEQ,
    BINARY, BINARY.SIZE, SAVEDATE, EMAILID, THREADID.  ``BODY`` with ``section`` not
    None is ``BODY[section]``; plain ``BODY`` (the non-extensible structure) has
    ``section is None``.  ``peek`` marks BODY.PEEK / BINARY.PEEK.
    """

    name: str
    section: Section | None = None
    partial: Partial | None = None
    peek: bool = False

    def response_name(self) -> str:
        """The item name the server echoes in the FETCH response (RFC 9051 §7.5.2).

        PEEK is dropped, the partial keeps only its origin: ``BODY[HEADER]<0>``.
        """
        if self.section is None:
            return self.name
        s = f"{self.name}[{self.section}]"
        if self.partial is not None:
            s += f"<{self.partial.start}>"
        return s

    @property
    def sets_seen(self) -> bool:
        """True when fetching this item implicitly sets ``\\Seen`` (RFC 9051 §6.4.5)."""
        if self.peek:
            return False
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name in ("BODY", "BINARY") and self.section is not None


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of APPEND (RFC 9051 §6.3.12; several with MULTIAPPEND, RFC 3502).

    ``data`` is the literal buffer itself (not a copy); ``binary`` is True for a
    ``~{n}`` literal8 (RFC 3516 §4.4) which may contain NUL octets.
    """

    data: bytearray
    flags: tuple[str, ...] = ()
    internal_date: _dt.datetime | None = None
    binary: bool = False
    #: True when the reader delivered the data as :class:`AppendData` events
    #: (``CommandReader(stream_append=True)``); ``data`` is then empty.
    streamed: bool = False


@dataclass(frozen=True, slots=True)
class ListReturn:
    """LIST-EXTENDED return options (RFC 5258 §3, RFC 6154 §5.2, RFC 5819 LIST-STATUS)."""

    subscribed: bool = False
    children: bool = False
    special_use: bool = False
    myrights: bool = False
    status: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class QResync:
    """The QRESYNC select parameter (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


# Search keys (RFC 9051 §6.4.4).  The tree is: SearchAnd(keys) / SearchOr(a, b) /
# SearchNot(k) / SearchSet(set, uid) / SearchModSeq / SearchCriterion(key, value).


@dataclass(frozen=True, slots=True)
class SearchCriterion:
    """A leaf search key.

    ``key`` is the canonical upper-case name.  ``value`` depends on it: ``None`` for
    flag keys (ALL, SEEN, NEW, …), ``str`` for KEYWORD/UNKEYWORD and the string keys
    (BCC BODY CC FROM SUBJECT TEXT TO), ``(field, value)`` for HEADER, a
    :class:`datetime.date` for BEFORE/ON/SINCE/SENTBEFORE/SENTON/SENTSINCE, ``int`` for
    LARGER/SMALLER/OLDER/YOUNGER.
    """

    key: str
    value: object = None


@dataclass(frozen=True, slots=True)
class SearchSet:
    """A bare sequence set (``uid=False``) or ``UID set`` search key."""

    set: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class SearchModSeq:
    """``MODSEQ [entry-name entry-type] n`` (RFC 7162 §3.1.5)."""

    modseq: int
    entry_name: str | None = None
    entry_type: str | None = None  # "priv", "shared" or "all"


@dataclass(frozen=True, slots=True)
class SearchAnd:
    keys: tuple[SearchKey, ...]


@dataclass(frozen=True, slots=True)
class SearchOr:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class SearchNot:
    key: SearchKey


SearchKey = SearchCriterion | SearchSet | SearchModSeq | SearchAnd | SearchOr | SearchNot


def walk_search(key: SearchKey) -> Iterator[SearchKey]:
    """Depth-first iteration over a search tree (handy to find ``$``, MODSEQ, …)."""
    yield key
    if isinstance(key, SearchAnd):
        for k in key.keys:
            yield from walk_search(k)
    elif isinstance(key, SearchOr):
        yield from walk_search(key.left)
        yield from walk_search(key.right)
    elif isinstance(key, SearchNot):
        yield from walk_search(key.key)


# --------------------------------------------------------------------------- events


class Event:
    """Base of everything :meth:`CommandReader.next_event` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class NeedContinuation(Event):
    """A synchronising literal header arrived: send ``+ Ready`` (or reject the command
    with a tagged NO/BAD and call :meth:`CommandReader.cancel_command`)."""

    tag: str
    command: str
    size: int
    append_message: bool = False


@dataclass(frozen=True, slots=True)
class ParseError(Event):
    """The command could not be accepted.

    Answer ``tag BAD [code] text`` (``* BAD`` when ``tag`` is None).  ``status`` is
    ``"BAD"`` except for an APPEND message over the size limit, which is ``"NO"``
    with ``TOOBIG`` (RFC 9051 §7.1 / RFC 7889).  ``fatal`` means the reader cannot
    find the next command: send ``* BYE`` and close.
    """

    tag: str | None
    code: str | None
    text: str
    fatal: bool = False
    status: str = "BAD"


@dataclass(frozen=True, slots=True)
class RawLine(Event):
    """A line read in raw mode (:meth:`CommandReader.expect_raw_line`), CRLF removed.

    Used for AUTHENTICATE responses (RFC 9051 §6.2.2): ``*`` cancels, otherwise base64.
    """

    data: bytes


@dataclass(frozen=True, slots=True)
class AppendData(Event):
    """A piece of APPEND message ``index`` (0-based within the command) while it
    arrives, with ``CommandReader(stream_append=True)``.  ``last`` marks its end; the
    :class:`Append` command follows once the whole command line is complete."""

    tag: str
    index: int
    chunk: bytes
    last: bool


@dataclass(frozen=True, slots=True)
class IdleDone(Event):
    """The client ended IDLE with ``DONE`` (RFC 2177, RFC 9051 §6.3.13)."""

    tag: str


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Event):
    """Base of every command.  ``tag`` is the client's tag."""

    name: ClassVar[str] = ""
    tag: str


def _cmd(name: str):
    def deco(cls):
        cls.name = name
        return cls

    return deco


@_cmd("CAPABILITY")
@dataclass(frozen=True, slots=True, kw_only=True)
class Capability(Command):
    pass


@_cmd("NOOP")
@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    pass


@_cmd("LOGOUT")
@dataclass(frozen=True, slots=True, kw_only=True)
class Logout(Command):
    pass


@_cmd("STARTTLS")
@dataclass(frozen=True, slots=True, kw_only=True)
class StartTLS(Command):
    """After answering OK, drop what the reader buffered (:meth:`CommandReader.take_buffered`),
    RFC 9051 §11.1: no plaintext pipelined past STARTTLS may be honoured."""


@_cmd("AUTHENTICATE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Authenticate(Command):
    """``mechanism`` upper-cased; ``initial_response`` is the decoded SASL-IR (RFC 4959),
    ``b""`` for ``=``, None when absent."""

    mechanism: str
    initial_response: bytes | None = None


@_cmd("LOGIN")
@dataclass(frozen=True, slots=True, kw_only=True)
class Login(Command):
    username: str
    password: str = field(repr=False)


@_cmd("ENABLE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Enable(Command):
    """RFC 5161; capability names upper-cased."""

    capabilities: tuple[str, ...]


@_cmd("COMPRESS")
@dataclass(frozen=True, slots=True, kw_only=True)
class Compress(Command):
    """RFC 4978 §3: ``COMPRESS`` SP algorithm (upper-cased)."""

    algorithm: str


@_cmd("SELECT")
@dataclass(frozen=True, slots=True, kw_only=True)
class Select(Command):
    """SELECT or EXAMINE (``readonly``), with RFC 7162 CONDSTORE / QRESYNC parameters."""

    mailbox: str
    readonly: bool = False
    condstore: bool = False
    qresync: QResync | None = None


@_cmd("CREATE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Create(Command):
    """``special_use``: RFC 6154 §3 ``CREATE name (USE (\\Drafts))``."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@_cmd("DELETE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Delete(Command):
    mailbox: str


@_cmd("RENAME")
@dataclass(frozen=True, slots=True, kw_only=True)
class Rename(Command):
    mailbox: str
    new_name: str


@_cmd("SUBSCRIBE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribe(Command):
    mailbox: str


@_cmd("UNSUBSCRIBE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Unsubscribe(Command):
    mailbox: str


@_cmd("LIST")
@dataclass(frozen=True, slots=True, kw_only=True)
class List(Command):
    """LIST, basic or extended (RFC 5258).

    ``selection`` holds upper-cased selection options (SUBSCRIBED, REMOTE,
    RECURSIVEMATCH, SPECIAL-USE); ``returns`` the RETURN options.  ``extended`` is True
    when any LIST-EXTENDED syntax was used (then the session must answer in the
    extended form, e.g. with CHILDINFO).
    """

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    returns: ListReturn = ListReturn()
    extended: bool = False


@_cmd("LSUB")
@dataclass(frozen=True, slots=True, kw_only=True)
class Lsub(Command):
    reference: str
    pattern: str


@_cmd("NAMESPACE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Namespace(Command):
    pass


@_cmd("STATUS")
@dataclass(frozen=True, slots=True, kw_only=True)
class Status(Command):
    """``items``: upper-cased status attributes (RFC 9051 §6.3.11, RFC 7162, RFC 7889)."""

    mailbox: str
    items: tuple[str, ...]


@_cmd("APPEND")
@dataclass(frozen=True, slots=True, kw_only=True)
class Append(Command):
    mailbox: str
    messages: tuple[AppendMessage, ...]


@_cmd("IDLE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Idle(Command):
    """After sending ``+ idling`` call :meth:`CommandReader.expect_idle_done`."""


@_cmd("CHECK")
@dataclass(frozen=True, slots=True, kw_only=True)
class Check(Command):
    pass


@_cmd("CLOSE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Close(Command):
    pass


@_cmd("UNSELECT")
@dataclass(frozen=True, slots=True, kw_only=True)
class Unselect(Command):
    pass


@_cmd("EXPUNGE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Expunge(Command):
    """EXPUNGE, or UID EXPUNGE with ``uid_set`` (RFC 4315 §2.1)."""

    uid_set: SequenceSet | None = None

    @property
    def uid(self) -> bool:
        return self.uid_set is not None


@_cmd("SORT")
@dataclass(frozen=True, slots=True, kw_only=True)
class Sort(Command):
    """SORT / UID SORT (RFC 5256 §3): ``keys`` are (criterion, reversed) pairs."""

    uid: bool = False
    keys: tuple[tuple[str, bool], ...]
    charset: str
    criteria: SearchAnd


@_cmd("THREAD")
@dataclass(frozen=True, slots=True, kw_only=True)
class Thread(Command):
    """THREAD / UID THREAD (RFC 5256 §4)."""

    uid: bool = False
    algorithm: str
    charset: str
    criteria: SearchAnd


@_cmd("SEARCH")
@dataclass(frozen=True, slots=True, kw_only=True)
class Search(Command):
    """SEARCH / UID SEARCH.

    ``returns`` is None without a RETURN clause (IMAP4rev1 ``* SEARCH`` answer);
    otherwise the upper-cased ESEARCH return options (RFC 4731 / RFC 9051 §6.4.4:
    MIN MAX ALL COUNT SAVE); an empty ``RETURN ()`` means ``("ALL",)``.
    ``criteria`` is a :class:`SearchAnd` of the top-level keys.
    """

    uid: bool = False
    charset: str | None = None
    criteria: SearchAnd
    returns: tuple[str, ...] | None = None


@_cmd("FETCH")
@dataclass(frozen=True, slots=True, kw_only=True)
class Fetch(Command):
    """FETCH / UID FETCH.  ``macro`` is ALL/FAST/FULL when one was used (``attrs`` is
    then its expansion).  ``changedsince``/``vanished``: RFC 7162 §3.1.4 / §3.2.6."""

    uid: bool = False
    sequence_set: SequenceSet
    attrs: tuple[FetchAttr, ...]
    macro: str | None = None
    changedsince: int | None = None
    vanished: bool = False


@_cmd("STORE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Store(Command):
    """STORE / UID STORE.  ``mode`` is ``"+"`` (add), ``"-"`` (remove) or ``""`` (replace)."""

    uid: bool = False
    sequence_set: SequenceSet
    mode: str
    silent: bool
    flags: tuple[str, ...]
    unchangedsince: int | None = None


@_cmd("COPY")
@dataclass(frozen=True, slots=True, kw_only=True)
class Copy(Command):
    uid: bool = False
    sequence_set: SequenceSet
    mailbox: str


@_cmd("MOVE")
@dataclass(frozen=True, slots=True, kw_only=True)
class Move(Command):
    """RFC 6851."""

    uid: bool = False
    sequence_set: SequenceSet
    mailbox: str


@_cmd("ID")
@dataclass(frozen=True, slots=True, kw_only=True)
class Id(Command):
    """RFC 2971.  ``params`` is None for ``ID NIL``; values may be None (NIL)."""

    params: tuple[tuple[str, str | None], ...] | None


@_cmd("GETQUOTA")
@dataclass(frozen=True, slots=True, kw_only=True)
class GetQuota(Command):
    """RFC 9208 §4.2."""

    root: str


@_cmd("GETQUOTAROOT")
@dataclass(frozen=True, slots=True, kw_only=True)
class GetQuotaRoot(Command):
    """RFC 9208 §4.3."""

    mailbox: str


@_cmd("SETQUOTA")
@dataclass(frozen=True, slots=True, kw_only=True)
class SetQuota(Command):
    """RFC 9208 §4.4; ``limits`` are (upper-cased resource name, limit) pairs."""

    root: str
    limits: tuple[tuple[str, int], ...]
