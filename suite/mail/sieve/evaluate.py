"""The Sieve evaluator: a validated script + a message + its envelope → the actions to take.

Pure: it reads the message and returns an :class:`Outcome`; storing, forwarding and replying are
the caller's (``suite.mail.sieve.delivery``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from .message import Envelope, MessageView
from .parser import SieveError
from .validate import Command, Match, Script, Test

INBOX = "INBOX"
MAX_VACATION_DAYS = 90


@dataclass(slots=True)
class Store:
    mailbox: str
    flags: tuple[str, ...]
    create: bool = False


@dataclass(slots=True)
class Vacation:
    reason: str
    days: int
    subject: str | None
    from_: str | None
    addresses: tuple[str, ...]
    mime: bool
    handle: str


@dataclass(slots=True)
class Outcome:
    stores: list[Store] = field(default_factory=list)
    redirects: list[str] = field(default_factory=list)
    vacation: Vacation | None = None
    discarded: bool = False  # an explicit discard ran (nothing stored unless keep/fileinto also ran)
    implicit_keep: bool = True


class SieveRuntimeError(SieveError):
    pass


# ---------------------------------------------------------------- comparators, match types
def _casemap(s: str) -> str:
    """i;ascii-casemap (RFC 4790 §9.2): only A-Z fold."""
    return s.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


@functools.lru_cache(maxsize=512)
def _glob(pattern: str) -> re.Pattern[str]:
    """RFC 5228 §2.7.1 :matches: * any sequence, ? one character, \\ escapes the next."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _numeric(s: str) -> int | None:
    """i;ascii-numeric (RFC 4790 §9.1): the leading digits; none = positive infinity (None)."""
    m = re.match(r"[0-9]+", s)
    return int(m.group()) if m else None


def matches(value: str, key: str, m: Match) -> bool:
    if m.comparator == "i;ascii-numeric":
        if m.match_type != "is":
            raise SieveRuntimeError(f"comparator i;ascii-numeric does not support :{m.match_type}")
        return _numeric(value) == _numeric(key)
    if m.comparator == "i;ascii-casemap":
        value, key = _casemap(value), _casemap(key)
    if m.match_type == "is":
        return value == key
    if m.match_type == "contains":
        return key in value
    return _glob(key).fullmatch(value) is not None


def any_match(values: list[str], keys: tuple[str, ...], m: Match) -> bool:
    return any(matches(v, k, m) for v in values for k in keys)


def _address_part(addr: str, part: str) -> str:
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = addr, ""
    if part == "localpart":
        return local
    if part == "domain":
        return domain
    return addr


# ---------------------------------------------------------------- flags (RFC 5232)
def _split_flags(strings) -> list[str]:
    out: list[str] = []
    for s in strings:
        out.extend(s.split())
    return out


def _flag_union(base: list[str], more: list[str]) -> list[str]:
    low = {f.lower() for f in base}
    for f in more:
        if f.lower() not in low:
            base.append(f)
            low.add(f.lower())
    return base


# ---------------------------------------------------------------- evaluator
class _Stop(Exception):
    pass


