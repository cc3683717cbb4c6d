"""RFC 5322 / RFC 2045 lexical helpers working on bytes.

The tokenizer deliberately follows the lenient behaviour of Dovecot's
lib-mail rfc822 parser (the reference server our differential tests use),
so that BODYSTRUCTURE / ENVELOPE come out byte-identical.  Every routine
returns the Dovecot-style result code: 1 = more data follows, 0 = end of
input reached, -1 = syntax error.
"""

from __future__ import annotations

# RFC 5322 §3.2.3 atext (plus 8-bit bytes, accepted like Dovecot does).
# value 1: atext, 2: alpha/digit/8bit, 4: atext that is a MIME tspecial.
_ATEXT = bytearray(256)
for _c in b"!#$%&'*+-/=?^_`{|}~":
    _ATEXT[_c] = 1
for _c in b"/=?":
    _ATEXT[_c] = 4
for _c in range(ord("0"), ord("9") + 1):
    _ATEXT[_c] = 2
for _c in range(ord("A"), ord("Z") + 1):
    _ATEXT[_c] = 2
    _ATEXT[_c + 32] = 2
for _c in range(128, 256):
    _ATEXT[_c] = 2
IS_ATEXT = bytes(1 if v else 0 for v in _ATEXT)
# RFC 2045 §5.1 token: atext minus tspecials "/", "?", "="
IS_TOKEN = bytes(1 if v and v != 4 else 0 for v in _ATEXT)


class Rfc822Parser:
    __slots__ = ("data", "pos", "end", "last_comment", "nul_repl")

    def __init__(self, data: bytes, keep_comment: bool = False, nul_repl: bytes | None = None) -> None:
        self.nul_repl = nul_repl
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.last_comment: bytearray | None = bytearray() if keep_comment else None

    def cur(self) -> int:
        """Current byte, 0 at end of input (Dovecot reads the NUL terminator)."""
        return self.data[self.pos] if self.pos < self.end else 0

    # RFC 5322 §3.2.2 comments
    def skip_comment(self) -> int:
        data, end = self.data, self.end
        level = 1
        lc = self.last_comment
        if lc is not None:
            del lc[:]
        self.pos += 1
        start = self.pos
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if lc is not None and self.nul_repl is not None:
                    lc += data[start : self.pos] + self.nul_repl
                    start = self.pos + 1
            elif c == 0x28:
                level += 1
            elif c == 0x29:
                level -= 1
                if level == 0:
                    if lc is not None:
                        lc += data[start : self.pos]
                    self.pos += 1
                    return 1 if self.pos < end else 0
            elif c == 0x0A:
                if lc is not None:
                    ln = self.pos
                    if ln > start and data[ln - 1] == 0x0D:
                        ln -= 1
                    lc += data[start:ln]
                    start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A, 0):
                    self.pos -= 1
                else:
                    if lc is not None:
                        lc += data[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        data, end = self.data, self.end
        while self.pos < end:
            c = data[self.pos]
            if c in (0x20, 0x09, 0x0D, 0x0A):
                self.pos += 1
                continue
            if c != 0x28:
                break
            if self.skip_comment() < 0:
                return -1
        return 1 if self.pos < end else 0

    def parse_atom(self, out: bytearray) -> int:
        data, end = self.data, self.end
        if self.pos >= end or not IS_ATEXT[data[self.pos]]:
            return -1
        start = self.pos
        self.pos += 1
        while self.pos < end and IS_ATEXT[data[self.pos]]:
            self.pos += 1
        out += data[start : self.pos]
        if self.pos < end:
            return self.skip_lwsp()
        return 0

    def parse_dot_atom(self, out: bytearray) -> int:
        data, end = self.data, self.end
        if self.pos >= end or not IS_ATEXT[data[self.pos]]:
            return -1
        start = self.pos
        self.pos += 1
        while self.pos < end:
            if IS_ATEXT[data[self.pos]]:
                self.pos += 1
                continue
            if start == self.pos:
                return -1
            out += data[start : self.pos]
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret
            if data[self.pos] != 0x2E:
                return 1
            self.pos += 1
            out += b"."
            if self.skip_lwsp() <= 0:
                return -1
            start = self.pos
        out += data[start : self.pos]
        return 0

    def parse_mime_token(self, out: bytearray) -> int:
        data, end = self.data, self.end
        start = self.pos
        while self.pos < end and (IS_TOKEN[data[self.pos]] or data[self.pos] == 0x2E):
            self.pos += 1
        out += data[start : self.pos]
        if self.pos < end:
            return self.skip_lwsp()
        return 0

    def parse_quoted_string(self, out: bytearray) -> int:
        data, end = self.data, self.end
        self.pos += 1
        start = self.pos
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if self.nul_repl is not None:
                    out += data[start : self.pos] + self.nul_repl
                    start = self.pos + 1
            elif c == 0x22:
                out += data[start : self.pos]
                self.pos += 1
                return self.skip_lwsp()
            elif c == 0x0A:
                # folding whitespace: drop the (CR)LF
                ln = self.pos
                if ln > start and data[ln - 1] == 0x0D:
                    ln -= 1
                out += data[start:ln]
                start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A, 0):
                    self.pos -= 1
                else:
                    out += data[start : self.pos - 1]
                    start = self.pos
            self.pos += 1
        return -1

    def _parse_atom_or_dot(self, out: bytearray) -> int:
        data, end = self.data, self.end
        start = self.pos
        while self.pos < end and (IS_ATEXT[data[self.pos]] or data[self.pos] == 0x2E):
            self.pos += 1
        out += data[start : self.pos]
        if self.pos < end:
            return self.skip_lwsp()
        return 0

    def parse_phrase(self, out: bytearray) -> int:
        # RFC 5322 §3.2.5 phrase / obs-phrase
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            if self.data[self.pos] == 0x22:
                ret = self.parse_quoted_string(out)
            else:
                ret = self._parse_atom_or_dot(out)
            if ret <= 0:
                return ret
            c = self.cur()
            if not IS_ATEXT[c] and c != 0x22 and c != 0x2E:
                break
            out += b" "
        return self.skip_lwsp()

    def _parse_domain_literal(self, out: bytearray) -> int:
        data, end = self.data, self.end
        start = self.pos
        self.pos += 1
        while self.pos < end:
            c = data[self.pos]
            if c == 0:
                if self.nul_repl is not None:
                    out += data[start : self.pos] + self.nul_repl
                    start = self.pos + 1
            elif c == 0x5B:
                return -1
            elif c == 0x5D:
                out += data[start : self.pos + 1]
                self.pos += 1
                return self.skip_lwsp()
            elif c == 0x0A:
                ln = self.pos
                if ln > start and data[ln - 1] == 0x0D:
                    ln -= 1
                out += data[start:ln]
                start = self.pos + 1
            elif c == 0x5C:
                self.pos += 1
                if self.pos >= end:
                    return -1
                if data[self.pos] in (0x0D, 0x0A, 0):
                    out += data[start : self.pos]
                    start = self.pos
                    self.pos -= 1
            self.pos += 1
        return -1

    def parse_domain(self, out: bytearray) -> int:
        self.pos += 1  # '@'
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] == 0x5B:
            return self._parse_domain_literal(out)
        return self.parse_dot_atom(out)

    def parse_content_type(self, out: bytearray) -> int:
        # RFC 2045 §5.1 type "/" subtype, followed by ";" or the end
        pos0 = len(out)
        if self.skip_lwsp() <= 0:
            return -1
        if self.parse_mime_token(out) <= 0 or len(out) == pos0:
            return -1
        if self.cur() != 0x2F:
            del out[pos0:]
            return -1
        self.pos += 1
        if self.skip_lwsp() <= 0:
            del out[pos0:]
            return -1
        out += b"/"
        pos1 = len(out)
        ret = self.parse_mime_token(out)
        if ret < 0 or len(out) == pos1 or (self.pos < self.end and self.data[self.pos] != 0x3B):
            del out[pos0:]
            return -1
        return ret

    def parse_content_param(self) -> tuple[int, bytes | None, bytes]:
        """RFC 2045 §5.1 `;` attribute `=` value.  Returns (ret, key, value)."""
        value = bytearray()
        if self.pos >= self.end:
            return 0, None, b""
        if self.data[self.pos] != 0x3B:
            return -1, None, b""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1, None, b""
        key = bytearray()
        if self.parse_mime_token(key) <= 0:
            return -1, None, b""
        if self.cur() != 0x3D:
            return -1, None, b""
        self.pos += 1
        ret = self.skip_lwsp()
        if ret <= 0:
            pass
        elif self.data[self.pos] == 0x22:
            ret = self.parse_quoted_string(value)
        elif self.data[self.pos] == 0x3D:
            # broken input: name==?utf-8?b?...?=
            while self.pos < self.end and self.data[self.pos] not in b"; \t\r\n":
                value.append(self.data[self.pos])
                self.pos += 1
        else:
            ret = self.parse_mime_token(value)
        return (-1 if ret < 0 else 1), bytes(key), bytes(value)


