"""Spool files: streamed message storage with its size, plus header edits.

Messages never live in memory as a whole: DATA is written here chunk by chunk,
and header changes (Authentication-Results, Message-ID, Date) rewrite only the
header block while the body is copied through in fixed-size chunks.
"""

from __future__ import annotations

import email.utils
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import BinaryIO

from suite.mail.smtp.interfaces import SpooledMessage

COPY_CHUNK = 1 << 20
MAX_HEADER_BLOCK = 1 << 20  # larger header blocks are refused as malformed


class MemoryBudget:
    """Bytes of message content the sessions of one server may hold in memory beyond their own
    ``memory_limit``, all together (taken without waiting: a writer that finds no room spills to
    its file instead)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total

    def take(self, n: int) -> bool:
        if n > self.free:
            return False
        self.free -= n
        return True

    def give(self, n: int) -> None:
        self.free += n


class SpoolWriter:
    """Writes one message to a temporary file in ``spool_dir`` (which the server created).

    With ``memory_limit`` the first bytes stay in memory and a file is made only once the message
    grows past it: a small message then costs no file to create, read back and unlink. With a
    ``budget`` too, a message up to ``budget_limit`` bytes stays in memory as long as the shared
    budget has room for what it holds past ``memory_limit``; :meth:`release` gives that back (the
    bytes are then no longer needed), and so do a spill to the file and :meth:`discard`.
    """

    def __init__(
        self,
        spool_dir: Path,
        prefix: str = "smtp-",
        *,
        memory_limit: int = 0,
        budget: MemoryBudget | None = None,
        budget_limit: int = 0,
    ) -> None:
        self._dir = spool_dir
        self._prefix = prefix
        self._memory_limit = memory_limit
        self._budget = budget
        self._budget_limit = budget_limit if budget is not None else 0
        self._taken = 0  # bytes of the budget this message holds
        # the chunks as written (joined once at the end: no growing buffer copied at each resize)
        self._chunks: list[bytes] | None = [] if memory_limit > 0 else None
        self.path: Path | None = None
        self._file: BinaryIO | None = None
        self.size = 0
        self._closed = False
        if self._chunks is None:
            self._open()

    def _open(self) -> None:
        try:
            fd, name = tempfile.mkstemp(dir=self._dir, prefix=self._prefix, suffix=".eml")
        except FileNotFoundError:  # removed while running: make it again
            self._dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._dir, prefix=self._prefix, suffix=".eml")
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=256 * 1024)
        chunks, self._chunks = self._chunks, None
        self.release()
        for chunk in chunks or ():
            self._file.write(chunk)

    def _keep(self, n: int) -> bool:
        """Whether ``n`` more bytes (``self.size`` counts them already) may stay in memory."""
        if self.size <= self._memory_limit:
            return True
        if self.size > self._budget_limit or self._budget is None:
            return False
        extra = min(n, self.size - self._memory_limit)  # the part past the free allowance
        if not self._budget.take(extra):
            return False
        self._taken += extra
        return True

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._chunks is not None:
            if self._keep(len(data)):
                self._chunks.append(bytes(data))
                return
            self._open()  # past the limit: spill what is held, then stream to the file
        assert self._file is not None
        self._file.write(data)

    def finish(self) -> SpooledMessage:
        self._closed = True
        if self._chunks is not None:
            chunks = self._chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self._chunks = [data]
            return SpooledMessage(None, self.size, data=data)
        assert self._file is not None
        self._file.close()
        return SpooledMessage(self.path, self.size)

    def release(self) -> None:
        """Give back the share of the memory budget (the message's bytes are no longer needed)."""
        if self._taken and self._budget is not None:
            self._budget.give(self._taken)
        self._taken = 0

    def discard(self) -> None:
        self._chunks = None
        self.release()
        if self._file is not None and not self._closed:
            self._file.close()
        self._closed = True
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def discard(message: SpooledMessage | None) -> None:
    if message is not None and message.path is not None:
        message.path.unlink(missing_ok=True)


# --- Received (RFC 5321 §4.4, RFC 3848, RFC 6531 §3.7.3) --------------------------------------
_UNSAFE = re.compile(r"[^A-Za-z0-9.\-:_\[\]]")


def _clean_token(text: str, limit: int = 255) -> str:
    text = _UNSAFE.sub("?", text)[:limit]
    return text or "unknown"


def protocol_name(*, esmtp: bool, tls: bool, authenticated: bool, smtputf8: bool) -> str:
    if not esmtp:
        return "SMTP"
    # RFC 3848 §2 (ESMTP[S][A]) and RFC 6531 §3.7.3 (UTF8SMTP[S][A]).
    base = "UTF8SMTP" if smtputf8 else "ESMTP"
    return base + ("S" if tls else "") + ("A" if authenticated else "")


def received_header(
    *,
    helo: str,
    client_ip: str,
    by_host: str,
    protocol: str,
    queue_id: str,
    recipient: str | None,
    tls_info: str | None,
    when: datetime | None = None,
) -> bytes:
    """Build a folded ``Received:`` header line (with CRLF) as bytes."""
    ip = f"IPv6:{client_ip}" if ":" in client_ip else client_ip
    when = when or datetime.now(UTC)
    lines = [
        f"Received: from {_clean_token(helo)} ([{ip}])",
        f"\tby {_clean_token(by_host)} (Suite) with {protocol} id {queue_id}",
    ]
    if tls_info:
        lines.append(f"\t({_UNSAFE_COMMENT.sub('?', tls_info)})")
    # "for" only with a single recipient, so that Bcc recipients are not disclosed.
    tail = f"\tfor <{recipient}>; " if recipient is not None else "\t"
    lines.append(tail + email.utils.format_datetime(when))
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "replace")


