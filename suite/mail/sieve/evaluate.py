"""The Sieve evaluator: a validated script + a message + its envelope → the actions to take.

Pure: it reads the message and returns an :class:`Outcome`; storing, forwarding and replying are
the caller's (``suite.mail.sieve.delivery``).
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import re
import time
from dataclasses import dataclass, field

from .message import Envelope, MessageView
from .parser import SieveError
from .validate import Command, Match, Script, Test

INBOX = "INBOX"
MAX_VACATION_DAYS = 90
MAX_VARIABLE = 4096  # characters kept in one variable (RFC 5229 §3 lets us limit it)
_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+)\}")


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
    """RFC 5228 §2.7.1 :matches: * any sequence, ? one character, \\ escapes the next. Each wildcard is a
    group (RFC 5229 §3.2 match variables); "*" takes as little as it can, left to right."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append("(.*?)" if c == "*" else "(.)" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _numeric(s: str) -> int | None:
    """i;ascii-numeric (RFC 4790 §9.1): the leading digits; none = positive infinity (None)."""
    m = re.match(r"[0-9]+", s)
    return int(m.group()) if m else None


def _order(value: str, key: str, comparator: str) -> int:
    """-1/0/1 under the comparator's ordering (RFC 4790 §9; numeric: no digits = +infinity)."""
    if comparator == "i;ascii-numeric":
        a, b = _numeric(value), _numeric(key)
        if a == b:
            return 0
        if a is None:
            return 1
        if b is None:
            return -1
        return -1 if a < b else 1
    if comparator == "i;ascii-casemap":
        value, key = _casemap(value), _casemap(key)
    return (value > key) - (value < key)  # code point order = UTF-8 octet order


_RELATION = {
    "gt": lambda c: c > 0,
    "ge": lambda c: c >= 0,
    "lt": lambda c: c < 0,
    "le": lambda c: c <= 0,
    "eq": lambda c: c == 0,
    "ne": lambda c: c != 0,
}


def matches(value: str, key: str, m: Match) -> bool:
    if m.match_type == "value":  # RFC 5231 §4.1
        return _RELATION[m.relation](_order(value, key, m.comparator))
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
    if m.match_type == "count":  # RFC 5231 §4.2: the number of values against each key
        n = str(len(values))
        return any(_RELATION[m.relation](_order(n, k, m.comparator)) for k in keys)
    return any(matches(v, k, m) for v in values for k in keys)


# ---------------------------------------------------------------- dates (RFC 5260)
def _tz(zone: str) -> datetime.timezone:
    sign = -1 if zone[0] == "-" else 1
    return datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))


