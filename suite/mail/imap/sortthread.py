"""SORT and THREAD (RFC 5256), DISPLAYFROM/DISPLAYTO (RFC 5957).

Pure: each message's header facts (:class:`Facts`, from its header block) in, ordered message
numbers or a thread tree out.  THREAD=REFERENCES follows RFC 5256 §4 over the Message-ID,
References and In-Reply-To headers (the RFC's algorithm, which clients expect), not the store's
JMAP thread index: that one groups by references and subject across mailboxes, while IMAP
THREAD answers within the selected mailbox with dummy parents and subject merging.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from suite.mail.mime.address import parse_addresses
from suite.mail.mime.searchtext import decode_header_value
from suite.mail.mime.structure import iter_headers

SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})
THREAD_ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")

_MSGID = re.compile(rb"<[^<>\s]*>")
_ASCII_UPPER = {c: c + 32 for c in range(0x41, 0x5B)}


def casemap(s: str) -> str:
    """The i;ascii-casemap comparator's key (RFC 4790 §9.2, RFC 5256 §3): ASCII letters folded."""
    return s.translate(_ASCII_UPPER)


# RFC 5256 §2.1 base subject
_TRAILER = re.compile(r"(?:\(fwd\)|\s)$", re.I)  # subj-trailer = "(fwd)" / WSP
_BLOB = r"\[[^\[\]]*\]\s*"  # subj-blob = "[" *BLOBCHAR "]" *WSP
_LEADER = re.compile(rf"(?:(?:{_BLOB})*(?:re|fwd?)\s*(?:{_BLOB})?:|\s+)", re.I)  # subj-leader
_LEADING_BLOB = re.compile(_BLOB)


def base_subject(subject: str) -> tuple[str, bool]:
    """(base subject, whether the subject marked a reply or forward) — RFC 5256 §2.1 steps 1-6.
    ``subject`` is already RFC 2047 decoded."""
    s = " ".join(subject.split())  # (1) WSP runs → one space
    reply = False
    while True:
        while m := _TRAILER.search(s):  # (2)
            reply |= m.group() != " " and m.group().strip() != ""
            s = s[: m.start()]
        while True:  # (5) repeat (3) and (4) until no change
            before = s
            while (m := _LEADER.match(s)) and m.end() > 0:  # (3)
                reply |= bool(m.group().strip())
                s = s[m.end() :]
            m = _LEADING_BLOB.match(s)  # (4) a leading blob, when something is left after it
            if m and s[m.end() :].strip():
                s = s[m.end() :]
            if s == before:
                break
        if len(s) >= 6 and s[:5].lower() == "[fwd:" and s.endswith("]"):  # (6)
            s = s[5:-1]
            reply = True
            continue
        return s, reply


@dataclass(slots=True)
class Facts:
    """What SORT and THREAD need of one message."""

    seq: int
    uid: int
    arrival: float  # internal date
    sent: float  # Date: header, or the internal date without a usable one (RFC 5256 §2.2)
    size: int = 0
    subject: str = ""  # base subject, casemapped
    is_reply: bool = False
    from_: str = ""
    to: str = ""
    cc: str = ""
    display_from: str = ""
    display_to: str = ""
    message_id: bytes | None = None
    references: list[bytes] = field(default_factory=list)


def _first_address(value: bytes) -> tuple[str, str]:
    """(addr-mailbox, display name or addr-spec) of a header's first address (RFC 5256 §3, RFC 5957 §3)."""
    for a in parse_addresses(value, fill_missing=False):
        if a.domain is None:  # group markers
            continue
        mailbox = (a.mailbox or b"").decode("utf-8", "replace")
        spec = mailbox + ("@" + a.domain.decode("utf-8", "replace") if a.domain else "")
        name = decode_header_value(a.name).strip() if a.name else ""
        return mailbox, name or spec
    return "", ""


