"""IMAP ENVELOPE (RFC 9051 §7.5.2) from a header block."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .address import Address, parse_addresses
from .imapquote import nstring, nstring_nolf, string_for_humans

if TYPE_CHECKING:
    from .structure import Header, MessageStructure

_STR_FIELDS = {b"date": 0, b"subject": 1, b"in-reply-to": 8, b"message-id": 9}
_ADDR_FIELDS = {b"from": 2, b"sender": 3, b"reply-to": 4, b"to": 5, b"cc": 6, b"bcc": 7}


def _cstr(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def write_addresses(addrs: list[Address] | None) -> bytes:
    # RFC 9051 §7.5.2: list of (name adl mailbox host); groups as
    # (NIL NIL "group" NIL) ... (NIL NIL NIL NIL)
    if not addrs:
        return b"NIL"
    out = bytearray(b"(")
    for a in addrs:
        out += b"("
        out += b"NIL" if a.name is None else string_for_humans(_cstr(a.name))
        out += b" " + nstring(a.route) + b" " + nstring(a.mailbox) + b" " + nstring(a.domain) + b")"
    out += b")"
    return bytes(out)


def envelope_from_headers(headers: list[Header]) -> bytes:
    vals: list = [None] * 10
    for h in headers:
        ln = h.name.lower()
        i = _STR_FIELDS.get(ln)
        if i is not None:
            vals[i] = h.value
            continue
        i = _ADDR_FIELDS.get(ln)
        if i is not None:
            vals[i] = parse_addresses(h.value, fill_missing=True)
    date, subject, frm, sender, reply_to, to, cc, bcc, irt, mid = vals
    parts = [
        nstring_nolf(date),
        b"NIL" if subject is None else string_for_humans(_cstr(subject)),
        write_addresses(frm),
        # RFC 9051 §7.5.2: sender and reply-to default to from
        write_addresses(sender or frm),
        write_addresses(reply_to or frm),
        write_addresses(to),
        write_addresses(cc),
        write_addresses(bcc),
        nstring_nolf(irt),
        nstring_nolf(mid),
    ]
    return b" ".join(parts)


def envelope(structure: MessageStructure, raw: bytes | None = None) -> bytes:
    """The parenthesised ENVELOPE of the message (cached in the structure)."""
    env = structure.root.envelope
    if env is None:  # pragma: no cover - parse_structure always sets it
        env = b"NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL"
    return b"(" + env + b")"
