"""BODY / BODYSTRUCTURE (RFC 9051 §7.5.2) from a parsed MessageStructure."""

from __future__ import annotations

from .imapquote import nstring, nstring_nolf
from .structure import MULTIPART, RFC822, MessageStructure, Part

_EMPTY_BODY = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0)'
_EMPTY_BODYSTRUCTURE = b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL)'


def _params(params, default_charset: bool) -> bytes:
    if not default_charset and not params:
        return b"NIL"
    out = []
    seen = False
    for k, v in params or ():
        if default_charset and k.lower() == b"charset":
            seen = True
        out.append(nstring(k) + b" " + nstring(v))
    if default_charset and not seen:
        # RFC 2045 §5.2: text defaults to charset us-ascii
        out.append(b'"charset" "us-ascii"')
    return b"(" + b" ".join(out) + b")"


def _common(p: Part) -> bytes:
    out = bytearray()
    if p.disposition is None:
        out += b" NIL"
    else:
        out += b" (" + nstring(p.disposition) + b" " + _params(p.disp_params, False) + b")"
    if p.language is None:
        out += b" NIL"
    else:
        out += b" (" + b" ".join(nstring(x) for x in p.language) + b")"
    out += b" " + nstring_nolf(p.location)
    return bytes(out)


def _write(p: Part, out: bytearray, extended: bool) -> None:
    if p.flags & MULTIPART:
        if p.children:
            for c in p.children:
                out += b"("
                _write(c, out, extended)
                out += b")"
        else:
            # RFC 2046 §5.1.1 requires at least one body part
            out += _EMPTY_BODYSTRUCTURE if extended else _EMPTY_BODY
        out += b" " + nstring(p.subtype if p.subtype is not None else b"")
        if extended:
            out += b" " + _params(p.params, False)
            out += _common(p)
        return
    if p.flags & RFC822:
        out += b'"message" "rfc822"'
        text = False
    elif p.ctype is None:
        out += b'"text" "plain"'
        text = True
    else:
        text = p.ctype.lower() == b"text"
        out += nstring(p.ctype) + b" " + nstring(p.subtype if p.subtype is not None else b"")
    out += b" " + _params(p.params, text)
    out += b" " + nstring_nolf(p.cid) + b" " + nstring_nolf(p.description) + b" "
    out += nstring(p.encoding) if p.encoding is not None else b'"7bit"'
    out += b" %d" % p.size
    if text:
        out += b" %d" % p.lines
    elif p.flags & RFC822:
        child = p.children[0]
        out += b" (" + (child.envelope or b"NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL") + b") ("
        _write(child, out, extended)
        out += b") %d" % p.lines
    if extended:
        out += b" " + nstring_nolf(p.md5)
        out += _common(p)


def bodystructure(structure: MessageStructure, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (extended=True) or BODY (extended=False) as a parenthesised list."""
    out = bytearray(b"(")
    _write(structure.root, out, extended)
    out += b")"
    return bytes(out)
