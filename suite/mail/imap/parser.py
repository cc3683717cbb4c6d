"""Sans-I/O IMAP command reader and parser (IMAP4rev1 RFC 3501 / IMAP4rev2 RFC 9051).

Usage from a session::

    reader = CommandReader(ImapLimits())
    reader.feed(data_from_socket)
    for event in reader:                    # lazily parsed, one event at a time
        match event:
            case NeedContinuation():        send b"+ Ready\\r\\n"  (or reject, see below)
            case ParseError():              send tagged/untagged BAD (BYE if event.fatal)
            case Command():                 run it
            case RawLine() | IdleDone():    AUTHENTICATE answer / end of IDLE

Events are produced lazily, so a session can switch the reader's mode right after a
command and before the following bytes are interpreted:

* after answering ``+`` to AUTHENTICATE call :meth:`CommandReader.expect_raw_line`;
  the next line comes back as :class:`RawLine` (RFC 9051 §6.2.2);
* after answering ``+ idling`` to IDLE call :meth:`CommandReader.expect_idle_done`;
  the next line must be ``DONE`` and comes back as :class:`IdleDone` (RFC 2177);
* after answering OK to STARTTLS call :meth:`CommandReader.take_buffered` and drop
  the result (RFC 9051 §11.1, no plaintext command injection);
* on :class:`NeedContinuation` the server may refuse the literal with a tagged NO/BAD
  instead of ``+``; then call :meth:`CommandReader.cancel_command` (RFC 9051 §7.5:
  the client will not send the literal).

Limits (:class:`~suite.mail.imap.limits.ImapLimits`) are checked when a size is
announced, before any byte of it is read:

* a *synchronising* literal that is too big yields a :class:`ParseError` at once, no
  continuation is requested; the client then abandons the command and the reader
  starts over with the next line (RFC 9051 §7.5).  For an APPEND message literal the
  error is ``NO [TOOBIG]`` (RFC 9051 §7.1, RFC 7889); otherwise ``BAD [TOOBIG]``.
* a *non-synchronising* literal that is too big (RFC 7888 §4) is also rejected at
  once with ``BAD [TOOBIG]``; since the client sends the bytes anyway the reader
  **counts them out and drops them without buffering**, then skips the rest of the
  command.  If the announced size exceeds ``limits.max_discard`` the error is fatal
  (answer ``* BYE`` and close) instead of reading gigabytes.
* a line longer than ``max_line`` is rejected as soon as the cap is passed and
  skipped to its end without buffering.

APPEND message data is read into a single pre-sized ``bytearray`` per message that is
handed to the session inside :class:`~suite.mail.imap.commands.AppendMessage` as is —
no further copy.  With ``CommandReader(limits, stream_append=True)`` message literals
are not buffered at all: they come out as :class:`AppendData` chunks while they
arrive, and the final :class:`Append` has ``streamed=True`` messages.

Empty lines between commands are ignored.  A bare LF is accepted as line end.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import datetime as _dt
import re
from collections.abc import Iterator

from .commands import (
    SYSTEM_FLAGS,
    Append,
    AppendData,
    AppendMessage,
    Authenticate,
    Capability,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Enable,
    Event,
    Expunge,
    Fetch,
    FetchAttr,
    GetQuota,
    GetQuotaRoot,
    Id,
    Idle,
    IdleDone,
    List,
    ListReturn,
    Login,
    Logout,
    Lsub,
    Move,
    Namespace,
    NeedContinuation,
    Noop,
    ParseError,
    Partial,
    QResync,
    RawLine,
    Rename,
    Search,
    SearchAnd,
    SearchCriterion,
    SearchKey,
    SearchModSeq,
    SearchNot,
    SearchOr,
    SearchSet,
    Section,
    Select,
    SequenceSet,
    SetQuota,
    StartTLS,
    Status,
    Store,
    Subscribe,
    Unselect,
    Unsubscribe,
)
from .limits import ImapLimits

__all__ = ["CommandReader", "parse_command", "parse_date", "parse_date_time"]

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


# --------------------------------------------------------------------------- reader

_S_LINE = 0  # reading a command line
_S_LITERAL = 1  # filling a literal buffer
_S_DISCARD = 2  # counting out a rejected non-synchronising literal
_S_SKIP_LINE = 3  # skipping the rest of an over-long / rejected line
_S_DEAD = 4  # fatal error happened
_S_STREAM = 5  # passing an APPEND message literal through as AppendData events

_M_COMMAND = 0
_M_RAW = 1
_M_IDLE = 2


class CommandReader:
    """Incremental framing of IMAP client input into events.  Not thread-safe; one per
    connection.  See the module docstring for the protocol with the session."""

    def __init__(self, limits: ImapLimits | None = None, *, stream_append: bool = False) -> None:
        """``stream_append=True``: APPEND message literals are not buffered but handed
        over as :class:`AppendData` events while they arrive (for writing straight to
        the store); the final :class:`Append` then carries ``streamed=True`` messages
        with empty ``data``.  On a ParseError for that tag, drop what was streamed."""
        self.limits = limits or ImapLimits()
        self.stream_append = stream_append
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed data in _buf
        self._scan = 0  # where to resume searching for LF
        self._state = _S_LINE
        self._mode = _M_COMMAND
        self._idle_tag = ""
        self._reset_command()
        # literal being filled / discarded
        self._lit: bytearray | None = None
        self._lit_fill = 0
        self._lit_left = 0
        # line being skipped: did it (so far) end in a non-sync literal header?
        self._skip_tail = b""
        self._skip_error_sent = False

    # ------------------------------------------------------------------ public API

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes.  Cheap: parsing happens while iterating."""
        if self._state == _S_DEAD:
            return
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = self._scan = 0
        self._buf += data

    def __iter__(self) -> Iterator[Event]:
        while (ev := self.next_event()) is not None:
            yield ev

    def next_event(self) -> Event | None:
        """The next event, or None when more input is needed."""
        try:
            return self._next()
        finally:
            self._compact()

    def expect_raw_line(self) -> None:
        """Deliver the next line as :class:`RawLine` (AUTHENTICATE exchange, RFC 9051 §6.2.2)."""
        self._mode = _M_RAW

    def expect_idle_done(self, tag: str) -> None:
        """The client is idling (RFC 2177): the next line must be ``DONE``."""
        self._mode = _M_IDLE
        self._idle_tag = tag

    def cancel_command(self) -> None:
        """Forget the command whose synchronising literal the server just refused.

        Call after answering a :class:`NeedContinuation` with a tagged NO/BAD instead of
        ``+``: the client does not send the literal (RFC 9051 §7.5)."""
        if self._state in (_S_LITERAL, _S_STREAM):
            self._state = _S_LINE
            self._lit = None
        self._reset_command()

    def take_buffered(self) -> bytes:
        """Remove and return every byte received but not yet parsed (use after STARTTLS)."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = self._scan = 0
        return data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed."""
        return len(self._buf) - self._pos

    @property
    def in_command(self) -> bool:
        """True while part of a command (line or literal) has been read."""
        return bool(self._lines) or self._state != _S_LINE

    # ------------------------------------------------------------------ internals

    def _reset_command(self) -> None:
        self._lines: list[bytes] = []
        self._lits: list[bytearray] = []
        self._lit_binary: list[bool] = []
        self._streamed: set[int] = set()
        self._stream_index = 0
        self._tag: str | None = None
        self._cmd = ""
        self._total = 0
        self._append_total = 0

    def _compact(self) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._scan -= self._pos
            self._pos = 0

    def _die(self, err: ParseError) -> ParseError:
        self._state = _S_DEAD
        self._buf.clear()
        self._pos = self._scan = 0
        self._reset_command()
        return err

    def _next(self) -> Event | None:
        while True:
            st = self._state
            if st == _S_LINE:
                ev = self._read_line()
                if ev is _AGAIN:
                    continue
                return ev
            if st == _S_LITERAL:
                if not self._fill_literal():
                    return None
                continue
            if st == _S_STREAM:
                return self._stream_literal()
            if st == _S_DISCARD:
                avail = len(self._buf) - self._pos
                n = min(avail, self._lit_left)
                self._pos += n
                self._scan = self._pos
                self._lit_left -= n
                if self._lit_left:
                    return None
                self._state = _S_SKIP_LINE
                self._skip_tail = b""
                continue
            if st == _S_SKIP_LINE:
                ev = self._skip_line()
                if ev is _AGAIN:
                    continue
                return ev
            return None  # dead

    def _stream_literal(self) -> Event | None:
        avail = len(self._buf) - self._pos
        n = min(avail, self._lit_left)
        if n == 0 and self._lit_left:
            return None
        chunk = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        self._scan = self._pos
        self._lit_left -= n
        last = not self._lit_left
        if last:
            self._lits.append(bytearray())
            self._streamed.add(len(self._lits) - 1)
            self._state = _S_LINE
        return AppendData(self._tag or "*", self._stream_index, chunk, last)

    def _fill_literal(self) -> bool:
        buf = self._buf
        avail = len(buf) - self._pos
        n = min(avail, self._lit_left)
        if n:
            lit = self._lit
            assert lit is not None
            memoryview(lit)[self._lit_fill : self._lit_fill + n] = memoryview(buf)[self._pos : self._pos + n]
            self._lit_fill += n
            self._lit_left -= n
            self._pos += n
            self._scan = self._pos
        if self._lit_left:
            return False
        assert self._lit is not None
        self._lits.append(self._lit)
        self._lit = None
        self._state = _S_LINE
        return True

    def _find_line(self) -> tuple[int, int] | None | bool:
        """Return (start, end_of_content) of the next line and consume it; None when
        incomplete; False when the line is too long (it is then left unconsumed)."""
        buf = self._buf
        lf = buf.find(b"\n", self._scan)
        if lf < 0:
            self._scan = len(buf)
            if len(buf) - self._pos > self.limits.max_line + 1:
                return False
            return None
        start = self._pos
        end = lf
        if end > start and buf[end - 1] == 0x0D:
            end -= 1
        if end - start > self.limits.max_line:
            return False
        self._pos = self._scan = lf + 1
        return start, end

    def _line_too_long(self) -> Event:
        # RFC 9051 §7.1 TOOBIG; the rest of the line is skipped without buffering.
        self._state = _S_SKIP_LINE
        self._skip_tail = b""
        tag = self._tag
        if tag is None and self._mode == _M_COMMAND:
            m = _TAG.match(self._buf, self._pos)
            if m and self._buf[m.end() : m.end() + 1] == b" ":
                tag = m.group().decode("ascii")
        if self._mode == _M_IDLE:
            tag = self._idle_tag
            self._mode = _M_COMMAND
        elif self._mode == _M_RAW:
            self._mode = _M_COMMAND
        self._reset_command()
        return ParseError(tag, "TOOBIG", "Line too long")

    def _skip_line(self) -> Event | object | None:
        buf = self._buf
        lf = buf.find(b"\n", self._pos)
        if lf < 0:
            # keep only a short tail to recognise a literal header at the line's end
            chunk = bytes(buf[max(self._pos, len(buf) - 32) :])
            self._skip_tail = (self._skip_tail + chunk)[-32:]
            self._pos = self._scan = len(buf)
            return None
        tail = (self._skip_tail + bytes(buf[max(self._pos, lf - 32) : lf]))[-32:]
        self._pos = self._scan = lf + 1
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        m = _LITERAL_TAIL.search(tail)
        if m is None and _HUGE_NONSYNC_TAIL.search(tail):
            return self._die(ParseError(None, "TOOBIG", "Literal too big to skip", fatal=True))
        if m and m.group(3):
            n = _literal_size(m.group(2))
            if n > self.limits.max_discard:
                return self._die(ParseError(None, "TOOBIG", "Literal too big to skip", fatal=True))
            self._state = _S_DISCARD
            self._lit_left = n
            return _AGAIN
        # A synchronising literal (client waits for "+", never sent) or plain end of
        # line: the command is over.
        self._state = _S_LINE
        return _AGAIN

    def _read_line(self) -> Event | object | None:
        found = self._find_line()
        if found is None:
            return None
        if found is False:
            return self._line_too_long()
        start, end = found
        line = bytes(self._buf[start:end])

        if self._mode == _M_RAW:
            self._mode = _M_COMMAND
            return RawLine(line)
        if self._mode == _M_IDLE:
            self._mode = _M_COMMAND
            if line.upper() == b"DONE":  # RFC 2177 §3
                return IdleDone(self._idle_tag)
            return ParseError(self._idle_tag, None, "Expected DONE to end IDLE")

        first = not self._lines
        if first and not line.strip():
            return _AGAIN  # RFC 9051 does not define empty lines; ignore them
        self._total += len(line) + 2
        lim = self.limits
        m = _LITERAL_TAIL.search(line) if line.endswith(b"}") else None
        if first and (m is not None or self._total > lim.max_command):
            # tag and command name are needed now, before the whole command is parsed
            self._tag, self._cmd = _head(line)
        if self._total > lim.max_command:
            return self._reject_after_line(m, "BAD", "TOOBIG", "Command too long")
        if m is None:
            self._lines.append(line)
            return self._finish()

        binary = bool(m.group(1))
        size = _literal_size(m.group(2))
        nonsync = bool(m.group(3))
        if first and (self._tag is None or self._cmd not in _KNOWN_COMMANDS):
            # Refuse before asking for (or counting out) literal data of a command
            # that cannot be valid anyway.
            text = "Missing or invalid tag" if self._tag is None else "Unknown command"
            return self._reject_after_line(m, "BAD", None, text)
        if len(self._lits) + 1 > lim.max_literals:
            return self._reject_after_line(m, "BAD", "LIMIT", "Too many literals")
        append_msg = self._cmd == "APPEND" and not (
            first and not self._lits and re.fullmatch(rb"\S+ +APPEND +~?\{[0-9]+[+-]?\}", line, re.IGNORECASE)
        )
        if nonsync and (m.group(3) == b"-" or not lim.literal_plus) and size > lim.literal_minus_max:
            # RFC 7888 §4: LITERAL- non-synchronising literals are limited to 4096 octets.
            return self._reject_after_line(m, "BAD", "TOOBIG", "Non-synchronizing literal too big")
        if append_msg:
            if size > lim.max_append_literal or self._append_total + size > lim.max_append_total:
                # RFC 9051 §7.1 TOOBIG / RFC 7889 §4: NO [TOOBIG] for APPEND over the limit.
                return self._reject_after_line(m, "NO", "TOOBIG", "Message too big")
            self._append_total += size
        else:
            if size > lim.max_literal or self._total + size > lim.max_command:
                return self._reject_after_line(m, "BAD", "TOOBIG", "Literal too big")
            self._total += size
        self._lines.append(line)
        self._lit_binary.append(binary)
        self._lit_fill = 0
        self._lit_left = size
        if append_msg and self.stream_append:
            self._stream_index = len(self._streamed)
            self._state = _S_STREAM
        else:
            self._lit = bytearray(size)
            self._state = _S_LITERAL
        if not nonsync:
            # RFC 9051 §4.3: the server sends a continuation before the literal octets.
            return NeedContinuation(self._tag or "*", self._cmd, size, append_msg)
        return _AGAIN

    def _reject_after_line(self, m: re.Match | None, status: str, code: str | None, text: str) -> Event:
        """Reject the current command after reading a complete line (limits exceeded)."""
        tag = self._tag
        self._reset_command()
        if m is not None and m.group(3):
            # Non-synchronising literal: the client sends it anyway (RFC 7888 §4); count
            # it out without buffering, then skip the rest of the command.
            n = _literal_size(m.group(2))
            if n > self.limits.max_discard:
                return self._die(ParseError(tag, code, text, fatal=True, status=status))
            self._state = _S_DISCARD
            self._lit_left = n
        else:
            # Synchronising literal or end of line: the client gets the tagged answer
            # instead of "+" and abandons the command (RFC 9051 §7.5).
            self._state = _S_LINE
        return ParseError(tag, code, text, status=status)

    def _finish(self) -> Event:
        lines, lits, binary, streamed = self._lines, self._lits, self._lit_binary, self._streamed
        tag = self._tag
        self._reset_command()
        return parse_command(lines, lits, binary, limits=self.limits, tag=tag, streamed=streamed)


