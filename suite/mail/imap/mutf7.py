"""Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3).

Clients that have not enabled ``UTF8=ACCEPT`` (RFC 9051 §6.3.1, RFC 6855) send and
expect mailbox names in this encoding.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["mutf7_decode", "mutf7_encode"]

_B64_CHARS = re.compile(r"[A-Za-z0-9+,]*\Z")


def _flush(buf: list[str], out: list[str]) -> None:
    if buf:
        raw = "".join(buf).encode("utf-16-be", "surrogatepass")
        # RFC 3501 §5.1.3: modified BASE64 with "," for "/", no "=" padding.
        b64 = base64.b64encode(raw).decode("ascii").rstrip("=").replace("/", ",")
        out.append("&" + b64 + "-")
        buf.clear()


def mutf7_encode(name: str) -> str:
    """Encode a Unicode mailbox name to modified UTF-7."""
    out: list[str] = []
    buf: list[str] = []
    for ch in name:
        o = ord(ch)
        if 0x20 <= o <= 0x7E:
            # RFC 3501 §5.1.3: printable US-ASCII represents itself, "&" is "&-".
            _flush(buf, out)
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    _flush(buf, out)
    return "".join(out)


def mutf7_decode(name: str | bytes) -> str:
    """Decode a modified UTF-7 mailbox name; raise ValueError when it is not valid."""
    if isinstance(name, (bytes, bytearray)):
        try:
            name = bytes(name).decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("8-bit octet in modified UTF-7") from None
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        c = name[i]
        if c == "&":
            j = name.find("-", i + 1)
            if j < 0:
                raise ValueError("unterminated shift sequence")
            if j == i + 1:
                out.append("&")
            else:
                seg = name[i + 1 : j]
                if not _B64_CHARS.match(seg) or len(seg) % 4 == 1:
                    raise ValueError("invalid modified BASE64")
                b64 = seg.replace(",", "/")
                b64 += "=" * (-len(b64) % 4)
                try:
                    raw = base64.b64decode(b64, validate=True)
                except (binascii.Error, ValueError):
                    raise ValueError("invalid modified BASE64") from None
                if len(raw) % 2:
                    raise ValueError("odd UTF-16 length")
                try:
                    text = raw.decode("utf-16-be")
                except UnicodeDecodeError:
                    raise ValueError("invalid UTF-16") from None
                # RFC 3501 §5.1.3: printable US-ASCII MUST NOT be encoded.
                if any(0x20 <= ord(ch) <= 0x7E for ch in text):
                    raise ValueError("encoded printable US-ASCII")
                out.append(text)
            i = j + 1
        else:
            if not 0x20 <= ord(c) <= 0x7E:
                raise ValueError("character outside printable US-ASCII")
            out.append(c)
            i += 1
    return "".join(out)
