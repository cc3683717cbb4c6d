"""Decoded, case-folded text for IMAP SEARCH (RFC 9051 §6.4.4).

Headers are RFC 2047 decoded (and address headers rendered from their parsed
addresses), bodies are Content-Transfer-Encoding and charset decoded to str.
Matching is a case-insensitive substring test on these strings.
"""

from __future__ import annotations

import codecs
import email.header
import email.utils
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from .address import addresses_to_text, parse_addresses
from .decode import decode_part
from .errors import MimeError, UnknownCteError
from .structure import MessageStructure, Part, iter_headers

ADDRESS_HEADERS = {
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"resent-from",
    b"resent-sender",
    b"resent-to",
    b"resent-cc",
    b"resent-bcc",
}


def fold(s: str) -> str:
    """Search normalisation: NFKC + casefold (RFC 9051 §6.4.4 case-insensitive)."""
    return unicodedata.normalize("NFKC", s).casefold()


def _charset_decode(data: bytes, charset: str | None) -> str:
    if charset:
        try:
            codecs.lookup(charset)
            return data.decode(charset, errors="replace")
        except (LookupError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_header_value(value: bytes) -> str:
    """RFC 2047 decoding of an unfolded header value; 8-bit treated as UTF-8."""
    text = value.replace(b"\r", b"").replace(b"\n", b"")
    try:
        s = text.decode("utf-8")
    except UnicodeDecodeError:
        s = text.decode("latin-1")
    if "=?" not in s:
        return s
    try:
        out = []
        for chunk, cs in email.header.decode_header(s):
            if isinstance(chunk, str):
                out.append(chunk)
            else:
                out.append(_charset_decode(chunk, cs))
        return "".join(out)
    except Exception:  # malformed encoded words: keep the raw text
        return s


@dataclass
class SearchText:
    """What the store caches per message for SEARCH."""

    headers: dict[str, list[str]] = field(default_factory=dict)  # lower name -> folded values
    body: str = ""  # folded decoded bodies

    def matches_header(self, name: str, term: str) -> bool:
        # RFC 9051 §6.4.4 HEADER: empty term matches any message with the field
        vals = self.headers.get(name.lower())
        if vals is None:
            return False
        t = fold(term)
        return any(t in v for v in vals)

    def matches_body(self, term: str) -> bool:
        return fold(term) in self.body

    def matches_text(self, term: str) -> bool:
        t = fold(term)
        return t in self.body or any(t in v for vs in self.headers.values() for v in vs)


def _body_text(raw: bytes, p: Part, out: list[str]) -> None:
    if p.is_multipart:
        for c in p.children:
            _body_text(raw, c, out)
        return
    if p.is_message:
        if p.children:
            m = p.children[0]
            for h in iter_headers(raw, m.hdr_start, m.body_start):
                out.append(decode_header_value(h.value))
            _body_text(raw, m, out)
        return
    ctype = (p.ctype if p.ctype is not None else b"text").lower()
    if ctype not in (b"text", b"message"):
        return
    try:
        data = decode_part(raw, p)
    except UnknownCteError:
        return  # cannot be decoded, so nothing to search (as Dovecot)
    except MimeError:
        data = raw[p.body_start : p.body_end]
    cs = p.param("charset")
    out.append(_charset_decode(data, cs.decode("ascii", "replace") if cs else None))


def search_text(raw: bytes, structure: MessageStructure) -> SearchText:
    st = SearchText()
    root = structure.root
    for h in iter_headers(raw, root.hdr_start, root.body_start):
        name = h.name.lower()
        if name in ADDRESS_HEADERS:
            addrs = parse_addresses(h.value, fill_missing=False)
            v = decode_header_value(addresses_to_text(addrs)) + "\n" + decode_header_value(h.value)
        else:
            v = decode_header_value(h.value)
        st.headers.setdefault(name.decode("latin-1"), []).append(fold(v))
    parts: list[str] = []
    _body_text(raw, root, parts)
    st.body = fold("\n".join(parts))
    return st


# ---- header helpers for SEARCH keys


def _first(raw: bytes, structure: MessageStructure, name: bytes) -> bytes | None:
    r = structure.root
    for h in iter_headers(raw, r.hdr_start, r.body_start):
        if h.name.lower() == name:
            return h.value
    return None


def subject(raw: bytes, structure: MessageStructure) -> str | None:
    v = _first(raw, structure, b"subject")
    return None if v is None else decode_header_value(v)


def message_id(raw: bytes, structure: MessageStructure) -> str | None:
    v = _first(raw, structure, b"message-id")
    return None if v is None else decode_header_value(v).strip()


def address_strings(raw: bytes, structure: MessageStructure, name: str) -> list[str]:
    """Decoded "Name <mailbox@domain>" strings of From/To/Cc/Bcc/..."""
    v = _first(raw, structure, name.lower().encode())
    if v is None:
        return []
    out = []
    for a in parse_addresses(v, fill_missing=False):
        if a.domain is None:
            continue
        addr = (a.mailbox or b"").decode("utf-8", "replace")
        if a.domain:
            addr += "@" + a.domain.decode("utf-8", "replace")
        nm = decode_header_value(a.name) if a.name else ""
        out.append(f"{nm} <{addr}>" if nm else addr)
    return out


def sent_date(raw: bytes, structure: MessageStructure) -> datetime | None:
    """Date: header (RFC 5322 §3.3) for SENTBEFORE/SENTON/SENTSINCE; None if unparsable."""
    v = _first(raw, structure, b"date")
    if v is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(decode_header_value(v).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
