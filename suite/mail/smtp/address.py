"""Sans-I/O parsing of SMTP MAIL/RCPT arguments (RFC 5321 §4.1.2, RFC 6531 §3.3).

aiosmtpd's own address parsing goes through the lenient RFC 5322 header parser
and silently drops source routes; the MX must see them to refuse relaying, so
paths are parsed here against the RFC 5321 grammar.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from suite.mail.smtp import statuscodes as sc
from suite.mail.smtp.statuscodes import Reply

# RFC 5321 §4.1.2 atext, extended with UTF8-non-ascii by RFC 6531 §3.3.
_NONASCII = "\u0080-\U0010ffff"
_ATEXT = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_NONASCII}]"
_DOT_STRING = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
# RFC 5321 §4.1.2 Quoted-string: qtextSMTP / quoted-pairSMTP (+ UTF-8 per RFC 6531).
_QUOTED = rf'"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_NONASCII}]|\\[\x20-\x7e])*"'
_LETDIG = rf"[A-Za-z0-9{_NONASCII}]"
_SUBDOMAIN = rf"{_LETDIG}(?:[A-Za-z0-9\-{_NONASCII}]*{_LETDIG})?"
_DOMAIN = rf"{_SUBDOMAIN}(?:\.{_SUBDOMAIN})*"
# RFC 5321 §4.1.3 address literals.
_ADDR_LITERAL = r"\[(?:IPv6:[0-9A-Fa-f:.]+|[0-9.]+|[A-Za-z0-9\-]*[A-Za-z0-9]:[\x21-\x5a\x5e-\x7e]+)\]"
_MAILBOX_RE = re.compile(rf"(?P<local>{_DOT_STRING}|{_QUOTED})@(?P<domain>{_DOMAIN}|{_ADDR_LITERAL})")
_ADL_RE = re.compile(rf"@{_DOMAIN}(?:,@{_DOMAIN})*:")
# RFC 5321 §4.1.2 esmtp-keyword / esmtp-value (RFC 6531 §3.3 allows UTF-8 in values).
_PARAM_RE = re.compile(rf"(?P<key>[A-Za-z0-9][A-Za-z0-9\-]*)(?:=(?P<value>[\x21-\x3c\x3e-\x7e{_NONASCII}]+))?")

MAX_LOCAL_PART = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 §4.5.3.1.2
MAX_PATH = 256  # RFC 5321 §4.5.3.1.3


class AddressError(ValueError):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Mailbox:
    local_part: str
    domain: str  # lower-cased; "" only for the bare "<Postmaster>" recipient
    is_literal: bool = False

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}" if self.domain else self.local_part

    @property
    def is_ascii(self) -> bool:
        return str(self).isascii()

    @property
    def literal_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        if not self.is_literal:
            return None
        inner = self.domain[1:-1]
        if inner.lower().startswith("ipv6:"):
            inner = inner[5:]
        try:
            return ipaddress.ip_address(inner)
        except ValueError:
            return None

    @property
    def looks_like_relay_hack(self) -> bool:
        """Percent hack / bang path / embedded '@' in the local part."""
        return any(c in self.local_part for c in "%!@")


@dataclass(frozen=True, slots=True)
class PathArgument:
    """A parsed ``MAIL FROM:`` / ``RCPT TO:`` argument."""

    mailbox: Mailbox | None  # None: the null reverse-path "<>"
    source_route: tuple[str, ...] = ()
    params: dict[str, str | None] = field(default_factory=dict)


def _parse_mailbox(text: str) -> Mailbox:
    m = _MAILBOX_RE.fullmatch(text)
    if m is None:
        raise AddressError(sc.BAD_ADDRESS)
    local, domain = m.group("local"), m.group("domain")
    if len(local.encode()) > MAX_LOCAL_PART or len(domain.encode()) > MAX_DOMAIN:
        raise AddressError(sc.BAD_ADDRESS.with_text("Address too long (RFC 5321 §4.5.3.1)"))
    is_literal = domain.startswith("[")
    if is_literal:
        inner = domain[1:-1]
        if inner.lower().startswith("ipv6:"):
            try:
                ipaddress.IPv6Address(inner[5:])
            except ValueError:
                raise AddressError(sc.BAD_ADDRESS) from None
        elif re.fullmatch(r"[0-9.]+", inner):
            try:
                ipaddress.IPv4Address(inner)
            except ValueError:
                raise AddressError(sc.BAD_ADDRESS) from None
    elif any(len(label.encode()) > 63 for label in domain.split(".")):
        raise AddressError(sc.BAD_ADDRESS)
    return Mailbox(local, domain.lower(), is_literal)


def parse_path_argument(arg: str | None, keyword: str, *, allow_null: bool) -> PathArgument:
    """Parse ``FROM:<path> params`` or ``TO:<path> params`` (keyword without colon).

    Raises ``AddressError`` carrying the SMTP reply to send.
    """
    syntax = sc.MAIL_SYNTAX if keyword == "FROM" else sc.RCPT_SYNTAX
    if not arg:
        raise AddressError(syntax)
    try:
        arg.encode("utf-8")  # surrogate-escaped bytes mean invalid UTF-8 (RFC 6531 §3.3)
    except UnicodeEncodeError:
        raise AddressError(sc.BAD_ADDRESS.with_text("Invalid UTF-8 in address")) from None
    head = keyword + ":"
    if arg[: len(head)].upper() != head:
        raise AddressError(syntax)
    rest = arg[len(head) :].lstrip(" ")  # tolerate "MAIL FROM: <x>"
    if rest.startswith("<"):
        end = rest.find(">")
        if end < 0:
            raise AddressError(syntax)
        inner, tail = rest[1:end], rest[end + 1 :]
        # A quoted local part may contain ">", so retry with a closing quote aware split.
        if inner.count('"') % 2 == 1:
            qend = rest.find('"', rest.find('"') + 1)
            end = rest.find(">", qend)
            if qend < 0 or end < 0:
                raise AddressError(syntax)
            inner, tail = rest[1:end], rest[end + 1 :]
    else:
        inner, _, tail = rest.partition(" ")
        tail = " " + tail if tail else ""
    if len(inner.encode()) + 2 > MAX_PATH:
        raise AddressError(sc.BAD_ADDRESS.with_text("Path too long (RFC 5321 §4.5.3.1.3)"))
    if tail and not tail.startswith(" "):
        raise AddressError(syntax)
    params: dict[str, str | None] = {}
    for token in tail.split():
        pm = _PARAM_RE.fullmatch(token)
        if pm is None:
            raise AddressError(syntax)
        key = pm.group("key").upper()
        if key in params:
            raise AddressError(syntax)
        params[key] = pm.group("value")
    if inner == "":
        if not allow_null:
            raise AddressError(syntax)
        return PathArgument(None, (), params)
    route: tuple[str, ...] = ()
    m = _ADL_RE.match(inner)
    if m is not None:
        # RFC 5321 §4.1.1.3 / Appendix C: source routes are obsolete.
        route = tuple(part.lstrip("@").lower() for part in m.group(0)[:-1].split(","))
        inner = inner[m.end() :]
    if keyword == "TO" and inner.lower() == "postmaster" and not route:
        # RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted.
        return PathArgument(Mailbox("postmaster", ""), (), params)
    return PathArgument(_parse_mailbox(inner), route, params)
