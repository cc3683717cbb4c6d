"""IMAP lexical layer (RFC 9051 §9 / RFC 3501 §9): token regexes and a cursor over a
command split into lines and literals, with the token readers the grammar uses
(atoms, strings, literals, numbers, sequence sets, dates)."""

from __future__ import annotations

import datetime as _dt
import re

from ..commands import (
    SYSTEM_FLAGS,
    SequenceSet,
)

# --------------------------------------------------------------------------- lexical

# RFC 9051 §9: ATOM-CHAR = any CHAR except atom-specials; atom-specials = "(" / ")" /
# "{" / SP / CTL / list-wildcards ("%" "*") / quoted-specials ('"' "\") / resp-specials ("]").
_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
# ASTRING-CHAR = ATOM-CHAR / resp-specials
_ASTRING_ATOM = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
# list-char = ATOM-CHAR / list-wildcards / resp-specials  (RFC 9051 §9 list-mailbox)
_LIST_CHARS = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
# tag = 1*<any ASTRING-CHAR except "+">
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_DIGITS = re.compile(rb"[0-9]+")
_SEQ_CHARS = re.compile(rb"[0-9*:,]+")
_LITERAL = re.compile(rb"(~?)\{([0-9]+)([+-]?)\}")
# literal header at the very end of a line (checked by the reader)
_LITERAL_TAIL = re.compile(rb"(~?)\{([0-9]+)([+-]?)\}\Z")
# a non-synchronising header whose "{" fell off the 32-byte tail kept while skipping
_HUGE_NONSYNC_TAIL = re.compile(rb"[0-9]{20,}[+-]\}\Z")
_HUGE = 1 << 80


def _literal_size(digits: bytes) -> int:
    # Python refuses int() of very long digit strings; anything this long is too big.
    return int(digits) if len(digits) <= 20 else _HUGE


_SECTION_WORD = re.compile(rb"[A-Za-z0-9.]+")
_FETCH_NAME = re.compile(rb"[A-Za-z0-9.]+")

_MAX_NUMBER = 4294967295  # RFC 9051 §9 number: unsigned 32-bit
_MAX_NUMBER64 = 9223372036854775807  # number64: signed 63-bit
_MONTHS = {
    m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}


class _Bad(Exception):
    """Internal: syntax error while parsing one command."""

    def __init__(self, text: str, code: str | None = None, status: str = "BAD") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


# --------------------------------------------------------------------------- cursor


