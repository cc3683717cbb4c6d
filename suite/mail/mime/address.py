"""RFC 5322 §3.4 address-list parsing, lenient in the same ways as Dovecot."""

from __future__ import annotations

from dataclasses import dataclass

from .rfc822 import IS_ATEXT, Rfc822Parser


@dataclass
class Address:
    """One ENVELOPE address (RFC 9051 §7.5.2): group start has domain None,
    group end has every field None."""

    name: bytes | None = None
    route: bytes | None = None
    mailbox: bytes | None = None
    domain: bytes | None = None
    invalid_syntax: bool = False


class _AddrParser:
    def __init__(self, data: bytes, fill_missing: bool) -> None:
        self.p = Rfc822Parser(data, keep_comment=True, nul_repl="\ufffd".encode())
        self.fill_missing = fill_missing
        self.out: list[Address] = []
        self.addr = Address()
        self.str = bytearray()

    def add(self) -> None:
        self.out.append(self.addr)
        self.addr = Address()

    def local_part(self) -> int:
        p = self.p
        self.str = bytearray()
        if p.cur() == 0x22:
            ret = p.parse_quoted_string(self.str)
        else:
            ret = p.parse_dot_atom(self.str)
        if ret < 0:
            return -1
        self.addr.mailbox = bytes(self.str)
        return ret

    def domain(self) -> int:
        self.str = bytearray()
        ret = self.p.parse_domain(self.str)
        if ret < 0:
            return -1
        self.addr.domain = bytes(self.str)
        return ret

    def domain_list(self) -> int:
        p = self.p
        self.str = bytearray()
        while True:
            if p.pos >= p.end:
                return 0
            if p.cur() != 0x40:
                break
            if self.str:
                self.str += b","
            self.str += b"@"
            ret = p.parse_domain(self.str)
            if ret <= 0:
                return ret
            while p.skip_lwsp() > 0 and p.cur() == 0x2C:
                p.pos += 1
        self.addr.route = bytes(self.str)
        return 1

    def angle_addr(self) -> int:
        p = self.p
        p.pos += 1  # '<'
        if p.skip_lwsp() <= 0:
            return -1
        if p.cur() == 0x40:
            if self.domain_list() > 0 and p.cur() == 0x3A:
                p.pos += 1
            else:
                if self.fill_missing:
                    self.addr.route = b"INVALID_ROUTE"
                if p.pos >= p.end:
                    return -1
            if p.skip_lwsp() <= 0:
                return -1
        if p.cur() == 0x3E:
            pass  # <> is not a valid address
        else:
            if self.local_part() <= 0:
                return -1
            if p.cur() == 0x40:
                if self.domain() <= 0:
                    return -1
        if p.cur() != 0x3E:
            return -1
        p.pos += 1
        return p.skip_lwsp()

    def name_addr(self) -> int:
        p = self.p
        self.str = bytearray()
        if p.parse_phrase(self.str) <= 0 or p.cur() != 0x3C:
            return -1
        self.addr.name = bytes(self.str) or None
        if self.angle_addr() < 0:
            if self.fill_missing:
                self.addr.domain = b"SYNTAX_ERROR"
            self.addr.invalid_syntax = True
        return 1 if p.pos < p.end else 0

    def addr_spec(self) -> int:
        p = self.p
        ret2 = -2
        assert p.last_comment is not None
        del p.last_comment[:]
        quoted = p.cur() == 0x22
        ret = self.local_part()
        if ret <= 0:
            self.addr.invalid_syntax = True
        if ret != 0 and p.pos < p.end and p.cur() == 0x40:
            ret2 = self.domain()
            if ret2 <= 0:
                ret = ret2
        if p.last_comment:
            self.addr.name = bytes(p.last_comment)
        elif ret2 == -2:
            self.str += b" "
            orig = len(self.str)
            p.parse_phrase(self.str)
            if len(self.str) != orig:
                self.addr.mailbox = None
                self.addr.name = bytes(self.str)
            elif not quoted:
                self.addr.domain = b""
            self.addr.invalid_syntax = True
            ret = -1
        return ret

    def fixed(self) -> None:
        a = self.addr
        if a.mailbox is None:
            a.mailbox = b"MISSING_MAILBOX" if self.fill_missing else b""
            a.invalid_syntax = True
        if not a.domain:
            a.domain = b"MISSING_DOMAIN" if self.fill_missing else b""
            a.invalid_syntax = True
        self.add()

    def mailbox(self) -> int:
        p = self.p
        start = p.pos
        ret = self.name_addr()
        if ret < 0:
            p.pos = start
            ret = self.addr_spec()
            a = self.addr
            if a.invalid_syntax and a.name is None and a.mailbox is not None and a.domain is None:
                a.name, a.mailbox = a.mailbox, None
        if ret < 0:
            self.addr.invalid_syntax = True
        self.fixed()
        return ret

    def group(self) -> int:
        p = self.p
        self.str = bytearray()
        if p.parse_phrase(self.str) <= 0 or p.cur() != 0x3A:
            return -1
        p.pos += 1
        ret = p.skip_lwsp()
        if ret <= 0:
            self.addr.invalid_syntax = True
        self.addr.mailbox = bytes(self.str)
        self.add()
        if ret > 0 and p.cur() != 0x3B:
            while True:
                self.mailbox()
                if p.pos >= p.end or p.cur() != 0x2C:
                    break
                p.pos += 1
                if p.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if p.pos >= p.end or p.cur() != 0x3B:
                ret = -1
            else:
                p.pos += 1
                ret = p.skip_lwsp()
        if ret < 0:
            self.addr.invalid_syntax = True
        self.add()
        return 0 if ret == 0 else 1

    def address(self) -> int:
        p = self.p
        start = p.pos
        ret = self.group()
        if ret < 0:
            p.pos = start
            # the group attempt may have left partial state
            self.addr = Address()
            ret = self.mailbox()
        return ret

    def address_list(self) -> None:
        p = self.p
        while True:
            ret = self.address()
            if ret == 0:
                break
            if p.pos >= p.end or p.cur() != 0x2C:
                break
            p.pos += 1
            ret = p.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.fixed()
                break