def facts(seq: int, uid: int, arrival: float, sent: float | None, size: int, raw_header: bytes) -> Facts:
    f = Facts(seq, uid, arrival, arrival if sent is None else sent, size)
    refs: list[bytes] = []
    reply_to: list[bytes] = []
    for h in iter_headers(raw_header, 0, len(raw_header)):
        name = h.name.lower()
        if name == b"subject":
            base, f.is_reply = base_subject(decode_header_value(h.value))
            f.subject = casemap(base)
        elif name in (b"from", b"to", b"cc") and not getattr(f, "from_" if name == b"from" else name.decode()):
            box, display = _first_address(h.value)
            if name == b"from":
                f.from_, f.display_from = casemap(box), casemap(display)
            elif name == b"to":
                f.to, f.display_to = casemap(box), casemap(display)
            else:
                f.cc = casemap(box)
        elif name == b"message-id" and f.message_id is None:
            m = _MSGID.search(h.value)
            f.message_id = m.group() if m and len(m.group()) > 2 else None
        elif name == b"references":
            refs = [x for x in _MSGID.findall(h.value) if len(x) > 2]
        elif name == b"in-reply-to":
            reply_to = [x for x in _MSGID.findall(h.value) if len(x) > 2][:1]
    # RFC 5256 §4 REFERENCES (1)(A): References, else the first msg-id of In-Reply-To
    f.references = refs or reply_to
    return f


# ------------------------------------------------------------------ SORT (RFC 5256 §3)
def sort(msgs: Sequence[Facts], criteria: Sequence[tuple[str, bool]]) -> list[Facts]:
    """``criteria`` are (key, reversed); ties fall back to the sequence number (RFC 5256 §3)."""
    out = sorted(msgs, key=lambda m: m.seq)
    for key, rev in reversed(criteria):  # stable sorts, last criterion first
        out.sort(key=functools.partial(_key, key=key), reverse=rev)
    return out


def _key(m: Facts, key: str) -> Any:
    if key == "ARRIVAL":
        return m.arrival
    if key == "DATE":
        return m.sent
    if key == "SIZE":
        return m.size
    if key == "SUBJECT":
        return m.subject.encode("utf-8")
    if key == "FROM":
        return m.from_.encode("utf-8")
    if key == "TO":
        return m.to.encode("utf-8")
    if key == "CC":
        return m.cc.encode("utf-8")
    if key == "DISPLAYFROM":
        return m.display_from.encode("utf-8")
    return m.display_to.encode("utf-8")  # DISPLAYTO


# ------------------------------------------------------------------ THREAD (RFC 5256 §4)
@dataclass(eq=False, slots=True)
class Node:
    msg: Facts | None = None  # None: a dummy (a message referred to but not here)
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)

    def date(self) -> tuple[float, int]:
        if self.msg is not None:
            return (self.msg.sent, self.msg.seq)
        return self.children[0].date() if self.children else (0.0, 0)

    def subject(self) -> Facts | None:
        return self.msg if self.msg is not None else (self.children[0].msg if self.children else None)


def _attach(child: Node, parent: Node | None) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    if parent is not None:
        parent.children.append(child)


def _ancestor(a: Node, b: Node) -> bool:
    """Whether ``a`` is ``b`` or one of its ancestors."""
    n: Node | None = b
    while n is not None:
        if n is a:
            return True
        n = n.parent
    return False


def _sort_tree(nodes: list[Node]) -> None:
    # RFC 5256 §4 REFERENCES (6): children by sent date (a dummy by its first child's, once sorted)
    for n in nodes:
        _sort_tree(n.children)
    nodes.sort(key=Node.date)


def ordered_subject(msgs: Sequence[Facts]) -> list[Node]:
    """RFC 5256 §4 ORDEREDSUBJECT: by base subject then sent date; each subject's first message is
    the parent of the others; threads by the sent date of their first message."""
    groups: dict[str, Node] = {}
    for m in sorted(msgs, key=lambda m: (m.subject.encode("utf-8"), m.sent, m.seq)):
        root = groups.get(m.subject)
        if root is None:
            groups[m.subject] = Node(m)
        else:
            _attach(Node(m), root)
    roots = list(groups.values())
    roots.sort(key=Node.date)
    return roots