class _P:
    """Cursor over a command split into lines and literal buffers."""

    __slots__ = (
        "allow_nul_append",
        "binary",
        "charset",
        "depth",
        "li",
        "line",
        "lines",
        "lits",
        "max_depth",
        "pos",
        "streamed",
    )

    def __init__(self, lines: list[bytes], lits: list[bytearray], binary: list[bool], max_depth: int) -> None:
        self.lines = lines
        self.lits = lits
        self.binary = binary
        self.li = 0
        self.line = lines[0]
        self.pos = 0
        self.depth = 0
        self.max_depth = max_depth
        self.charset = "utf-8"
        self.streamed: set[int] = set()
        self.allow_nul_append = False

    # -- primitives

    def peek(self) -> int:
        return self.line[self.pos] if self.pos < len(self.line) else -1

    def at_end(self) -> bool:
        return self.pos >= len(self.line) and self.li == len(self.lines) - 1

    def end(self) -> None:
        if not self.at_end():
            raise _Bad("Unexpected extra arguments")

    def sp(self) -> None:
        if self.peek() != 0x20:
            raise _Bad("Expected space")
        self.pos += 1

    def maybe_sp(self) -> bool:
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def char(self, c: bytes) -> None:
        if self.line[self.pos : self.pos + 1] != c:
            raise _Bad(f"Expected {c.decode()!r}")
        self.pos += 1

    def maybe_char(self, c: bytes) -> bool:
        if self.line[self.pos : self.pos + 1] == c:
            self.pos += 1
            return True
        return False

    def match(self, rx: re.Pattern, what: str) -> bytes:
        m = rx.match(self.line, self.pos)
        if not m:
            raise _Bad(f"Expected {what}")
        self.pos = m.end()
        return m.group()

    def atom(self) -> str:
        return self.match(_ATOM, "atom").decode("ascii")

    def keyword(self) -> str:
        """An atom, upper-cased (command names, options)."""
        return self.atom().upper()

    def maybe_word(self, word: bytes) -> bool:
        """Consume the case-insensitive ``word`` if it follows as a whole atom."""
        end = self.pos + len(word)
        if self.line[self.pos : end].upper() == word:
            nxt = self.line[end : end + 1]
            if not nxt or nxt in b" ()[]":
                self.pos = end
                return True
        return False

    def open(self) -> None:
        self.char(b"(")
        self.depth += 1
        if self.depth > self.max_depth:
            raise _Bad("Too deeply nested", "LIMIT")

    def close(self) -> None:
        self.char(b")")
        self.depth -= 1

    def number(self, *, nz: bool = False, big: bool = False) -> int:
        s = self.match(_DIGITS, "number")
        v = int(s)
        if v > (_MAX_NUMBER64 if big else _MAX_NUMBER):
            raise _Bad("Number out of range")
        if nz and (v == 0 or s[0] == 0x30):
            raise _Bad("Expected non-zero number")
        return v

    def quoted(self) -> bytes:
        # RFC 9051 §4.3 quoted = DQUOTE *QUOTED-CHAR DQUOTE; only \" and \\ escapes.
        line = self.line
        i = self.pos + 1
        out = bytearray()
        while True:
            q = line.find(b'"', i)
            if q < 0:
                raise _Bad("Unterminated quoted string")
            b = line.find(b"\\", i, q)
            if b < 0:
                out += line[i:q]
                self.pos = q + 1
                break
            out += line[i:b]
            esc = line[b + 1 : b + 2]
            if esc not in (b'"', b"\\"):
                raise _Bad("Invalid escape in quoted string")
            out += esc
            i = b + 2
        if 0 in out:
            raise _Bad("NUL in quoted string")
        return bytes(out)

    def literal(self, allow_binary: bool = False, allow_nul: bool = False) -> tuple[bytearray, bool]:
        m = _LITERAL.match(self.line, self.pos)
        if not m or m.end() != len(self.line) or self.li >= len(self.lits):
            raise _Bad("Invalid literal")
        binary = bool(m.group(1))
        if binary and not allow_binary:
            raise _Bad("literal8 not allowed here")
        if self.li in self.streamed and not allow_binary:
            raise _Bad("Message data not allowed here")
        data = self.lits[self.li]
        self.li += 1
        self.line = self.lines[self.li]
        self.pos = 0
        if not binary and not allow_nul and 0 in data:
            # RFC 9051 §4.3: a literal is CHAR8 (no NUL); NUL needs literal8 (RFC 3516).
            raise _Bad("NUL in literal")
        return data, binary

    def string_bytes(self) -> bytes:
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c == 0x7B:
            return bytes(self.literal()[0])
        raise _Bad("Expected string")

    def astring_bytes(self) -> bytes:
        c = self.peek()
        if c == 0x22 or c == 0x7B:
            return self.string_bytes()
        return self.match(_ASTRING_ATOM, "astring")

    def astring(self) -> str:
        return _utf8(self.astring_bytes())

    def string(self) -> str:
        return _utf8(self.string_bytes())

    def nstring(self) -> str | None:
        if self.maybe_word(b"NIL"):
            return None
        return self.string()

    def text_value(self) -> str:
        """An astring decoded with the SEARCH charset (RFC 9051 §6.4.4)."""
        raw = self.astring_bytes()
        try:
            return raw.decode(self.charset)
        except UnicodeDecodeError:
            raise _Bad(f"Invalid {self.charset} in search string") from None

    def mailbox(self) -> str:
        # RFC 9051 §9 mailbox = "INBOX" / astring; INBOX is case-insensitive.
        name = self.astring()
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        c = self.peek()
        if c == 0x22 or c == 0x7B:
            return self.string()
        return _utf8(self.match(_LIST_CHARS, "mailbox pattern"))

    def flag(self, *, allow_recent: bool = False) -> str:
        # RFC 9051 §9 flag = "\Answered" / ... / flag-keyword / flag-extension
        if self.maybe_char(b"\\"):
            name = "\\" + self.atom()
            canon = SYSTEM_FLAGS.get(name.lower())
            if canon == "\\Recent" and not allow_recent:
                raise _Bad("\\Recent cannot be set")
            return canon or name
        return self.atom()

    def flag_list(self) -> tuple[str, ...]:
        self.open()
        flags: list[str] = []
        if not self.maybe_char(b")"):
            while True:
                flags.append(self.flag())
                if self.maybe_char(b")"):
                    break
                self.sp()
        else:
            pass
        self.depth -= 1
        return tuple(flags)

    def sequence_set(self, *, allow_saved: bool = True, allow_star: bool = True) -> SequenceSet:
        if self.maybe_char(b"$"):
            # RFC 5182 §2.1 seq-last-command
            if not allow_saved:
                raise _Bad("$ not allowed here")
            return SequenceSet(saved=True)
        raw = self.match(_SEQ_CHARS, "sequence set")
        return _parse_seqset(raw, allow_star)

    def date(self) -> _dt.date:
        quoted = self.maybe_char(b'"')
        m = _DATE.match(self.line, self.pos)
        if not m:
            raise _Bad("Expected date (d-Mon-yyyy)")
        self.pos = m.end()
        if quoted:
            self.char(b'"')
        return _make_date(m.group(1), m.group(2), m.group(3))

    def date_time(self) -> _dt.datetime:
        m = _DATE_TIME.match(self.line, self.pos)
        if not m:
            raise _Bad("Invalid date-time")
        self.pos = m.end()
        return _make_date_time(m)