_AGAIN = object()


def _head(line: bytes) -> tuple[str | None, str]:
    """Tag and upper-cased command name (``"UID FETCH"``) of a command's first line."""
    m = _TAG.match(line)
    if not m or line[m.end() : m.end() + 1] != b" ":
        return None, ""
    tag = m.group().decode("ascii")
    name = _ATOM.match(line, m.end() + 1)
    if not name:
        return tag, ""
    cmd = name.group().decode("ascii").upper()
    if cmd == "UID":
        sub = _ATOM.match(line, name.end() + 1)
        if sub:
            cmd = "UID " + sub.group().decode("ascii").upper()
    return tag, cmd


# --------------------------------------------------------------------------- parser


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


# --------------------------------------------------------------------------- commands


def parse_command(
    lines: list[bytes],
    lits: list[bytearray] | None = None,
    binary: list[bool] | None = None,
    *,
    limits: ImapLimits | None = None,
    tag: str | None = None,
    streamed: set[int] | None = None,
) -> Command | ParseError:
    """Parse one complete command (lines split at literals, CRLF removed).

    Mostly used by :class:`CommandReader`; handy in tests: ``parse_command([b"a NOOP"])``.
    Never raises for bad input: returns a :class:`ParseError` instead.
    """
    lits = lits or []
    binary = binary or [False] * len(lits)
    lim = limits or ImapLimits()
    p = _P(lines, lits, binary, lim.max_depth)
    p.allow_nul_append = lim.allow_nul_in_append
    if streamed:
        p.streamed = streamed
    try:
        m = _TAG.match(p.line)
        if not m:
            raise _Bad("Missing or invalid tag")
        tag = m.group().decode("ascii")
        p.pos = m.end()
        p.sp()
        name = p.keyword()
        fn = _COMMANDS.get(name)
        if fn is None:
            raise _Bad(f"Unknown command {name[:32]}")
        cmd = fn(p, tag)
        p.end()
        return cmd
    except _Bad as e:
        return ParseError(tag, e.code, e.text, status=e.status)
    except RecursionError:
        return ParseError(tag, "LIMIT", "Too deeply nested")