def references(msgs: Sequence[Facts]) -> list[Node]:
    """RFC 5256 §4 REFERENCES."""
    table: dict[bytes, Node] = {}
    order: list[Node] = []

    def container(mid: bytes) -> Node:
        n = table.get(mid)
        if n is None:
            n = table[mid] = Node()
            order.append(n)
        return n

    for m in sorted(msgs, key=lambda m: m.seq):
        # (1)(A) a container per Message-ID; a duplicate or missing one gets a unique id
        mid = m.message_id
        if mid is None or (mid in table and table[mid].msg is not None):
            mid = b"<\0dup%d>" % m.seq
        node = container(mid)
        node.msg = m
        # (1)(B) link the references in order, never making a loop, never re-parenting
        prev: Node | None = None
        for ref in m.references:
            cur = container(ref)
            if prev is not None and cur.parent is None and not _ancestor(cur, prev):
                _attach(cur, prev)
            prev = cur
        # (1)(C) the message is a child of its last reference (replacing any parent), unless a loop
        if prev is not None and _ancestor(node, prev):
            prev = None
        if prev is not None or node.parent is not None:
            _attach(node, prev)
    # (2) the root set; (3) the table is done with
    roots = [n for n in order if n.parent is None]
    # (4) prune dummies
    roots = _prune(roots, top=True)
    for r in roots:
        r.parent = None
    # (5) gather by base subject
    subjects: dict[str, Node] = {}
    for r in roots:
        f = r.subject()
        if f is None or not f.subject:
            continue
        old = subjects.get(f.subject)
        if (
            old is None
            or (r.msg is None and old.msg is not None)
            or (old.msg is not None and old.msg.is_reply and r.msg is not None and not r.msg.is_reply)
        ):
            subjects[f.subject] = r
    out: list[Node] = []
    for r in roots:
        if r.parent is not None:  # gathered under a new dummy already
            continue
        f = r.subject()
        target = subjects.get(f.subject) if f is not None and f.subject else None
        if target is None or target is r:
            out.append(r)
            continue
        if target.msg is None and r.msg is None:  # (5)(C)(i) both dummies: merge the children
            for c in list(r.children):
                _attach(c, target)
        elif target.msg is None:  # (ii) one dummy: the other is its child
            _attach(r, target)
        elif r.msg is not None and r.msg.is_reply and not target.msg.is_reply:  # (iii)
            _attach(r, target)
        else:  # (iv) a new dummy holds both
            assert f is not None
            dummy = Node()
            idx = out.index(target) if target in out else -1
            _attach(target, dummy)
            _attach(r, dummy)
            subjects[f.subject] = dummy
            if idx >= 0:
                out[idx] = dummy
            else:
                out.append(dummy)
    roots = [r for r in out if r.parent is None]
    _sort_tree(roots)  # (6)
    return roots


def _prune(nodes: list[Node], top: bool) -> list[Node]:
    """RFC 5256 §4 REFERENCES (4): drop childless dummies; a dummy's children take its place,
    except at the top level when it has more than one child."""
    out: list[Node] = []
    for n in nodes:
        n.children = _prune(n.children, top=False)
        for c in n.children:
            c.parent = n
        if n.msg is None:
            if not n.children:
                continue
            if not top or len(n.children) == 1:
                out.extend(n.children)
                continue
        out.append(n)
    return out


def render(roots: Sequence[Node], uid: bool) -> bytes:
    """``(2)(3 6 (4 23)(44 7 96))`` — RFC 5256 §4 thread-list."""
    return b"".join(b"(" + _render(r, uid) + b")" for r in roots)


def _render(node: Node, uid: bool) -> bytes:
    parts: list[bytes] = []
    n = node
    while True:
        if n.msg is not None:
            parts.append(b"%d" % (n.msg.uid if uid else n.msg.seq))
        if len(n.children) == 1:
            n = n.children[0]
            continue
        if n.children:
            parts.append(b"".join(b"(" + _render(c, uid) + b")" for c in n.children))
        return b" ".join(parts)
