"""Sans-I/O decoder for the SMTP DATA stream.

Bytes from the wire go in (in chunks of any size), unstuffed message bytes come
out.  The decoder finds the end-of-data marker, performs dot-unstuffing
(RFC 5321 §4.5.2) across chunk boundaries, and detects the SMTP smuggling
primitives: a bare CR or a bare LF anywhere in the data (RFC 5321 §2.3.8).

Only ``<CRLF>.<CRLF>`` ends the data (RFC 5321 §4.1.1.4); ``<LF>.<LF>``,
``<CRLF>.<LF>``, ``<CR>.<CR>`` and ``<LF>.<CRLF>`` never do.  Once an error is
seen the decoder stops emitting bytes but keeps scanning for the real
terminator so that the session stays in sync with the client.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

CR = 0x0D
LF = 0x0A
DOT = 0x2E

# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including the CRLF.
RFC5321_MAX_LINE = 1000


class DataError(enum.Enum):
    BARE_CR_LF = "bare-cr-lf"
    TOO_BIG = "too-big"
    LINE_TOO_LONG = "line-too-long"


@dataclass(frozen=True, slots=True)
class DataChunk:
    """Result of one ``DataDecoder.feed`` call."""

    payload: bytes  # unstuffed message bytes to store (empty once an error is set)
    done: bool  # the terminating <CRLF>.<CRLF> was consumed
    leftover: bytes  # bytes after the terminator (pipelined commands), only when done


TERMINATOR = b"\r\n.\r\n"

# Two byte patterns by regular expression: SRE's search for a literal first byte is about twice as
# fast over a megabyte as ``bytes.__contains__`` / ``bytes.count`` of a two-byte string.
_LF_DOT = re.compile(rb"\n\.")
_BARE_CR = re.compile(rb"\r(?!\n)")


def _line_lengths(data: bytes, carried: int, limit: int) -> tuple[int, bool]:
    """(length of the unfinished last line, whether any line of ``data`` exceeds ``limit`` octets).

    ``carried`` octets of the first line came in earlier chunks; lengths count the LF.  Lines in the
    middle are checked without visiting each one: a line longer than ``limit`` holds a run of at
    least ``limit`` octets without LF, which covers one whole window of ``(limit + 1) // 2`` octets
    on a fixed grid, so only LF-free windows (never met in ordinary text) need a closer look.
    """
    first = data.find(b"\n")
    if first < 0:
        carried += len(data)
        return carried, carried > limit
    last = data.rfind(b"\n")
    rest = len(data) - last - 1
    if carried + first + 1 > limit or rest > limit:
        return rest, True
    step = max((limit + 1) // 2, 1)
    find = data.find
    for j in range(first + 1, last - step + 1, step):
        if find(b"\n", j, j + step) < 0:
            start = data.rfind(b"\n", 0, j) + 1
            if find(b"\n", j + step) - start + 1 > limit:
                return rest, True
    return rest, False


class DataDecoder:
    """Incremental DATA decoder; see the module docstring.

    Works on whole chunks with ``bytes`` methods (find, replace, count, split) rather than line by
    line, so a 64 KiB read costs a handful of C-level passes. Invariants between calls:

    * ``_tail``: the last (up to) four raw bytes already consumed — context for a terminator that
      straddles two reads and for a dot at the start of a line.  It starts as the virtual CRLF that
      precedes the first line (DATA begins at the start of a line, RFC 5321 §4.1.1.4).
    * ``_carry``: a trailing CR held back until the next byte tells whether it starts a CRLF, so a
      consumed region never ends in CR.
    """

    def __init__(
        self,
        max_size: int | None = None,
        max_line_length: int | None = RFC5321_MAX_LINE,
    ) -> None:
        self.max_size = max_size
        self.max_line_length = max_line_length
        self.size = 0  # unstuffed octets seen, stored or not
        self.error: DataError | None = None
        self.done = False
        self._tail = b"\r\n"
        self._line_len = 0  # unstuffed octets of the current, unfinished line
        self._carry = b""

    def _fail(self, err: DataError) -> None:
        if self.error is None:
            self.error = err

    def _consume(self, region: bytes, dots: bool) -> bytes:
        """Unstuff and check ``region`` (raw bytes following ``_tail``, not ending in CR);
        ``dots``: some line of it may start with a dot."""
        tail = self._tail
        if not region:
            return b""
        if dots:
            # RFC 5321 §4.5.2: a dot at the start of a line is removed (transparency).  The tail is
            # unstuffed too so that a match inside it is cut off again with it.
            out = (tail + region).replace(b"\r\n.", b"\r\n")[len(tail.replace(b"\r\n.", b"\r\n")) :]
        else:
            out = region
        self._tail = (tail + region)[-4:] if len(region) < 4 else region[-4:]
        if self.error is None:
            # RFC 5321 §2.3.8: CR and LF only as a CRLF pair.  Removing a dot after CRLF neither
            # makes nor breaks a pair, so the unstuffed bytes are checked; the region never ends in
            # CR and the tail never ends in CR, so every pair lies inside ``out``.  Every CR
            # followed by a LF and as many CRs as LFs: then every LF follows a CR too.
            cr = out.count(b"\r")
            if cr != out.count(b"\n") or (cr and _BARE_CR.search(out) is not None):
                self._fail(DataError.BARE_CR_LF)
        limit = self.max_line_length
        if limit is not None and self.error is None:
            # RFC 5321 §4.5.3.1.6: at most ``limit`` octets per line, CRLF included.
            self._line_len, too_long = _line_lengths(out, self._line_len, limit)
            if too_long:
                self._fail(DataError.LINE_TOO_LONG)
        self.size += len(out)
        if self.max_size is not None and self.size > self.max_size:
            self._fail(DataError.TOO_BIG)
        return out if self.error is None else b""

    def feed(self, data: bytes) -> DataChunk:
        if self.done:
            raise RuntimeError("DataDecoder already finished")
        buf = self._carry + data if self._carry else bytes(data)
        self._carry = b""
        if not buf:
            return DataChunk(b"", False, b"")
        tail = self._tail
        lt = len(tail)
        # The terminator and every stuffed dot follow a LF, and text seldom has a line starting
        # with a dot: one scan for LF-dot (within the tail, across the seam, in the new bytes)
        # spares the terminator search and the unstuffing for nearly every chunk.
        dots = _LF_DOT.search(buf) is not None or b"\n." in tail + buf[:4]
        if dots:
            # RFC 5321 §4.1.1.4: only <CRLF>.<CRLF> ends the mail data; the CRLF belongs to the
            # last line.  Searching the raw bytes is exact: unstuffing only ever removes the dot of
            # a line start, and a bare LF never starts a line, so no other sequence ends the data.
            k = (tail + buf).find(TERMINATOR)
            if k >= 0:
                payload = self._consume(buf[: max(k + 2 - lt, 0)], True)
                self.done = True
                return DataChunk(payload, True, buf[k + 5 - lt :])
        if buf[-1] == CR:
            self._carry = b"\r"  # may be the CR of a CRLF
            buf = buf[:-1]
        return DataChunk(self._consume(buf, dots), False, b"")