def _cstr(b: bytes) -> bytes:
    """Dovecot keeps parameters as C strings: cut at the first NUL."""
    i = b.find(b"\0")
    return b if i < 0 else b[:i]


def rfc2231_parse(p: Rfc822Parser) -> list[tuple[bytes, bytes]]:
    """Parameters after the type, RFC 2231 §3/§4 continuations merged."""
    result: list[tuple[bytes, bytes]] = []
    cont: list[tuple[bytes, int, bool, bytes]] = []
    last_idx = 0
    while True:
        ret, key, value = p.parse_content_param()
        if ret == 0:
            break
        if ret < 0:
            if p.pos >= p.end:
                break
            p.pos += 1
            continue
        assert key is not None
        key = _cstr(key)
        value = _cstr(value)
        star = key.find(b"*")
        if star >= 0:
            rest = key[star:]  # starts with '*'
            i = 0
            if len(rest) > 1:
                i = 1
                last_idx = 0
                while i < len(rest) and 0x30 <= rest[i] <= 0x39:
                    last_idx = last_idx * 10 + rest[i] - 0x30
                    i += 1
            idx = last_idx  # Dovecot keeps the previous index for "name*"
            extended = i < len(rest) and rest[i] == 0x2A
            if extended:
                i += 1
            if i == len(rest):
                cont.append((key[:star], idx, extended, value))
                continue
        result.append((key, value))
    if not cont:
        return result
    cont.sort(key=lambda t: (t[0], t[1]))
    i = 0
    n = len(cont)
    while i < n:
        ok = True
        have_ext = False
        next_idx = 0
        j = i
        while j < n and cont[j][0].lower() == cont[i][0].lower():
            if cont[j][1] != next_idx:
                ok = False
            if cont[j][2]:
                have_ext = True
            next_idx += 1
            j += 1
        if not ok:
            for k in range(i, j):
                name, idx, ext, val = cont[k]
                result.append((name + b"*" + str(idx).encode() + (b"*" if ext else b""), val))
        else:
            buf = bytearray()
            if not cont[i][2] and have_ext:
                buf += b"''"
            for k in range(i, j):
                val = cont[k][3]
                if not cont[k][2] and have_ext:
                    buf += val.replace(b"%", b"%25")
                else:
                    buf += val
            result.append((cont[i][0] + (b"*" if have_ext else b""), bytes(buf)))
        i = j
    return result