def date_part(dt: datetime.datetime, part: str) -> str:
    """RFC 5260 §4.2."""
    off = dt.utcoffset() or datetime.timedelta(0)
    mins = int(off.total_seconds()) // 60
    zone = ("-" if mins < 0 else "+") + f"{abs(mins) // 60:02d}{abs(mins) % 60:02d}"
    if part == "year":
        return f"{dt.year:04d}"
    if part == "month":
        return f"{dt.month:02d}"
    if part == "day":
        return f"{dt.day:02d}"
    if part == "date":
        return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}"
    if part == "julian":  # modified Julian day: days since 1858-11-17
        return str((dt.date() - datetime.date(1858, 11, 17)).days)
    if part == "hour":
        return f"{dt.hour:02d}"
    if part == "minute":
        return f"{dt.minute:02d}"
    if part == "second":
        return f"{dt.second:02d}"
    if part == "time":
        return f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if part == "iso8601":
        return dt.replace(microsecond=0).isoformat()
    if part == "std11":
        return email.utils.format_datetime(dt.replace(microsecond=0))
    if part == "zone":
        return zone
    return str((dt.weekday() + 1) % 7)  # weekday: 0 = Sunday


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
        self.use_vars = "variables" in script.require
        self.vars: dict[str, str] = {}
        self.match_vars: list[str] = []

    # ------------------------------------------------------------ variables (RFC 5229)
    def x(self, s: str) -> str:
        """Expand ${name} and ${N} (RFC 5229 §3); unknown names are the empty string."""
        if not self.use_vars or "${" not in s:
            return s

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.isdigit():
                i = int(name)
                return self.match_vars[i] if i < len(self.match_vars) else ""
            return self.vars.get(name.lower(), "")

        return _VAR_REF.sub(sub, s)

    def xs(self, strings) -> tuple[str, ...]:
        return tuple(self.x(s) for s in strings)

    def match(self, values: list[str], keys: tuple[str, ...], m: Match) -> bool:
        keys = self.xs(keys)
        if not (self.use_vars and m.match_type == "matches" and m.comparator != "i;ascii-numeric"):
            return any_match(values, keys, m)
        fold = m.comparator == "i;ascii-casemap"
        for v in values:
            vv = _casemap(v) if fold else v
            for k in keys:
                mo = _glob(_casemap(k) if fold else k).fullmatch(vv)
                if mo is not None:
                    # RFC 5229 §3.2: ${0} the whole value, ${1}… each wildcard (from the original text)
                    self.match_vars = [v] + [v[a:b] for a, b in (mo.span(i) for i in range(1, (mo.lastindex or 0) + 1))]
                    return True
        return False

    def _flag_list(self, variable: str | None) -> list[str]:
        if variable is None:
            return self.flags
        return _flag_union([], self.vars.get(variable, "").split())

    def _set_flags(self, variable: str | None, flags: list[str]) -> None:
        if variable is None:
            self.flags = flags
        else:
            self.vars[variable] = " ".join(flags)[:MAX_VARIABLE]

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
            flags = _split_flags(self.xs(cmd.flags)) if cmd.flags is not None else self.flags
            self._store(INBOX, tuple(flags))
            self.out.implicit_keep = False
        elif name == "discard":
            self.out.discarded = True
            self.out.implicit_keep = False
        elif name == "fileinto":
            flags = _split_flags(self.xs(cmd.flags)) if cmd.flags is not None else self.flags
            mailbox = self.x(cmd.strings[0])
            if not mailbox:
                raise SieveRuntimeError("fileinto an empty mailbox name", cmd.line)
            self._store(mailbox, tuple(flags), cmd.create)
            if not cmd.copy:  # RFC 3894 §3: :copy keeps the implicit keep
                self.out.implicit_keep = False
        elif name == "redirect":
            addr = self.x(cmd.strings[0]).strip().strip("<>")
            if "@" not in addr or any(c in addr for c in " \t\r\n,"):
                raise SieveRuntimeError(f"redirect: {addr!r} is not a mail address", cmd.line)  # RFC 5228 §4.2
            if len(self.out.redirects) >= self.script.redirects:
                raise SieveRuntimeError("too many redirects", cmd.line)
            if addr.lower() not in (a.lower() for a in self.out.redirects):
                self.out.redirects.append(addr)
            if not cmd.copy:
                self.out.implicit_keep = False
        elif name == "setflag":
            self._set_flags(cmd.variable, _flag_union([], _split_flags(self.xs(cmd.strings))))
        elif name == "addflag":
            current = list(self._flag_list(cmd.variable))
            self._set_flags(cmd.variable, _flag_union(current, _split_flags(self.xs(cmd.strings))))
        elif name == "removeflag":
            drop = {f.lower() for f in _split_flags(self.xs(cmd.strings))}
            self._set_flags(cmd.variable, [f for f in self._flag_list(cmd.variable) if f.lower() not in drop])
        elif name == "set":
            self.vars[cmd.variable or ""] = _modify(self.x(cmd.strings[0]), cmd.modifiers)[:MAX_VARIABLE]
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
            x = self.x
            self.out.vacation = Vacation(
                x(cmd.reason),
                days,
                x(cmd.subject) if cmd.subject is not None else None,
                x(cmd.from_) if cmd.from_ is not None else None,
                self.xs(cmd.addresses),
                cmd.mime,
                x(handle),
            )
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
            values = [v for h in self.xs(t.headers) for v in self.msg.header_values(h)]
            return self.match(values, t.keys, t.match)
        if name == "address":
            values = [_address_part(a, t.address_part) for h in self.xs(t.headers) for a in self.msg.addresses(h)]
            return self.match(values, t.keys, t.match)
        if name == "string":
            return self.match(list(self.xs(t.headers)), t.keys, t.match)
        if name == "currentdate":
            now = self.env.now if self.env.now is not None else time.time()
            dt = datetime.datetime.fromtimestamp(now, _tz(t.zone) if t.zone else datetime.UTC)
            return self.match([date_part(dt, t.date_part)], t.keys, t.match)
        if name == "date":
            values = []
            for v in self.msg.header_values(self.x(t.headers[0]))[:1]:  # RFC 5260 §4: the first field
                try:
                    dt = email.utils.parsedate_to_datetime(v.split(";")[-1].strip())
                except (TypeError, ValueError, IndexError):
                    continue  # an unparsable date does not match (RFC 5260 §4)
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=datetime.UTC)
                if not t.original_zone:
                    dt = dt.astimezone(_tz(t.zone) if t.zone else datetime.UTC)
                values.append(date_part(dt, t.date_part))
            return self.match(values, t.keys, t.match)
        if name == "envelope":
            values = []
            for part in t.headers:
                addr = self.env.mail_from if part.lower() == "from" else self.env.rcpt_to
                # RFC 5228 §5.4: the null reverse-path is the empty string, for every address part
                values.append(_address_part(addr, t.address_part) if addr else "")
            return self.match(values, t.keys, t.match)
        if name == "exists":
            return all(self.msg.has_header(h) for h in self.xs(t.headers))
        if name == "size":
            return self.msg.size > t.limit if t.size_over else self.msg.size < t.limit
        if name == "body":
            if t.transform == "raw":
                bodies = [self.msg.raw_body()]
            else:
                bodies = self.msg.body_parts(t.content_types if t.transform == "content" else ("text",))
            return self.match(bodies, t.keys, t.match)
        if name == "hasflag":
            if t.variables:
                flags = [f for v in t.variables for f in self._flag_list(v)]
            else:
                flags = self.flags
            return self.match(flags, tuple(_split_flags(self.xs(t.keys))), t.match)
        raise SieveRuntimeError(f"cannot run test {name}", t.line)


def _modify(value: str, modifiers: tuple[str, ...]) -> str:
    """RFC 5229 §4: set's modifiers, highest precedence first."""
    for m in modifiers:
        if m == "lower":
            value = value.lower()
        elif m == "upper":
            value = value.upper()
        elif m == "lowerfirst":
            value = value[:1].lower() + value[1:]
        elif m == "upperfirst":
            value = value[:1].upper() + value[1:]
        elif m == "quotewildcard":
            value = value.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")
        elif m == "length":
            value = str(len(value))
    return value


def evaluate(script: Script, msg: MessageView, env: Envelope) -> Outcome:
    """Run ``script``; a SieveRuntimeError means: keep the message in INBOX (RFC 5228 §2.10.6)."""
    return Evaluator(script, msg, env).run()