def parse_addresses(value: bytes, fill_missing: bool = True) -> list[Address]:
    """Parse an address-list header value (RFC 5322 §3.4); never raises."""
    ap = _AddrParser(value, fill_missing)
    if ap.p.skip_lwsp() <= 0:
        return []
    try:
        ap.address_list()
    except IndexError:  # pragma: no cover - defensive, malformed input
        pass
    return ap.out


def _maybe_escape(s: bytes, escape_dot: bool) -> bytes:
    if all(IS_ATEXT[c] or (not escape_dot and c == 0x2E) for c in s):
        return s
    return b'"' + s.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def addresses_to_text(addrs: list[Address]) -> bytes:
    """RFC 5322 rendering of parsed addresses (what SEARCH FROM/TO match against)."""
    out = bytearray()
    first = True
    in_group = False
    for a in addrs:
        if not first:
            out += b", "
        first = False
        if a.domain is None:
            if not in_group:
                if a.mailbox:
                    out += a.mailbox if b"=?" in a.mailbox else _maybe_escape(a.mailbox, True)
                else:
                    out += b'""'
                out += b": "
                first = True
            else:
                if out.endswith(b", "):
                    del out[-2:]
                elif out.endswith(b": "):
                    del out[-1:]
                out += b";"
            in_group = not in_group
        else:
            mailbox = a.mailbox or b""
            if a.name is not None:
                out += a.name if b"=?" in a.name else _maybe_escape(a.name, True)
            if a.route is not None or mailbox or a.domain:
                if a.name:
                    out += b" "
                out += b"<"
                if a.route is not None:
                    out += a.route + b":"
                out += _maybe_escape(mailbox, False) if mailbox else b'""'
                if a.domain:
                    out += b"@" + a.domain
                out += b">"
    return bytes(out)