def _no_args(cls):
    def parse(p: _P, tag: str):
        return cls(tag=tag)

    return parse


def _p_authenticate(p: _P, tag: str) -> Authenticate:
    # RFC 9051 §6.2.2, SASL-IR RFC 4959 §7: [SP (base64 / "=")]
    p.sp()
    mech = p.keyword()
    initial = None
    if p.maybe_sp():
        if p.maybe_char(b"="):
            initial = b""
        else:
            raw = p.match(_BASE64, "base64")
            try:
                initial = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise _Bad("Invalid base64") from None
    return Authenticate(tag=tag, mechanism=mech, initial_response=initial)


def _p_login(p: _P, tag: str) -> Login:
    p.sp()
    user = p.astring()
    p.sp()
    pw = p.astring()
    return Login(tag=tag, username=user, password=pw)


def _p_enable(p: _P, tag: str) -> Enable:
    # RFC 5161 §3.1: "ENABLE" 1*(SP capability)
    caps = []
    p.sp()
    caps.append(p.keyword())
    while p.maybe_sp():
        caps.append(p.keyword())
    return Enable(tag=tag, capabilities=tuple(caps))


def _p_select(readonly: bool):
    def parse(p: _P, tag: str) -> Select:
        p.sp()
        mbox = p.mailbox()
        condstore = False
        qresync = None
        if p.maybe_sp():
            # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC
            p.open()
            while True:
                opt = p.keyword()
                if opt == "CONDSTORE":
                    condstore = True
                elif opt == "QRESYNC":
                    if qresync is not None:
                        raise _Bad("Duplicate QRESYNC")
                    p.sp()
                    qresync = _p_qresync(p)
                else:
                    raise _Bad(f"Unknown select parameter {opt[:32]}")
                if p.maybe_char(b")"):
                    p.depth -= 1
                    break
                p.sp()
        return Select(tag=tag, mailbox=mbox, readonly=readonly, condstore=condstore, qresync=qresync)

    return parse