_DATE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_BASE64 = re.compile(rb"[A-Za-z0-9+/]+=*")
_STORE_ITEM = re.compile(rb"[+-]?[A-Za-z.]+")
_DATE_TIME = re.compile(
    rb'"([ 0-9][0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad("Invalid UTF-8") from None


def _make_date(day: bytes, mon: bytes, year: bytes) -> _dt.date:
    month = _MONTHS.get(mon.decode("ascii").upper())
    if month is None:
        raise _Bad("Invalid month")
    try:
        return _dt.date(int(year), month, int(day))
    except ValueError:
        raise _Bad("Invalid date") from None


def _make_date_time(m: re.Match) -> _dt.datetime:
    d = _make_date(m.group(1).strip(), m.group(2), m.group(3))
    hh, mm, ss = int(m.group(4)), int(m.group(5)), int(m.group(6))
    zh, zm = int(m.group(8)), int(m.group(9))
    if zm > 59 or zh > 23:
        raise _Bad("Invalid time zone")
    off = _dt.timedelta(hours=zh, minutes=zm)
    if m.group(7) == b"-":
        off = -off
    try:
        return _dt.datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=_dt.timezone(off))
    except ValueError:
        raise _Bad("Invalid time") from None


def parse_date(text: str) -> _dt.date:
    """Parse an IMAP ``date`` (``1-Feb-2024`` / ``"01-Feb-2024"``), RFC 9051 §9."""
    p = _P([text.encode("ascii", "replace")], [], [], 1)
    try:
        d = p.date()
        p.end()
    except _Bad as e:
        raise ValueError(e.text) from None
    return d


def parse_date_time(text: str) -> _dt.datetime:
    """Parse an IMAP ``date-time`` including its quotes, RFC 9051 §9."""
    p = _P([text.encode("ascii", "replace")], [], [], 1)
    try:
        d = p.date_time()
        p.end()
    except _Bad as e:
        raise ValueError(e.text) from None
    return d


def _seq_number(part: bytes, allow_star: bool) -> int | None:
    if part == b"*":
        if not allow_star:
            raise _Bad("* not allowed here")
        return None
    if not part.isdigit() or part[0] == 0x30:
        raise _Bad("Invalid sequence number")
    v = int(part)
    if v > _MAX_NUMBER:
        raise _Bad("Sequence number out of range")
    return v


def _parse_seqset(raw: bytes, allow_star: bool = True) -> SequenceSet:
    # RFC 9051 §9 sequence-set = (seq-number / seq-range) ["," sequence-set]
    ranges = []
    for item in raw.split(b","):
        a, sep, b = item.partition(b":")
        lo = _seq_number(a, allow_star)
        hi = _seq_number(b, allow_star) if sep else lo
        ranges.append((lo, hi))
    return SequenceSet(tuple(ranges))
