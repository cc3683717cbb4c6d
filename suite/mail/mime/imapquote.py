"""Minimal IMAP string serialisation (RFC 9051 §4.3) used by ENVELOPE/BODYSTRUCTURE.

Choices (quoted vs literal) follow Dovecot so the output is byte-identical with
the reference server; both forms are valid RFC 9051 `string`s.
To be reconciled with the session's response encoder.
"""

from __future__ import annotations

_QUOTED_MAX_ESCAPE_CHARS = 4


def _cstr(b: bytes) -> bytes:
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def literal(b: bytes) -> bytes:
    # RFC 9051 §4.3 literal: "{" number "}" CRLF *CHAR8
    return b"{%d}\r\n" % len(b) + b


def nstring(src: bytes | None) -> bytes:
    """RFC 9051 §4.3 nstring: NIL, quoted string, or literal when quoting is impossible."""
    if src is None:
        return b"NIL"
    src = _cstr(src)
    escapes = 0
    for c in src:
        if c in (0x22, 0x5C):
            escapes += 1
            if escapes > _QUOTED_MAX_ESCAPE_CHARS:
                return literal(src)
        elif c in (0x0D, 0x0A) or c >= 0x80:
            # RFC 9051 §4.3: CR, LF and 8-bit are not allowed in quoted strings
            return literal(src)
    return b'"' + src.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def nstring_nolf(src: bytes | None) -> bytes:
    """nstring with CR and LF removed (folded header values)."""
    if src is None:
        return b"NIL"
    src = _cstr(src)
    if b"\r" in src or b"\n" in src:
        src = src.replace(b"\r", b"").replace(b"\n", b"")
    return nstring(src)


def string_for_humans(src: bytes) -> bytes:
    """Subject / display names: whitespace collapsed, CR/LF dropped, NUL -> 0x80."""
    out = bytearray()
    last_lwsp = True
    modify = False
    for c in src:
        if c == 0:
            out.append(0x80)
            last_lwsp = False
            modify = True
        elif c in (0x20, 0x09):
            if c == 0x09 or last_lwsp:
                modify = True
            if not last_lwsp:
                out.append(0x20)
            last_lwsp = True
        elif c in (0x0D, 0x0A):
            modify = True
        else:
            if c in (0x22, 0x5C) or c >= 0x80:
                modify = True
            out.append(c)
            last_lwsp = False
    if last_lwsp and out:
        # trailing whitespace removed
        if out[-1] == 0x20:
            del out[-1]
            modify = True
    if not modify:
        return b'"' + bytes(src) + b'"'
    if not out:
        return b'""'
    return literal(bytes(out))