def _p_qresync(p: _P) -> QResync:
    # RFC 7162 §7: "(" uidvalidity SP mod-sequence-value [SP known-uids] [SP seq-match-data] ")"
    p.open()
    uidvalidity = p.number(nz=True)
    p.sp()
    modseq = p.number(big=True)
    known = None
    match = None
    if p.maybe_sp():
        if p.peek() != 0x28:
            known = p.sequence_set(allow_saved=False, allow_star=False)
            if p.maybe_sp():
                match = _p_seq_match(p)
        else:
            match = _p_seq_match(p)
    p.close()
    return QResync(uidvalidity, modseq, known, match)


def _p_seq_match(p: _P) -> tuple[SequenceSet, SequenceSet]:
    p.open()
    seqs = p.sequence_set(allow_saved=False, allow_star=False)
    p.sp()
    uids = p.sequence_set(allow_saved=False, allow_star=False)
    p.close()
    return seqs, uids


def _p_create(p: _P, tag: str) -> Create:
    p.sp()
    mbox = p.mailbox()
    use: list[str] = []
    if p.maybe_sp():
        # RFC 4466 §2.2 create-params; RFC 6154 §6 "USE" SP "(" [use-attr *(SP use-attr)] ")"
        p.open()
        while True:
            opt = p.keyword()
            if opt != "USE":
                raise _Bad(f"Unknown CREATE parameter {opt[:32]}")
            p.sp()
            p.open()
            if not p.maybe_char(b")"):
                while True:
                    p.char(b"\\")
                    use.append("\\" + p.atom())
                    if p.maybe_char(b")"):
                        break
                    p.sp()
            p.depth -= 1
            if p.maybe_char(b")"):
                p.depth -= 1
                break
            p.sp()
    return Create(tag=tag, mailbox=mbox, special_use=tuple(use))