_UNSAFE_COMMENT = re.compile(r"[^\x20-\x27\x2a-\x5b\x5d-\x7e]")


# --- Header block access and rewriting --------------------------------------------------------
class HeaderBlockError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class HeaderBlock:
    raw: bytes  # header fields, each ending in CRLF, without the empty separator line
    body_offset: int  # file offset where the body starts (after the empty line), or file size
    has_separator: bool

    def parse(self) -> EmailMessage:
        return BytesHeaderParser(policy=policy.default).parsebytes(self.raw + b"\r\n")


def read_header_block(source: Path | bytes, limit: int = MAX_HEADER_BLOCK) -> HeaderBlock:
    """The header block (RFC 5322 §2.1) of a message in a file, read without the body, or in memory."""
    if isinstance(source, (bytes, bytearray)):
        if source.startswith(b"\r\n"):
            return HeaderBlock(b"", 2, True)
        idx = source.find(b"\r\n\r\n")
        if idx >= 0:
            return HeaderBlock(bytes(source[: idx + 2]), idx + 4, True)
        if len(source) > limit:
            raise HeaderBlockError("header block too large")
        return HeaderBlock(bytes(source), len(source), False)
    buf = bytearray()
    with open(source, "rb") as f:
        while True:
            if buf.startswith(b"\r\n"):
                return HeaderBlock(b"", 2, True)
            idx = buf.find(b"\r\n\r\n")
            if idx >= 0:
                return HeaderBlock(bytes(buf[: idx + 2]), idx + 4, True)
            if len(buf) > limit:
                raise HeaderBlockError("header block too large")
            chunk = f.read(64 * 1024)
            if not chunk:
                # No body: the whole message is a header block.
                return HeaderBlock(bytes(buf), len(buf), False)
            buf += chunk


def rewrite(
    source: SpooledMessage,
    spool_dir: Path,
    *,
    prepend: bytes = b"",
    append_headers: bytes = b"",
    block: HeaderBlock | None = None,
) -> SpooledMessage:
    """Write a new spool file: ``prepend`` + header block + ``append_headers`` + body.

    Runs blocking file I/O: call it in a thread.  The body is copied in
    ``COPY_CHUNK`` pieces; the size of the result is counted on the way.
    """
    if source.data is not None:  # a message held in memory stays there
        data = source.data
        if append_headers:
            block = block or read_header_block(data)
            data = block.raw + append_headers + b"\r\n" + data[block.body_offset :]
        data = prepend + data
        return SpooledMessage(None, len(data), data=data)
    assert source.path is not None
    writer = SpoolWriter(spool_dir)
    try:
        with open(source.path, "rb") as src:
            writer.write(prepend)
            if append_headers:
                if block is None:
                    block = read_header_block(source.path)
                writer.write(block.raw)
                writer.write(append_headers)
                writer.write(b"\r\n")
                src.seek(block.body_offset)
            while chunk := src.read(COPY_CHUNK):
                writer.write(chunk)
        return writer.finish()
    except BaseException:
        writer.discard()
        raise


def missing_submission_headers(message: EmailMessage, hostname: str, now: datetime | None = None) -> bytes:
    """Message-ID and Date for a submitted message that lacks them (RFC 6409 §8.2, §8.3)."""
    extra = b""
    if message.get("Message-ID") is None:
        extra += f"Message-ID: {email.utils.make_msgid(domain=hostname)}\r\n".encode()
    if message.get("Date") is None:
        extra += f"Date: {email.utils.format_datetime(now or datetime.now(UTC))}\r\n".encode()
    return extra
