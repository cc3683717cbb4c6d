"""ManageSieve wire format (RFC 5804 §4), sans-I/O: bytes in, token lists out; responses encoded.

A command line is atoms, numbers, quoted strings and literals (``{n+}`` CRLF n octets, RFC 5804 §4
``literal-c2s``; ``{n}`` is accepted as well, with no continuation needed) ending in CRLF. The reader
checks sizes before buffering: a line longer than ``max_line`` or a literal larger than ``max_literal``
becomes a :class:`BadLine` and its bytes are skipped, so the connection stays usable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 8192


@dataclass(frozen=True, slots=True)
class Atom:
    value: str  # upper-cased command name or other atom


@dataclass(frozen=True, slots=True)
class Line:
    """One client line: its tokens (Atom, str for strings, int for numbers)."""

    tokens: tuple[Atom | str | int, ...]


@dataclass(frozen=True, slots=True)
class BadLine:
    message: str
    code: str = ""


_LITERAL = re.compile(rb"\{([0-9]{1,10})(\+?)\}\r?\n")
_ATOM = re.compile(rb"[A-Za-z][A-Za-z0-9_.-]*")
_NUMBER = re.compile(rb"[0-9]{1,10}")


class CommandReader:
    def __init__(self, *, max_line: int = MAX_LINE, max_literal: int = 1 << 20) -> None:
        self.buf = bytearray()
        self.max_line = max_line
        self.max_literal = max_literal
        self._skip = 0  # bytes of an oversized literal still to drop
        self._skip_line = False  # then drop the rest of that line
        self._skip_reason: BadLine | None = None

    def feed(self, data: bytes) -> list[Line | BadLine]:
        self.buf += data
        out: list[Line | BadLine] = []
        while True:
            if self._skip:
                n = min(self._skip, len(self.buf))
                del self.buf[:n]
                self._skip -= n
                if self._skip:
                    return out
            if self._skip_line:
                nl = self.buf.find(b"\n")
                if nl < 0:
                    self.buf.clear()
                    return out
                del self.buf[: nl + 1]
                self._skip_line = False
                if self._skip_reason is not None:
                    out.append(self._skip_reason)
                    self._skip_reason = None
                continue
            item = self._parse()
            if item is None:
                if self._skip or self._skip_line:
                    continue  # an oversized literal or a bad line: drop what is buffered of it
                too_long = len(self.buf) > self.max_line and b"\n" not in self.buf and b"{" not in self.buf[-16:]
                if too_long or len(self.buf) > self.max_line + self.max_literal:  # one command's most
                    self.buf.clear()
                    self._skip_line = True
                    self._skip_reason = BadLine("line too long")
                return out
            out.append(item)

    def _parse(self) -> Line | BadLine | None:
        """One complete line from the buffer (consumed), or None when more bytes are needed."""
        b = self.buf
        pos = 0
        tokens: list[Atom | str | int] = []
        while True:
            if pos >= len(b):
                return None
            c = b[pos]
            if c == 0x20:
                pos += 1
                continue
            if c == 0x0D or c == 0x0A:
                if c == 0x0D:
                    if pos + 1 >= len(b):
                        return None
                    if b[pos + 1] != 0x0A:
                        return self._bad(pos, "CR without LF")
                    pos += 1
                del b[: pos + 1]
                return Line(tuple(tokens))
            if c == 0x22:  # quoted string, RFC 5804 §4: \\ and \" escapes, no CR/LF
                out = bytearray()
                i = pos + 1
                while True:
                    if i >= len(b):
                        if i - pos > self.max_line:
                            return self._bad(pos, "quoted string too long")
                        return None
                    ch = b[i]
                    if ch == 0x5C:
                        if i + 1 >= len(b):
                            return None
                        out.append(b[i + 1])
                        i += 2
                        continue
                    if ch == 0x22:
                        break
                    if ch in (0x0D, 0x0A):
                        return self._bad(pos, "line break in a quoted string")
                    out.append(ch)
                    i += 1
                try:
                    tokens.append(out.decode("utf-8"))
                except UnicodeDecodeError:
                    return self._bad(i, "string is not UTF-8")
                pos = i + 1
                continue
            if c == 0x7B:  # literal
                m = _LITERAL.match(b, pos)
                if m is None:
                    if b.find(b"\n", pos) < 0 and len(b) - pos < 16:
                        return None
                    return self._bad(pos, "bad literal")
                n = int(m.group(1))
                if n > self.max_literal:
                    # drop its bytes and the rest of the line, then answer NO (RFC 5804 §2.6 QUOTA/MAXSIZE)
                    del b[: m.end()]
                    self._skip = n
                    self._skip_line = True
                    self._skip_reason = BadLine(f"literal larger than {self.max_literal} bytes", "QUOTA/MAXSIZE")
                    return None
                if len(b) < m.end() + n:
                    return None
                data = bytes(b[m.end() : m.end() + n])
                try:
                    tokens.append(data.decode("utf-8"))
                except UnicodeDecodeError:
                    return self._bad(m.end() + n, "string is not UTF-8")
                pos = m.end() + n
                continue
            m = _NUMBER.match(b, pos)
            if m is not None and (m.end() >= len(b) or b[m.end()] in b" \r\n"):
                if m.end() >= len(b):
                    return None
                tokens.append(int(m.group()))
                pos = m.end()
                continue
            m = _ATOM.match(b, pos)
            if m is not None:
                if m.end() >= len(b):
                    return None
                tokens.append(Atom(m.group().decode("ascii").upper()))
                pos = m.end()
                continue
            return self._bad(pos, "unexpected character")

    def _bad(self, pos: int, message: str) -> BadLine | None:
        nl = self.buf.find(b"\n", pos)
        if nl < 0:
            del self.buf[:pos]
            self._skip_line = True
            self._skip_reason = BadLine(message)
            return None
        del self.buf[: nl + 1]
        return BadLine(message)


# ---------------------------------------------------------------- responses (RFC 5804 §1.2, §4)
def string(s: str) -> bytes:
    """A quoted string when it can be one, else a literal."""
    data = s.encode("utf-8")
    if len(data) <= 1024 and not any(ch in data for ch in b'"\\\r\n\x00'):
        return b'"' + data + b'"'
    return b"{%d}\r\n" % len(data) + data


def response(kind: str, text: str = "", code: str = "") -> bytes:
    """``OK``/``NO``/``BYE`` [SP "(" code ")"] [SP string] CRLF."""
    out = kind.encode("ascii")
    if code:
        out += b" (" + code.encode("utf-8") + b")"
    if text:
        out += b" " + string(text)
    return out + b"\r\n"


def capability_lines(caps: list[tuple[str, str | None]]) -> bytes:
    return b"".join(string(k) + (b" " + string(v) if v is not None else b"") + b"\r\n" for k, v in caps)