def _one_mailbox(cls):
    def parse(p: _P, tag: str):
        p.sp()
        return cls(tag=tag, mailbox=p.mailbox())

    return parse


def _p_rename(p: _P, tag: str) -> Rename:
    p.sp()
    old = p.mailbox()
    p.sp()
    new = p.mailbox()
    return Rename(tag=tag, mailbox=old, new_name=new)


_LIST_SELECT = {"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"}
_STATUS_ATTS = {
    "MESSAGES",
    "UIDNEXT",
    "UIDVALIDITY",
    "UNSEEN",
    "DELETED",
    "SIZE",
    "RECENT",
    "HIGHESTMODSEQ",
    "APPENDLIMIT",
    "MAILBOXID",
    "DELETED-STORAGE",
}


def _p_status_atts(p: _P) -> tuple[str, ...]:
    # RFC 9051 §6.3.11 status-att; RFC 7162 §3.1.9 HIGHESTMODSEQ; RFC 7889 APPENDLIMIT
    p.open()
    items = []
    while True:
        att = p.keyword()
        if att not in _STATUS_ATTS:
            raise _Bad(f"Unknown status attribute {att[:32]}")
        items.append(att)
        if p.maybe_char(b")"):
            p.depth -= 1
            break
        p.sp()
    return tuple(items)


def _p_list(p: _P, tag: str) -> List:
    # RFC 9051 §6.3.9 / RFC 5258 §6:
    # "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]
    p.sp()
    extended = False
    selection: set[str] = set()
    if p.peek() == 0x28:
        extended = True
        p.open()
        if not p.maybe_char(b")"):
            while True:
                opt = p.keyword()
                if opt not in _LIST_SELECT:
                    raise _Bad(f"Unknown LIST selection option {opt[:32]}")
                selection.add(opt)
                if p.maybe_char(b")"):
                    break
                p.sp()
        p.depth -= 1
        # RFC 5258 §3: RECURSIVEMATCH needs another (base) selection option.
        if "RECURSIVEMATCH" in selection and not (selection - {"RECURSIVEMATCH", "REMOTE"}):
            raise _Bad("RECURSIVEMATCH requires another selection option")
        p.sp()
    ref = p.astring()
    p.sp()
    patterns = []
    if p.peek() == 0x28:
        extended = True
        p.open()
        while True:
            patterns.append(p.list_mailbox())
            if p.maybe_char(b")"):
                break
            p.sp()
        p.depth -= 1
    else:
        patterns.append(p.list_mailbox())
    ret = ListReturn()
    if p.maybe_sp():
        extended = True
        if not p.maybe_word(b"RETURN"):
            raise _Bad("Expected RETURN")
        p.sp()
        p.open()
        sub = children = special = myrights = False
        status = None
        if not p.maybe_char(b")"):
            while True:
                opt = p.keyword()
                if opt == "SUBSCRIBED":
                    sub = True
                elif opt == "CHILDREN":
                    children = True
                elif opt == "SPECIAL-USE":  # RFC 6154 §5.2
                    special = True
                elif opt == "MYRIGHTS":  # RFC 8440
                    myrights = True
                elif opt == "STATUS":  # RFC 5819 §2
                    p.sp()
                    status = _p_status_atts(p)
                else:
                    raise _Bad(f"Unknown LIST return option {opt[:32]}")
                if p.maybe_char(b")"):
                    break
                p.sp()
        p.depth -= 1
        ret = ListReturn(sub, children, special, myrights, status)
    return List(
        tag=tag, reference=ref, patterns=tuple(patterns), selection=frozenset(selection), returns=ret, extended=extended
    )


def _p_lsub(p: _P, tag: str) -> Lsub:
    p.sp()
    ref = p.astring()
    p.sp()
    return Lsub(tag=tag, reference=ref, pattern=p.list_mailbox())


def _p_status(p: _P, tag: str) -> Status:
    p.sp()
    mbox = p.mailbox()
    p.sp()
    return Status(tag=tag, mailbox=mbox, items=_p_status_atts(p))


