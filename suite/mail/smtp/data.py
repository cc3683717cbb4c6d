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


class DataDecoder:
    """Incremental DATA decoder; see the module docstring."""

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
        self._line_start = (
            True  # DATA begins at the start of a line (RFC 5321 §4.1.1.4)
        )
        self._line_len = 0
        self._carry = (
            b""  # undecided bytes: ".", ".\r" at a line start, or a trailing "\r"
        )

    def _fail(self, err: DataError) -> None:
        if self.error is None:
            self.error = err

    def _account(self, n: int) -> None:
        self.size += n
        if self.max_size is not None and self.size > self.max_size:
            self._fail(DataError.TOO_BIG)

    def feed(self, data: bytes) -> DataChunk:
        if self.done:
            raise RuntimeError("DataDecoder already finished")
        buf = self._carry + data if self._carry else bytes(data)
        self._carry = b""
        out = bytearray()
        n = len(buf)
        i = 0
        while i < n:
            if self._line_start:
                if buf[i] == DOT:
                    head = buf[i : i + 3]
                    if head == b".\r\n":
                        # RFC 5321 §4.1.1.4: <CRLF>.<CRLF> ends the mail data.
                        self.done = True
                        return DataChunk(
                            bytes(out) if self.error is None else b"",
                            True,
                            buf[i + 3 :],
                        )
                    if len(head) < 3 and b".\r\n".startswith(head):
                        self._carry = head  # need more input to decide
                        break
                    # RFC 5321 §4.5.2: a leading dot is removed (transparency).
                    i += 1
                self._line_start = False
                if i >= n:
                    break
            j = buf.find(b"\n", i)
            if j < 0:
                seg_end = n
                if buf[n - 1] == CR:
                    # The CR may be followed by LF in the next chunk.
                    self._carry = b"\r"
                    seg_end = n - 1
                seg = buf[i:seg_end]
                if b"\r" in seg:
                    self._fail(
                        DataError.BARE_CR_LF
                    )  # RFC 5321 §2.3.8: CR only before LF
                self._line_len += len(seg)
                self._account(len(seg))
                if self.error is None:
                    out += seg
                i = n
                break
            seg = buf[i : j + 1]
            crs = seg.count(b"\r")
            if j > i and buf[j - 1] == CR:
                if crs != 1:
                    self._fail(DataError.BARE_CR_LF)
                # A CRLF line ending: the next byte starts a new line.
                self._line_start = True
            else:
                # RFC 5321 §2.3.8: LF only as part of CRLF.  A bare LF does not
                # start a line, so "\n.\r\n" can never end the data.
                self._fail(DataError.BARE_CR_LF)
            self._line_len += len(seg)
            if (
                self.max_line_length is not None
                and self._line_len > self.max_line_length
            ):
                self._fail(DataError.LINE_TOO_LONG)
            self._line_len = 0
            self._account(len(seg))
            if self.error is None:
                out += seg
            i = j + 1
        if self.max_line_length is not None and self._line_len > self.max_line_length:
            self._fail(DataError.LINE_TOO_LONG)
        return DataChunk(bytes(out) if self.error is None else b"", False, b"")
