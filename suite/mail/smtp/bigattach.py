"""Big attachments become share links (issue 14 §3) for mail sent through SMTP submission when the
account turned it on: every attachment part whose decoded content is larger than the threshold is
stored in the sender's files (through the ``AttachmentLinker`` port) and replaced, in place, by a
text/plain part that names the file, its size and the link's expiry. Runs before the message is
queued, delivered locally or DKIM-signed, so the signature covers the rewritten message.

Sans-I/O: ``find_big_parts`` and ``rewrite`` work on bytes and ``email`` objects (policy.default);
the deliverer calls them in a thread and does the storing in between.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from suite.mail.smtp.interfaces import SharedLink

# RFC 5322 §2.1: CRLF line ends on the wire; the rest of policy.default (RFC 2047/2231 names, folding).
WIRE = policy.default.clone(linesep="\r\n")


@dataclass
class BigPart:
    part: EmailMessage
    filename: str
    media_type: str
    data: bytes


def _is_attachment(part: EmailMessage) -> bool:
    # RFC 2183 §2.2: an explicit attachment; or a named part; or anything that is not text (a body
    # part of a multipart/alternative or /related is text/* or an inline image, which is small).
    return part.is_attachment() or part.get_filename() is not None or part.get_content_maintype() != "text"


def find_big_parts(raw: bytes, threshold: int) -> tuple[EmailMessage, list[BigPart]]:
    """Parse ``raw``; the leaf parts of a multipart message that are attachments over ``threshold``
    bytes once decoded (RFC 2045 §6). The top-level body is never one (a message that *is* one file
    has nothing left to send)."""
    msg = BytesParser(policy=WIRE).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    found: list[BigPart] = []
    if not msg.is_multipart():
        return msg, found
    for part in msg.walk():
        if part is msg or part.is_multipart() or part.get_content_maintype() == "message":
            continue
        assert isinstance(part, EmailMessage)
        if not _is_attachment(part):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or len(payload) <= threshold:
            continue
        name = part.get_filename() or f"attachment{len(found) + 1}"
        found.append(BigPart(part, name, part.get_content_type(), payload))
    return msg, found


#: Room for a note part (its header fields, the file name twice, the link) where a big part was.
NOTE_ROOM = 2048


def size_after(raw_size: int, big: list[BigPart]) -> int:
    """At most how many bytes the message has once ``rewrite`` replaced ``big``: without their encoded
    bodies, plus a note each. Lets the deliverer refuse a message that stays too big before any file
    is stored."""
    encoded = 0
    for b in big:
        body = b.part.get_payload()
        encoded += len(body) if isinstance(body, str) else len(b.data)
    return raw_size - encoded + NOTE_ROOM * len(big)


def human_size(n: int) -> str:
    """As the web app writes sizes (web/src/lib/format.js fmtBytes): 1024-based, one decimal below 10."""
    units = ("B", "KB", "MB", "GB", "TB")
    size, i = float(n), 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.1f} {units[i]}" if i and size < 10 else f"{size:.0f} {units[i]}"


def note(filename: str, size: int, link: SharedLink) -> str:
    until = time.strftime("%Y-%m-%d", time.gmtime(link.expires_at))
    return (
        f"The attachment {filename} ({human_size(size)}) was too big to send with this message.\n"
        f"Download it until {until}:\n{link.url}\n"
    )


def rewrite(msg: EmailMessage, replaced: list[tuple[BigPart, SharedLink]]) -> bytes:
    """Replace each big part by its note (the part's headers go, a text/plain body comes) and
    serialise the message again with CRLF line ends."""
    for big, link in replaced:
        part = big.part
        text = note(big.filename, len(big.data), link)
        # 7bit when it can be: the client may not have said 8BITMIME (RFC 6152), the note must pass anyway
        cte = "7bit" if text.isascii() else "quoted-printable"
        part.set_content(text, subtype="plain", charset="utf-8", cte=cte, disposition="inline")
        big.data = b""
    return msg.as_bytes(policy=WIRE)