def _p_append(p: _P, tag: str) -> Append:
    # RFC 9051 §6.3.12 / RFC 3502 MULTIAPPEND:
    # "APPEND" SP mailbox 1*append-message; append-message = [SP flag-list] [SP date-time] SP (literal / literal8)
    p.sp()
    mbox = p.mailbox()
    msgs = []
    while p.maybe_sp():
        flags: tuple[str, ...] = ()
        when = None
        if p.peek() == 0x28:
            flags = p.flag_list()
            p.sp()
        if p.peek() == 0x22:
            when = p.date_time()
            p.sp()
        if p.peek() not in (0x7B, 0x7E):
            raise _Bad("Expected message literal")
        streamed = p.li in p.streamed
        data, is_binary = p.literal(allow_binary=True, allow_nul=p.allow_nul_append)
        msgs.append(AppendMessage(data, flags, when, is_binary, streamed))
    if not msgs:
        raise _Bad("Missing message")
    return Append(tag=tag, mailbox=mbox, messages=tuple(msgs))


def _p_expunge(p: _P, tag: str) -> Expunge:
    return Expunge(tag=tag)


# --- SEARCH (RFC 9051 §6.4.4)

_SEARCH_FLAG_KEYS = {
    "ALL",
    "ANSWERED",
    "DELETED",
    "DRAFT",
    "FLAGGED",
    "NEW",
    "OLD",
    "RECENT",
    "SEEN",
    "UNANSWERED",
    "UNDELETED",
    "UNDRAFT",
    "UNFLAGGED",
    "UNSEEN",
}
_SEARCH_STRING_KEYS = {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
_SEARCH_DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
_SEARCH_RETURN = {"MIN", "MAX", "ALL", "COUNT", "SAVE"}


def _p_search_key(p: _P) -> SearchKey:
    c = p.peek()
    if c == 0x28:
        p.open()
        keys = [_p_search_key(p)]
        while not p.maybe_char(b")"):
            p.sp()
            keys.append(_p_search_key(p))
        p.depth -= 1
        return SearchAnd(tuple(keys))
    if c == 0x24 or c == 0x2A or 0x30 <= c <= 0x39:
        return SearchSet(p.sequence_set())
    key = p.keyword()
    if key in _SEARCH_FLAG_KEYS:
        return SearchCriterion(key)
    if key in _SEARCH_STRING_KEYS:
        p.sp()
        return SearchCriterion(key, p.text_value())
    if key in _SEARCH_DATE_KEYS:
        p.sp()
        return SearchCriterion(key, p.date())
    if key in ("KEYWORD", "UNKEYWORD"):
        p.sp()
        return SearchCriterion(key, p.atom())
    if key == "HEADER":
        p.sp()
        field = p.astring()
        p.sp()
        return SearchCriterion(key, (field, p.text_value()))
    if key in ("LARGER", "SMALLER"):
        p.sp()
        return SearchCriterion(key, p.number(big=True))
    if key in ("OLDER", "YOUNGER"):  # RFC 5032 WITHIN
        p.sp()
        return SearchCriterion(key, p.number(nz=True))
    if key == "UID":
        p.sp()
        return SearchSet(p.sequence_set(), uid=True)
    if key == "NOT":
        p.sp()
        p.depth += 1
        if p.depth > p.max_depth:
            raise _Bad("Too deeply nested", "LIMIT")
        k = _p_search_key(p)
        p.depth -= 1
        return SearchNot(k)
    if key == "OR":
        p.sp()
        p.depth += 1
        if p.depth > p.max_depth:
            raise _Bad("Too deeply nested", "LIMIT")
        a = _p_search_key(p)
        p.sp()
        b = _p_search_key(p)
        p.depth -= 1
        return SearchOr(a, b)
    if key == "MODSEQ":
        # RFC 7162 §3.1.5: "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
        # search-modseq-ext = SP entry-name SP entry-type-req
        p.sp()
        name = etype = None
        if p.peek() == 0x22 or p.peek() == 0x7B:
            name = p.string()
            p.sp()
            etype = p.keyword().lower()
            if etype not in ("priv", "shared", "all"):
                raise _Bad("Invalid MODSEQ entry type")
            p.sp()
        return SearchModSeq(p.number(big=True), name, etype)
    raise _Bad(f"Unknown search key {key[:32]}")


def _p_search(uid: bool):
    def parse(p: _P, tag: str) -> Search:
        p.sp()
        returns = None
        if p.maybe_word(b"RETURN"):
            # RFC 9051 §6.4.4 / RFC 4731 §3: search-return-opts
            p.sp()
            p.open()
            opts: list[str] = []
            if not p.maybe_char(b")"):
                while True:
                    opt = p.keyword()
                    if opt not in _SEARCH_RETURN:
                        raise _Bad(f"Unknown search return option {opt[:32]}")
                    if opt not in opts:
                        opts.append(opt)
                    if p.maybe_char(b")"):
                        break
                    p.sp()
            p.depth -= 1
            returns = tuple(opts) or ("ALL",)  # RFC 4731 §3.1: empty RETURN () is ALL
            p.sp()
        charset = None
        if p.maybe_word(b"CHARSET"):
            p.sp()
            charset = p.astring().upper()
            try:
                p.charset = codecs.lookup(charset).name
            except LookupError:
                # RFC 9051 §6.4.4: NO [BADCHARSET (charsets)] for an unknown charset.
                raise _Bad("Unsupported charset", "BADCHARSET (US-ASCII UTF-8)", "NO") from None
            p.sp()
        keys = [_p_search_key(p)]
        while p.maybe_sp():
            keys.append(_p_search_key(p))
        return Search(tag=tag, uid=uid, charset=charset, criteria=SearchAnd(tuple(keys)), returns=returns)

    return parse


# --- FETCH (RFC 9051 §6.4.5)

_FETCH_SIMPLE = {
    "ENVELOPE",
    "FLAGS",
    "INTERNALDATE",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.SIZE",
    "RFC822.TEXT",
    "BODYSTRUCTURE",
    "UID",
    "MODSEQ",
    "SAVEDATE",
    "EMAILID",
    "THREADID",
}
_FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTION_TEXTS = {"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"}


def _p_section(p: _P, binary: bool) -> Section:
    p.char(b"[")
    if p.maybe_char(b"]"):
        return Section()
    word = p.match(_SECTION_WORD, "section").decode("ascii").upper()
    parts: list[int] = []
    comps = word.split(".")
    i = 0
    while i < len(comps) and comps[i].isdigit():
        if comps[i].startswith("0"):
            raise _Bad("Invalid section part")
        v = int(comps[i])
        if v > _MAX_NUMBER:
            raise _Bad("Section part out of range")
        parts.append(v)
        i += 1
    text = ".".join(comps[i:]) or None
    headers: tuple[str, ...] = ()
    if binary and text is not None:
        # RFC 3516 §4.2: section-binary = "[" [section-part] "]"
        raise _Bad("BINARY takes only a part number")
    if text is not None:
        if text not in _SECTION_TEXTS or (text == "MIME" and not parts):
            raise _Bad("Invalid section")
        if text.startswith("HEADER.FIELDS"):
            p.sp()
            p.open()
            names = []
            while True:
                names.append(p.astring().upper())
                if p.maybe_char(b")"):
                    break
                p.sp()
            p.depth -= 1
            headers = tuple(names)
    elif not parts:
        raise _Bad("Invalid section")
    p.char(b"]")
    return Section(tuple(parts), text, headers)


def _p_partial(p: _P) -> Partial | None:
    # RFC 9051 §9 partial = "<" number64 "." nz-number64 ">"
    if not p.maybe_char(b"<"):
        return None
    start = p.number(big=True)
    p.char(b".")
    length = p.number(nz=True, big=True)
    p.char(b">")
    return Partial(start, length)


def _p_fetch_att(p: _P) -> FetchAttr:
    name = p.match(_FETCH_NAME, "fetch attribute").decode("ascii").upper()
    if name in _FETCH_SIMPLE:
        return FetchAttr(name)
    if name in ("BODY", "BODY.PEEK"):
        if p.peek() != 0x5B:
            if name == "BODY":
                return FetchAttr("BODY")
            raise _Bad("BODY.PEEK needs a section")
        section = _p_section(p, False)
        return FetchAttr("BODY", section, _p_partial(p), name == "BODY.PEEK")
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        # RFC 3516 §4.2 / RFC 9051 §6.4.5
        if p.peek() != 0x5B:
            raise _Bad(f"{name} needs a section")
        section = _p_section(p, True)
        if name == "BINARY.SIZE":
            return FetchAttr("BINARY.SIZE", section)
        return FetchAttr("BINARY", section, _p_partial(p), name == "BINARY.PEEK")
    raise _Bad(f"Unknown fetch attribute {name[:32]}")


def _p_fetch(uid: bool):
    def parse(p: _P, tag: str) -> Fetch:
        p.sp()
        seqset = p.sequence_set()
        p.sp()
        macro = None
        if p.peek() == 0x28:
            p.open()
            attrs = [_p_fetch_att(p)]
            while not p.maybe_char(b")"):
                p.sp()
                attrs.append(_p_fetch_att(p))
            p.depth -= 1
        else:
            save = p.pos
            word = p.match(_FETCH_NAME, "fetch attribute").decode("ascii").upper()
            if word in _FETCH_MACROS and p.peek() in (-1, 0x20):
                macro = word
                attrs = [FetchAttr(n) for n in _FETCH_MACROS[word]]
            else:
                p.pos = save
                attrs = [_p_fetch_att(p)]
        if uid and not any(a.name == "UID" for a in attrs):
            # RFC 9051 §6.4.9: UID FETCH always returns the UID.
            attrs.append(FetchAttr("UID"))
        changedsince = None
        vanished = False
        if p.maybe_sp():
            # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4 CHANGEDSINCE, §3.2.6 VANISHED
            p.open()
            while True:
                mod = p.keyword()
                if mod == "CHANGEDSINCE" and changedsince is None:
                    p.sp()
                    changedsince = p.number(nz=True, big=True)
                elif mod == "VANISHED" and uid and not vanished:
                    vanished = True
                else:
                    raise _Bad(f"Invalid fetch modifier {mod[:32]}")
                if p.maybe_char(b")"):
                    p.depth -= 1
                    break
                p.sp()
            if vanished and changedsince is None:
                raise _Bad("VANISHED requires CHANGEDSINCE")  # RFC 7162 §3.2.6
        return Fetch(
            tag=tag,
            uid=uid,
            sequence_set=seqset,
            attrs=tuple(attrs),
            macro=macro,
            changedsince=changedsince,
            vanished=vanished,
        )

    return parse


def _p_store(uid: bool):
    def parse(p: _P, tag: str) -> Store:
        # RFC 9051 §6.4.6; RFC 7162 §3.1.3 UNCHANGEDSINCE store modifier
        p.sp()
        seqset = p.sequence_set()
        p.sp()
        unchanged = None
        if p.peek() == 0x28:
            p.open()
            while True:
                mod = p.keyword()
                if mod != "UNCHANGEDSINCE" or unchanged is not None:
                    raise _Bad(f"Invalid store modifier {mod[:32]}")
                p.sp()
                unchanged = p.number(big=True)
                if p.maybe_char(b")"):
                    p.depth -= 1
                    break
                p.sp()
            p.sp()
        item = p.match(_STORE_ITEM, "store item").decode("ascii").upper()
        mode = ""
        if item[:1] in ("+", "-"):
            mode, item = item[0], item[1:]
        if item not in ("FLAGS", "FLAGS.SILENT"):
            raise _Bad("Expected FLAGS, +FLAGS or -FLAGS")
        p.sp()
        if p.peek() == 0x28:
            flags = p.flag_list()
        else:
            fl = [p.flag()]
            while p.maybe_sp():
                fl.append(p.flag())
            flags = tuple(fl)
        return Store(
            tag=tag,
            uid=uid,
            sequence_set=seqset,
            mode=mode,
            silent=item.endswith(".SILENT"),
            flags=flags,
            unchangedsince=unchanged,
        )

    return parse


def _p_copy(cls, uid: bool):
    def parse(p: _P, tag: str):
        p.sp()
        seqset = p.sequence_set()
        p.sp()
        return cls(tag=tag, uid=uid, sequence_set=seqset, mailbox=p.mailbox())

    return parse


def _p_uid(p: _P, tag: str) -> Command:
    # RFC 9051 §6.4.9; RFC 4315 §2.1 UID EXPUNGE; RFC 6851 UID MOVE
    p.sp()
    sub = p.keyword()
    if sub == "EXPUNGE":
        p.sp()
        return Expunge(tag=tag, uid_set=p.sequence_set())
    fn = _UID_COMMANDS.get(sub)
    if fn is None:
        raise _Bad(f"Unknown UID command {sub[:32]}")
    return fn(p, tag)


def _p_id(p: _P, tag: str) -> Id:
    # RFC 2971 §4: "ID" SP id_params_list; id_params_list = "(" #(string SP nstring) ")" / nil
    p.sp()
    if p.maybe_word(b"NIL"):
        return Id(tag=tag, params=None)
    p.open()
    params = []
    if not p.maybe_char(b")"):
        while True:
            k = p.string()
            p.sp()
            v = p.nstring()
            if len(k) > 30 or (v is not None and len(v) > 1024):
                raise _Bad("ID field too long")  # RFC 2971 §3.3
            params.append((k, v))
            if len(params) > 30:
                raise _Bad("Too many ID fields")  # RFC 2971 §3.3
            if p.maybe_char(b")"):
                break
            p.sp()
    p.depth -= 1
    return Id(tag=tag, params=tuple(params))


def _p_getquota(p: _P, tag: str) -> GetQuota:
    p.sp()
    return GetQuota(tag=tag, root=p.astring())


def _p_getquotaroot(p: _P, tag: str) -> GetQuotaRoot:
    p.sp()
    return GetQuotaRoot(tag=tag, mailbox=p.mailbox())


def _p_setquota(p: _P, tag: str) -> SetQuota:
    # RFC 9208 §4.4 / §7: "SETQUOTA" SP quota-root-name SP setquota-list
    p.sp()
    root = p.astring()
    p.sp()
    p.open()
    limits = []
    if not p.maybe_char(b")"):
        while True:
            res = p.keyword()
            p.sp()
            limits.append((res, p.number(big=True)))
            if p.maybe_char(b")"):
                break
            p.sp()
    p.depth -= 1
    return SetQuota(tag=tag, root=root, limits=tuple(limits))


_UID_COMMANDS = {
    "FETCH": _p_fetch(True),
    "STORE": _p_store(True),
    "SEARCH": _p_search(True),
    "COPY": _p_copy(Copy, True),
    "MOVE": _p_copy(Move, True),
}

_COMMANDS = {
    "CAPABILITY": _no_args(Capability),
    "NOOP": _no_args(Noop),
    "LOGOUT": _no_args(Logout),
    "STARTTLS": _no_args(StartTLS),
    "AUTHENTICATE": _p_authenticate,
    "LOGIN": _p_login,
    "ENABLE": _p_enable,
    "SELECT": _p_select(False),
    "EXAMINE": _p_select(True),
    "CREATE": _p_create,
    "DELETE": _one_mailbox(Delete),
    "RENAME": _p_rename,
    "SUBSCRIBE": _one_mailbox(Subscribe),
    "UNSUBSCRIBE": _one_mailbox(Unsubscribe),
    "LIST": _p_list,
    "LSUB": _p_lsub,
    "NAMESPACE": _no_args(Namespace),
    "STATUS": _p_status,
    "APPEND": _p_append,
    "IDLE": _no_args(Idle),
    "CHECK": _no_args(Check),
    "CLOSE": _no_args(Close),
    "UNSELECT": _no_args(Unselect),
    "EXPUNGE": _p_expunge,
    "SEARCH": _p_search(False),
    "FETCH": _p_fetch(False),
    "STORE": _p_store(False),
    "COPY": _p_copy(Copy, False),
    "MOVE": _p_copy(Move, False),
    "UID": _p_uid,
    "ID": _p_id,
    "GETQUOTA": _p_getquota,
    "GETQUOTAROOT": _p_getquotaroot,
    "SETQUOTA": _p_setquota,
}

_KNOWN_COMMANDS = frozenset(_COMMANDS) | {"UID " + k for k in _UID_COMMANDS} | {"UID EXPUNGE"}
