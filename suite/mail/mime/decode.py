"""Content-Transfer-Encoding decoding for BINARY[] (RFC 3516, RFC 2045 §6)."""

from __future__ import annotations

import binascii

from .errors import MimeParseError, UnknownCteError
from .rfc822 import Rfc822Parser
from .structure import MessageStructure, Part, iter_headers

_B64 = bytes(
    1 if (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A or 0x30 <= c <= 0x39 or c in b"+/") else 0 for c in range(256)
)
_WS = b" \t\r\n"
_HEX = b"0123456789ABCDEFabcdef"


def cte_of(raw: bytes, p: Part) -> str:
    """RFC 2045 §6.1 mechanism of a part: '7bit', '8bit', 'binary', 'base64',
    'quoted-printable', or 'unknown'."""
    cte = "7bit"
    for h in iter_headers(raw, p.hdr_start, p.body_start):
        if h.name.lower() != b"content-transfer-encoding":
            continue
        pr = Rfc822Parser(h.value)
        pr.skip_lwsp()
        tok = bytearray()
        pr.parse_mime_token(tok)
        t = bytes(tok).lower()
        cte = {
            b"7bit": "7bit",
            b"8bit": "8bit",
            b"binary": "binary",
            b"base64": "base64",
            b"quoted-printable": "quoted-printable",
        }.get(t, "unknown")
    return cte


def decode_base64(data: bytes) -> bytes:
    """RFC 2045 §6.8.  Whitespace is ignored; other characters outside the
    alphabet, data after the padding, or a truncated final quantum are errors."""
    clean = data.translate(None, _WS)
    if not clean:
        return b""
    body = clean.rstrip(b"=")
    pad = len(clean) - len(body)
    if pad > 2 or any(not _B64[c] for c in body) or len(clean) % 4 != 0:
        raise MimeParseError()
    try:
        return binascii.a2b_base64(clean, strict_mode=True)
    except binascii.Error as e:
        raise MimeParseError() from e


def decode_qp(data: bytes) -> bytes:
    """RFC 2045 §6.7.  Soft line breaks removed, trailing whitespace on a line
    dropped; "=" not followed by two hex digits or a line break is an error."""
    out = bytearray()
    lines = data.split(b"\n")
    last = len(lines) - 1
    for i, line in enumerate(lines):
        had_nl = i < last
        if line.endswith(b"\r"):
            line = line[:-1]
        line = line.rstrip(b" \t")
        soft = False
        j = 0
        n = len(line)
        while j < n:
            k = line.find(b"=", j)
            if k < 0:
                out += line[j:]
                break
            out += line[j:k]
            if k + 1 == n:
                soft = True
                j = n
                break
            a, b = line[k + 1 : k + 2], line[k + 2 : k + 3]
            if a and b and a in _HEX and b in _HEX:
                out.append(int(line[k + 1 : k + 3], 16))
                j = k + 3
            else:
                raise MimeParseError()
        if had_nl and not soft:
            out += b"\r\n"
    return bytes(out)


def decode_part(raw: bytes, p: Part) -> bytes:
    body = raw[p.body_start : p.body_end]
    if p.is_multipart or p.is_message:
        return body
    cte = cte_of(raw, p)
    if cte in ("7bit", "8bit", "binary"):
        return body
    if cte == "base64":
        return decode_base64(body)
    if cte == "quoted-printable":
        return decode_qp(body)
    # RFC 3516 §4.3: unknown encoding -> NO [UNKNOWN-CTE]
    raise UnknownCteError()


def binary(raw: bytes, structure: MessageStructure, part_path: tuple[int, ...]) -> bytes:
    """BINARY[part] content (RFC 3516 §4.2): the part body with its
    Content-Transfer-Encoding removed.  Raises UnknownCteError / MimeParseError."""
    from .errors import SectionError

    p = structure.part(part_path)
    if p is None:
        raise SectionError("no such part")
    if not part_path:
        return raw
    return decode_part(raw, p)
