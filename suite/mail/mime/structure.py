"""MIME structure of a message: part tree with byte offsets (RFC 2045/2046).

One pass over the raw bytes finds every part's header and body range, nested
message/rfc822 parts included.  Boundary recognition, defaults and the
handling of malformed input follow Dovecot's lib-mail message parser (the
reference server of our differential tests), which in turn implements
RFC 2046 §5.1.1 leniently (prefix match of boundary lines, innermost
boundary first, outer boundaries close inner parts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .address import Address
from .rfc822 import Rfc822Parser, rfc2231_parse

# Flags (mirroring the roles a part can play)
MULTIPART = 1
RFC822 = 2
TEXT = 4
IS_MIME = 8
DIGEST = 16

# RFC 2046 §5.1.1: boundaries are at most 70 characters; be a bit lenient.
BOUNDARY_STRING_MAX_LEN = 70 + 10
BOUNDARY_END_MAX_LEN = BOUNDARY_STRING_MAX_LEN + 2 + 2
# Limits against hostile nesting (RFC 2046 imposes none; Dovecot uses the same).
MAX_NESTED_PARTS = 100
MAX_TOTAL_PARTS = 10000

ENVELOPE_FIELDS = {
    b"date": "date",
    b"subject": "subject",
    b"from": "from",
    b"sender": "sender",
    b"reply-to": "reply_to",
    b"to": "to",
    b"cc": "cc",
    b"bcc": "bcc",
    b"in-reply-to": "in_reply_to",
    b"message-id": "message_id",
}


@dataclass
class Envelope:
    """Raw envelope header values (RFC 9051 §7.5.2), last occurrence wins."""

    date: bytes | None = None
    subject: bytes | None = None
    from_: list[Address] | None = None
    sender: list[Address] | None = None
    reply_to: list[Address] | None = None
    to: list[Address] | None = None
    cc: list[Address] | None = None
    bcc: list[Address] | None = None
    in_reply_to: bytes | None = None
    message_id: bytes | None = None


@dataclass
class Part:
    """One MIME part.  Offsets index the raw message; the header block is
    raw[hdr_start:body_start] (blank line included), the body is
    raw[body_start:body_end]."""

    hdr_start: int = 0
    body_start: int = 0
    body_end: int = 0
    flags: int = 0
    lines: int = 0
    children: list[Part] = field(default_factory=list)
    # RFC 2045 §5 / RFC 2183 / RFC 3066 / RFC 2557 data, raw header bytes
    ctype: bytes | None = None
    subtype: bytes | None = None
    params: list[tuple[bytes, bytes]] = field(default_factory=list)
    cid: bytes | None = None
    description: bytes | None = None
    encoding: bytes | None = None
    md5: bytes | None = None
    disposition: bytes | None = None
    disp_params: list[tuple[bytes, bytes]] | None = None
    language: list[bytes] | None = None
    location: bytes | None = None
    # serialised IMAP ENVELOPE of this part's header (root and message/rfc822 children)
    envelope: bytes | None = None

    @property
    def size(self) -> int:
        return self.body_end - self.body_start

    @property
    def header_size(self) -> int:
        return self.body_start - self.hdr_start

    @property
    def is_multipart(self) -> bool:
        return bool(self.flags & MULTIPART)

    @property
    def is_message(self) -> bool:
        return bool(self.flags & RFC822)

    @property
    def is_text(self) -> bool:
        return bool(self.flags & TEXT)

    def param(self, name: str) -> bytes | None:
        key = name.encode().lower()
        for k, v in self.params:
            if k.lower() == key:
                return v
        return None

    # ---- compact serialisation for the store's cache ----
    _BYTES = ("ctype", "subtype", "cid", "description", "encoding", "md5", "disposition", "location", "envelope")

    def to_obj(self) -> dict:
        d: dict = {"o": [self.hdr_start, self.body_start, self.body_end, self.flags, self.lines]}
        for k in self._BYTES:
            v = getattr(self, k)
            if v is not None:
                d[k] = v.decode("latin-1")
        if self.params:
            d["params"] = [[a.decode("latin-1"), b.decode("latin-1")] for a, b in self.params]
        if self.disp_params is not None:
            d["dparams"] = [[a.decode("latin-1"), b.decode("latin-1")] for a, b in self.disp_params]
        if self.language is not None:
            d["lang"] = [x.decode("latin-1") for x in self.language]
        if self.children:
            d["c"] = [c.to_obj() for c in self.children]
        return d

    @classmethod
    def from_obj(cls, d: dict) -> Part:
        p = cls(*d["o"])
        for k in cls._BYTES:
            if k in d:
                setattr(p, k, d[k].encode("latin-1"))
        p.params = [(a.encode("latin-1"), b.encode("latin-1")) for a, b in d.get("params", [])]
        if "dparams" in d:
            p.disp_params = [(a.encode("latin-1"), b.encode("latin-1")) for a, b in d["dparams"]]
        if "lang" in d:
            p.language = [x.encode("latin-1") for x in d["lang"]]
        p.children = [cls.from_obj(c) for c in d.get("c", [])]
        return p


@dataclass
class MessageStructure:
    root: Part
    size: int

    def to_json(self) -> bytes:
        return json.dumps({"v": 1, "size": self.size, "root": self.root.to_obj()}, separators=(",", ":")).encode(
            "ascii"
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> MessageStructure:
        d = json.loads(data)
        return cls(Part.from_obj(d["root"]), d["size"])

    def part(self, path: tuple[int, ...]) -> Part | None:
        """Part by IMAP part number (RFC 9051 §6.4.5); () is the whole message."""
        p = self.root
        for i, n in enumerate(path):
            # a message/rfc822 part's numbers address the encapsulated
            # message; the top-level message's "1" is its own body
            if i > 0 and p.is_message and p.children:
                p = p.children[0]
            if p.is_multipart:
                if not p.children and n == 1:
                    # RFC 2046 §5.1.1 needs one part; like BODYSTRUCTURE, stand
                    # in an empty text/plain part
                    return Part(p.body_start, p.body_start, p.body_start, TEXT | IS_MIME)
                if not 1 <= n <= len(p.children):
                    return None
                p = p.children[n - 1]
            elif n != 1:
                return None
        return p


# ---------------------------------------------------------------- headers


@dataclass
class Header:
    name: bytes
    value: bytes  # unfolded with "\n" between physical lines, CRs dropped
    start: int  # offset of the first byte of the field
    end: int  # offset after the field's last newline


def iter_headers(raw: bytes, start: int, end: int) -> list[Header]:
    """Header fields of a header block raw[start:end] (RFC 5322 §2.2)."""
    out: list[Header] = []
    pos = start
    while pos < end:
        h, pos, eoh, _ = _read_header(raw, pos, end)
        if eoh:
            break
        if h is not None:
            out.append(h)
    return out


def _read_header(raw: bytes, pos: int, n: int):
    """One logical header field at pos.  Returns (Header|None, next_pos, eoh, nl_size)."""
    first = True
    name = b""
    value = bytearray()
    start = pos
    nl_size = 0
    while True:
        lf = raw.find(b"\n", pos, n)
        if lf < 0:
            line_end = n
            nxt = n
            nl_size = 0
        else:
            nxt = lf + 1
            if lf > pos and raw[lf - 1] == 0x0D:
                line_end = lf - 1
                nl_size = 2
            else:
                line_end = lf
                nl_size = 1
        if first:
            if line_end == pos and lf >= 0:
                return None, nxt, True, nl_size
            colon = raw.find(b":", pos, line_end)
            if colon < 0:
                # RFC 5322 violation: no colon, the whole line is the name
                name = raw[pos:line_end]
                v_start = line_end
            else:
                c = colon
                while c > pos and raw[c - 1] in (0x20, 0x09):
                    c -= 1
                name = raw[pos:c]
                v_start = colon + 1
                v = v_start
                while v < line_end and raw[v] in (0x20, 0x09):
                    v += 1
                if v == line_end and v > v_start:
                    v = v_start + 1
                v_start = v
            value += raw[v_start:line_end]
            first = False
        else:
            value += b"\n"
            value += raw[pos:line_end]
        pos = nxt
        if pos >= n or lf < 0 or raw[pos] not in (0x20, 0x09):
            break
    return Header(name, bytes(value), start, pos), pos, False, nl_size


# ---------------------------------------------------------------- parser


class _Boundary:
    __slots__ = ("b", "part")

    def __init__(self, b: bytes, part: Part) -> None:
        self.b = b
        self.part = part


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.n = len(raw)
        self.boundaries: list[_Boundary] = []
        self.parent: dict[int, Part] = {}
        self.total = 1
        # a header cut short by a boundary line at cut_at logically ends at
        # cut_to (the newline before the boundary belongs to the boundary)
        self.cut_at = -1
        self.cut_to = -1
        self.cut_part: Part | None = None

    # RFC 2046 §5.1.1: "--" boundary at the start of a line; Dovecot
    # accepts any line that merely begins with the boundary.
    def boundary_at(self, ls: int) -> tuple[_Boundary | None, bool]:
        raw = self.raw
        if not self.boundaries or raw[ls : ls + 2] != b"--":
            return None, False
        data = ls + 2
        lf = raw.find(b"\n", data)
        if lf >= 0:
            fs = lf - data
            if fs > 0 and raw[lf - 1] == 0x0D:
                fs -= 1
        else:
            fs = min(self.n - data, BOUNDARY_END_MAX_LEN)
        # "--foo--" may be the end of "foo" or a boundary "foo--" continuing
        trailing_dash = fs > 2 and raw[data + fs - 2 : data + fs] == b"--"
        best = None
        for bd in reversed(self.boundaries):
            ln = len(bd.b)
            if ln <= fs and raw.startswith(bd.b, data) and (best is None or len(best.b) < ln):
                best = bd
                if ln == fs or (trailing_dash and ln == fs - 2):
                    break
        if best is None:
            return None, False
        e = data + len(best.b)
        return best, raw[e : e + 2] == b"--"

    def depth(self, part: Part) -> int:
        d = 0
        while id(part) in self.parent:
            part = self.parent[id(part)]
            d += 1
        return d

    def run(self) -> Part:
        n = self.n
        root = Part()
        part = root
        pos = 0
        state = "header"
        while True:
            if state == "header":
                part, pos, state = self.parse_header(part, pos)
            elif state == "body":
                # parse body up to the next boundary line (or EOF)
                part, pos, state = self.body_to_boundary(part, pos)
            elif state == "eof":
                # close every open part at EOF
                p: Part | None = part
                while p is not None:
                    p.body_end = n
                    p = self.parent.get(id(p))
                break
        self._finish(root)
        return root

    def _finish(self, root: Part) -> None:
        raw = self.raw
        stack = [root]
        while stack:
            p = stack.pop()
            p.lines = raw.count(b"\n", p.body_start, p.body_end)
            stack.extend(p.children)

    def new_child(self, parent: Part, pos: int, mime: bool) -> Part:
        if pos == self.cut_at:
            pos = self.cut_to
        child = Part(hdr_start=pos, body_start=pos, body_end=pos, flags=IS_MIME if mime else 0)
        parent.children.append(child)
        self.parent[id(child)] = parent
        self.total += 1
        return child

    def parse_header(self, part: Part, pos: int):
        raw, n = self.raw, self.n
        last_boundary: bytes | None = None
        seen_ct = False
        pushed = False
        prev_nl = 0
        headers: list[Header] = []
        parent = self.parent.get(id(part))
        while True:
            if (
                pos < n
                and (raw[pos] == 0x0A or raw[pos : pos + 2] == b"\r\n")
                and last_boundary is not None
                and part.flags & IS_MIME
            ):
                self.boundaries.append(_Boundary(last_boundary, part))
                last_boundary = None
                pushed = True
            if pos >= n:
                part.body_start = n
                break
            if self.boundaries:
                bd, _ = self.boundary_at(pos)
                if bd is not None and bd.part is not part:
                    # header cut short by a boundary; the newline before it
                    # belongs to the boundary (RFC 2046 §5.1.1)
                    if pos != self.cut_at:
                        self.cut_part = part
                    part.body_start = self.cut_to if pos == self.cut_at else pos - prev_nl
                    self.cut_at, self.cut_to = pos, part.body_start
                    break
            h, pos, eoh, prev_nl = _read_header(raw, pos, n)
            if eoh:
                part.body_start = pos
                break
            assert h is not None
            headers.append(h)
            lname = h.name.lower()
            if lname == b"mime-version":
                part.flags |= IS_MIME
            elif lname == b"content-type":
                part.flags |= IS_MIME
                if not seen_ct:
                    seen_ct = True
                    lb = self._ct_flags(part, h.value)
                    if lb is not None:
                        last_boundary = lb
        # end of headers
        if not part.flags & IS_MIME:
            part.flags = 0
        if not seen_ct or not part.flags & IS_MIME:
            if parent is not None and parent.flags & DIGEST:
                part.flags |= RFC822
            else:
                part.flags |= TEXT
        _content_data(part, headers)
        if parent is None or parent.flags & RFC822:
            part.envelope = b""  # marker: computed below
            from .envelope import envelope_from_headers

            part.envelope = envelope_from_headers(headers)
        part.body_end = part.body_start
        if pushed:
            return part, pos, "body"
        if part.flags & RFC822:
            if self.depth(part) >= MAX_NESTED_PARTS or self.total >= MAX_TOTAL_PARTS:
                part.flags = (part.flags & ~RFC822) | TEXT
            else:
                child = self.new_child(part, pos, mime=False)
                return child, pos, "header"
        if self.boundaries:
            return part, pos, "body"
        return part, pos, "eof"

    def _ct_flags(self, part: Part, value: bytes) -> bytes | None:
        p = Rfc822Parser(value)
        p.skip_lwsp()
        out = bytearray()
        ret = p.parse_content_type(out)
        ct = bytes(out).lower()
        if ct == b"message/rfc822":
            part.flags |= RFC822
        elif ct.startswith(b"text") and (len(ct) == 4 or ct[4:5] == b"/"):
            part.flags |= TEXT
        elif ct.startswith(b"multipart/"):
            if self.depth(part) < MAX_NESTED_PARTS and self.total < MAX_TOTAL_PARTS:
                part.flags |= MULTIPART
                if ct[10:] == b"digest":
                    part.flags |= DIGEST
        if ret < 0 or not part.flags & MULTIPART:
            return None
        for k, v in rfc2231_parse(p):
            if k.lower() == b"boundary":
                return v[:BOUNDARY_STRING_MAX_LEN]
        return None

    def body_to_boundary(self, part: Part, pos: int):
        raw, n = self.raw, self.n
        if not self.boundaries:
            return part, pos, "eof"
        seg_start = pos
        if pos < n:
            bd, epi = self.boundary_at(pos)
            if bd is not None:
                return self.part_finish(part, bd, epi, pos, self.cut_to if pos == self.cut_at else pos)
        i = pos
        while True:
            nl = raw.find(b"\n--", i)
            if nl < 0:
                return part, n, "eof"
            ls = nl + 1
            bd, epi = self.boundary_at(ls)
            if bd is not None:
                crlf = nl - 1 if nl - 1 >= seg_start and raw[nl - 1] == 0x0D else nl
                return self.part_finish(part, bd, epi, ls, crlf)
            i = ls

    def part_finish(self, part: Part, bd: _Boundary, epi: bool, ls: int, crlf: int):
        raw, n = self.raw, self.n
        p = part
        # the newline before a boundary that cut a header short belongs to
        # the cut part's parent (Dovecot moves it there)
        cut = ls == self.cut_at and crlf == self.cut_to
        end = crlf
        while p is not bd.part:
            p.body_end = end
            if cut and p is self.cut_part:
                end = ls
            p = self.parent[id(p)]
        part = bd.part
        idx = self.boundaries.index(bd)
        if epi:
            del self.boundaries[idx:]
        else:
            del self.boundaries[idx + 1 :]
        after = ls + 2 + len(bd.b) + (2 if epi else 0)
        lf = raw.find(b"\n", after)
        if lf < 0:
            return part, n, "eof"
        pos = lf + 1
        if self.boundaries and self.boundaries[-1].part is part:
            if self.total >= MAX_TOTAL_PARTS:
                return part, pos, "body"
            child = self.new_child(part, pos, mime=True)
            return child, pos, "header"
        return part, pos, "body"


def _content_data(part: Part, headers: list[Header]) -> None:
    """RFC 2045 §5-§8, RFC 2183, RFC 3282, RFC 2557 fields; first occurrence wins."""
    seen_type = False
    for h in headers:
        ln = h.name.lower()
        if not ln.startswith(b"content-"):
            continue
        what = ln[8:]
        v = h.value
        if what == b"type" and not seen_type:
            seen_type = True
            p = Rfc822Parser(v)
            p.skip_lwsp()
            out = bytearray()
            ret = p.parse_content_type(out)
            s = bytes(out)
            slash = s.find(b"/")
            if slash >= 0:
                part.ctype, part.subtype = s[:slash], s[slash + 1 :]
            else:
                part.ctype, part.subtype = s, None
            part.ctype = _cut(part.ctype)
            part.subtype = None if part.subtype is None else _cut(part.subtype)
            if ret >= 0:
                part.params = rfc2231_parse(p)
        elif what == b"transfer-encoding" and part.encoding is None:
            p = Rfc822Parser(v)
            p.skip_lwsp()
            out = bytearray()
            if p.parse_mime_token(out) >= 0 and p.skip_lwsp() == 0 and out:
                part.encoding = _cut(bytes(out))
        elif what == b"id" and part.cid is None:
            part.cid = _cut(v)
        elif what == b"md5" and part.md5 is None:
            part.md5 = _cut(v)
        elif what == b"description" and part.description is None:
            part.description = _cut(v)
        elif what == b"location" and part.location is None:
            part.location = _cut(v)
        elif what == b"language" and part.language is None:
            p = Rfc822Parser(v)
            p.skip_lwsp()
            langs = []
            while True:
                out = bytearray()
                if p.parse_atom(out) < 0:
                    break
                langs.append(bytes(out))
                if p.pos >= p.end or p.data[p.pos] != 0x2C:
                    break
                p.pos += 1
                p.skip_lwsp()
            if langs:
                part.language = langs
        elif what == b"disposition" and not part.disp_params:
            p = Rfc822Parser(v)
            p.skip_lwsp()
            out = bytearray()
            if p.parse_mime_token(out) < 0:
                continue
            part.disposition = _cut(bytes(out))
            part.disp_params = rfc2231_parse(p)
    if not part.flags & IS_MIME:
        # RFC 2045 §4: without MIME-Version the Content-* fields are ignored
        part.ctype = part.subtype = part.cid = part.description = None
        part.encoding = part.md5 = part.disposition = part.location = None
        part.params = []
        part.disp_params = None
        part.language = None


def _cut(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def parse_structure(raw: bytes) -> MessageStructure:
    """Parse raw RFC 5322 bytes into a MessageStructure.  Never raises on bad MIME."""
    root = _Parser(raw).run()
    return MessageStructure(root, len(raw))
