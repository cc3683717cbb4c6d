"""A selected session's own view of its mailbox (RFC 9051 §2.3.1.2, §7.5.1).

The view is the list of UIDs the client has been told about (index + 1 is the message sequence
number) with each message's flags and MODSEQ as last reported.  It changes only when the session
reports the change: EXISTS appends, EXPUNGE removes, FETCH FLAGS updates.  Messages that another
session expunged stay in the view as *ghosts* until the session may send EXPUNGE (never during
FETCH/STORE/SEARCH, RFC 9051 §7.5.1), so sequence numbers never shift under the client mid-command.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field

from suite.mail.store import MessageInfo

from .commands import SequenceSet


def lower_flags(flags: tuple[str, ...]) -> frozenset[str]:
    """The flags in lower case, for case-insensitive tests (RFC 9051 §2.3.2)."""
    return frozenset(f.lower() for f in flags)


class InvalidSet(Exception):
    """A sequence number beyond the mailbox (RFC 9051 §9 seq-number: BAD)."""


@dataclass(slots=True)
class Msg:
    uid: int
    modseq: int
    flags: tuple[str, ...]
    size: int
    internaldate: float
    blob: str
    # the flags in lower case, computed when first needed (per message: no process-wide cache)
    low: frozenset[str] | None = None
    # IMAP4rev1 \Recent (RFC 3501 §2.3.2): this session is the one that got the message as recent
    recent: bool = False

    @classmethod
    def of(cls, m: MessageInfo) -> Msg:
        return cls(m.uid, m.modseq, m.flags, m.size, m.internaldate, m.blob)

    @property
    def flags_lower(self) -> frozenset[str]:
        low = self.low
        if low is None:
            low = self.low = lower_flags(self.flags)
        return low

    @property
    def shown_flags(self) -> tuple[str, ...]:
        """The flags as this session reports them: with ``\\Recent`` when it is recent here."""
        return (*self.flags, "\\Recent") if self.recent else self.flags

    def update(self, flags: tuple[str, ...], modseq: int) -> None:
        self.flags, self.modseq, self.low = flags, modseq, None


@dataclass
class View:
    mailbox_id: int
    name: str
    uidvalidity: int
    readonly: bool
    uids: list[int] = field(default_factory=list)
    msgs: dict[int, Msg] = field(default_factory=dict)
    # UIDs expunged by another session but not yet reported (still hold their sequence number)
    ghosts: set[int] = field(default_factory=set)
    # everything with MODSEQ <= known_modseq has been taken into the view
    known_modseq: int = 0
    uidnext: int = 1
    # RFC 5182 SEARCHRES: the saved result, as UIDs (kept across expunges)
    saved: list[int] = field(default_factory=list)
    # keywords announced to the client in FLAGS / PERMANENTFLAGS (lower case → as written)
    keywords: dict[str, str] = field(default_factory=dict)
    # IMAP4rev1: how many messages are \Recent in this session, as last reported (RFC 3501 §7.3.2)
    recent_count: int = 0

    def __len__(self) -> int:
        return len(self.uids)

    def load(self, messages: list[MessageInfo]) -> None:
        self.uids = [m.uid for m in messages]
        self.msgs = {m.uid: Msg.of(m) for m in messages}
        self.ghosts.clear()

    def load_rows(self, rows: list[tuple]) -> None:
        """Like :meth:`load`, from (uid, modseq, flags, size, internaldate, blob) tuples in UID order."""
        self.uids = [r[0] for r in rows]
        self.msgs = {r[0]: Msg(*r) for r in rows}
        self.ghosts.clear()

    def seq_of(self, uid: int) -> int | None:
        i = bisect.bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def seq(self, uid: int) -> int:
        """The sequence number of a UID the view holds."""
        seq = self.seq_of(uid)
        assert seq is not None, uid
        return seq

    # ------------------------------------------------------------------ sets → messages
    def by_seqset(self, s: SequenceSet) -> list[tuple[int, int]]:
        """[(seq, uid)] for a message sequence set, ascending.  A number past the end that is not
        part of a ``*`` range is an error (RFC 9051 §9 seq-number)."""
        n = len(self.uids)
        if s.saved:
            wanted = set(self.saved)
            return [(i + 1, u) for i, u in enumerate(self.uids) if u in wanted]
        if n == 0:
            # RFC 9051 §6.4.6 / §9 seq-number: with no message even "*" names none (Dovecot: BAD)
            raise InvalidSet("Invalid messageset: the mailbox is empty")
        for lo, hi in s.ranges:
            if lo is not None and hi is not None and max(lo, hi) > n:
                raise InvalidSet("Invalid messageset")
        return [(q, self.uids[q - 1]) for q in s.resolve(n)]

    def by_uidset(self, s: SequenceSet) -> list[tuple[int, int]]:
        """[(seq, uid)] of the view's messages whose UID is in the set (RFC 9051 §6.4.9:
        UIDs not in the mailbox are ignored; ``*`` is the largest UID in use)."""
        uids = self.uids
        if not uids:
            return []
        if s.saved:
            wanted = set(self.saved)
            return [(i + 1, u) for i, u in enumerate(uids) if u in wanted]
        largest = uids[-1]
        out: list[tuple[int, int]] = []
        for a, b in s.iter_ranges(largest):
            i = bisect.bisect_left(uids, a)
            j = bisect.bisect_right(uids, b)
            out.extend((k + 1, uids[k]) for k in range(i, j))
        return out

    def select(self, s: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        return self.by_uidset(s) if uid else self.by_seqset(s)

    # ------------------------------------------------------------------ changes
    def append(self, m: MessageInfo) -> None:
        if m.uid in self.msgs:
            return
        if self.uids and m.uid < self.uids[-1]:
            bisect.insort(self.uids, m.uid)
        else:
            self.uids.append(m.uid)
        self.msgs[m.uid] = Msg.of(m)

    def remove(self, uid: int) -> int | None:
        """Drop ``uid``; returns the sequence number it had."""
        seq = self.seq_of(uid)
        if seq is None:
            return None
        del self.uids[seq - 1]
        self.msgs.pop(uid, None)
        self.ghosts.discard(uid)
        return seq


class LRU:
    """A small size-bounded LRU map for immutable per-blob data (structures, raw bytes, texts),
    shared by every session of the process."""

    def __init__(self, max_items: int, max_bytes: int | None = None) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.bytes = 0
        self._d: OrderedDict[str, tuple[object, int]] = OrderedDict()

    def get(self, key: str):
        v = self._d.get(key)
        if v is None:
            return None
        self._d.move_to_end(key)
        return v[0]

    def put(self, key: str, value: object, size: int = 0) -> None:
        if self.max_bytes is not None and size > self.max_bytes // 8:
            return  # too big to be worth caching
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._d[key] = (value, size)
        self.bytes += size
        while len(self._d) > self.max_items or (self.max_bytes is not None and self.bytes > self.max_bytes):
            _, (_, sz) = self._d.popitem(last=False)
            self.bytes -= sz