class Evaluator:
    def __init__(self, script: Script, msg: MessageView, env: Envelope) -> None:
        self.script = script
        self.msg = msg
        self.env = env
        self.out = Outcome()
        self.flags: list[str] = []  # the imap4flags internal variable

    def run(self) -> Outcome:
        try:
            self.block(self.script.commands)
        except _Stop:
            pass
        if self.out.implicit_keep:
            self._store(INBOX, tuple(self.flags))
        return self.out

    def _store(self, mailbox: str, flags: tuple[str, ...], create: bool = False) -> None:
        # RFC 5228 §2.10.3: filing into the same mailbox twice stores one copy.
        for s in self.out.stores:
            if s.mailbox == mailbox or (s.mailbox.upper() == INBOX and mailbox.upper() == INBOX):
                s.flags = tuple(_flag_union(list(s.flags), list(flags)))
                s.create = s.create or create
                return
        self.out.stores.append(Store(mailbox, flags, create))

    def block(self, commands: list[Command]) -> None:
        for cmd in commands:
            self.command(cmd)

    def command(self, cmd: Command) -> None:
        name = cmd.name
        if name == "if":
            c: Command | None = cmd
            while c is not None:
                if c.test is None or self.test(c.test):  # else has no test
                    self.block(c.block)
                    return
                c = c.orelse[0] if c.orelse else None
        elif name == "stop":
            raise _Stop
        elif name == "keep":
            flags = _split_flags(cmd.flags) if cmd.flags is not None else self.flags
            self._store(INBOX, tuple(flags))
            self.out.implicit_keep = False
        elif name == "discard":
            self.out.discarded = True
            self.out.implicit_keep = False
        elif name == "fileinto":
            flags = _split_flags(cmd.flags) if cmd.flags is not None else self.flags
            self._store(cmd.strings[0], tuple(flags), cmd.create)
            if not cmd.copy:  # RFC 3894 §3: :copy keeps the implicit keep
                self.out.implicit_keep = False
        elif name == "redirect":
            addr = cmd.strings[0].strip().strip("<>")
            if addr.lower() not in (a.lower() for a in self.out.redirects):
                self.out.redirects.append(addr)
            if not cmd.copy:
                self.out.implicit_keep = False
        elif name == "setflag":
            self.flags = _flag_union([], _split_flags(cmd.strings))
        elif name == "addflag":
            self.flags = _flag_union(self.flags, _split_flags(cmd.strings))
        elif name == "removeflag":
            drop = {f.lower() for f in _split_flags(cmd.strings)}
            self.flags = [f for f in self.flags if f.lower() not in drop]
        elif name == "vacation":
            if self.out.vacation is not None:
                # RFC 5230 §4.7: one vacation per message
                raise SieveRuntimeError("vacation executed twice", cmd.line)
            days = cmd.days if cmd.days is not None else 7  # RFC 5230 §4.1
            days = min(max(days, 1), MAX_VACATION_DAYS)
            handle = cmd.handle
            if handle is None:  # RFC 5230 §4.2: derived from the arguments
                handle = "\x00".join(
                    [cmd.reason, cmd.subject or "", cmd.from_ or "", ",".join(cmd.addresses), str(cmd.mime)]
                )
            self.out.vacation = Vacation(cmd.reason, days, cmd.subject, cmd.from_, cmd.addresses, cmd.mime, handle)
        else:  # validated scripts hold nothing else
            raise SieveRuntimeError(f"cannot run {name}", cmd.line)

    def test(self, t: Test) -> bool:
        name = t.name
        if name == "true":
            return True
        if name == "false":
            return False
        if name == "not":
            return not self.test(t.tests[0])
        if name == "allof":
            return all(self.test(x) for x in t.tests)
        if name == "anyof":
            return any(self.test(x) for x in t.tests)
        if name == "header":
            values = [v for h in t.headers for v in self.msg.header_values(h)]
            return any_match(values, t.keys, t.match)
        if name == "address":
            values = [_address_part(a, t.address_part) for h in t.headers for a in self.msg.addresses(h)]
            return any_match(values, t.keys, t.match)
        if name == "envelope":
            values = []
            for part in t.headers:
                addr = self.env.mail_from if part.lower() == "from" else self.env.rcpt_to
                # RFC 5228 §5.4: the null reverse-path is the empty string, for every address part
                values.append(_address_part(addr, t.address_part) if addr else "")
            return any_match(values, t.keys, t.match)
        if name == "exists":
            return all(self.msg.has_header(h) for h in t.headers)
        if name == "size":
            return self.msg.size > t.limit if t.size_over else self.msg.size < t.limit
        if name == "body":
            if t.transform == "raw":
                bodies = [self.msg.raw_body()]
            else:
                bodies = self.msg.body_parts(t.content_types if t.transform == "content" else ("text",))
            return any_match(bodies, t.keys, t.match)
        if name == "hasflag":
            return any_match(self.flags, tuple(_split_flags(t.keys)), t.match)
        raise SieveRuntimeError(f"cannot run test {name}", t.line)


def evaluate(script: Script, msg: MessageView, env: Envelope) -> Outcome:
    """Run ``script``; a SieveRuntimeError means: keep the message in INBOX (RFC 5228 §2.10.6)."""
    return Evaluator(script, msg, env).run()
