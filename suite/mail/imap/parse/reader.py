"""Sans-I/O IMAP command reader: splits client bytes into lines and literals.

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

import enum
import re
from collections.abc import Iterator
from typing import Literal

from ..commands import (
    AppendData,
    Event,
    IdleDone,
    NeedContinuation,
    ParseError,
    RawLine,
)
from ..limits import ImapLimits
from .grammar import _KNOWN_COMMANDS, parse_command
from .lexer import _ATOM, _HUGE_NONSYNC_TAIL, _LITERAL_TAIL, _TAG, _literal_size

__all__ = ["CommandReader"]

# --------------------------------------------------------------------------- reader


class _Again(enum.Enum):
    """Internal: "nothing to hand out yet, look again" (an ignored empty line, a skipped one)."""

    AGAIN = 0


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
                if ev is _Again.AGAIN:
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
                if ev is _Again.AGAIN:
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

    def _find_line(self) -> tuple[int, int] | Literal[False] | None:
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

    def _skip_line(self) -> Event | _Again | None:
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
            return _Again.AGAIN
        # A synchronising literal (client waits for "+", never sent) or plain end of
        # line: the command is over.
        self._state = _S_LINE
        return _Again.AGAIN

    def _read_line(self) -> Event | _Again | None:
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
            return _Again.AGAIN  # RFC 9051 does not define empty lines; ignore them
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
        return _Again.AGAIN

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
