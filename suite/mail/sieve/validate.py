"""Validation of a parsed Sieve script into the typed tree the evaluator runs.

Checks (RFC 5228 §2.10.5, §3.2): every command and test is known, the extension it belongs to was
``require``d, tags are known and not repeated, mutually exclusive tags appear once, positional
arguments have the right kind, elsif/else follow an if, ``require`` comes first. Errors carry the
line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .parser import Argument, CommandNode, Number, SieveError, StringList, Tag, TestNode, parse

# Extensions this implementation supports (the ManageSieve SIEVE capability, RFC 5804 §1.7).
EXTENSIONS = (
    "fileinto",
    "envelope",
    "body",
    "copy",
    "imap4flags",
    "vacation",
    "mailbox",
    "variables",
    "relational",
    "date",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
)
COMPARATORS = {"i;octet", "i;ascii-casemap", "i;ascii-numeric"}
MATCH_TYPES = ("is", "contains", "matches", "value", "count")
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")  # RFC 5231 §5
DATE_PARTS = (
    "year",
    "month",
    "day",
    "date",
    "julian",
    "hour",
    "minute",
    "second",
    "time",
    "iso8601",
    "std11",
    "zone",
    "weekday",
)  # RFC 5260 §4.2
_ZONE = re.compile(r"[+-](?:[01][0-9]|2[0-3])[0-5][0-9]")
# RFC 5229 §4: set's modifiers, highest precedence first (applied in this order)
MODIFIERS = ("lower", "upper", "lowerfirst", "upperfirst", "quotewildcard", "length")
_VARNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ADDRESS_PARTS = ("all", "localpart", "domain")


# ---------------------------------------------------------------- typed tree
@dataclass(frozen=True, slots=True)
class Match:
    """Comparator and match type of a test (RFC 5228 §2.7)."""

    comparator: str = "i;ascii-casemap"
    match_type: str = "is"
    relation: str = ""  # :value / :count (RFC 5231)


@dataclass(slots=True)
class Test:
    name: str  # address envelope header exists size allof anyof not true false body hasflag
    line: int
    match: Match = field(default_factory=Match)
    address_part: str = "all"
    headers: tuple[str, ...] = ()  # header names / envelope parts
    keys: tuple[str, ...] = ()
    size_over: bool = False
    limit: int = 0
    transform: str = "text"  # body: raw | content | text
    content_types: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()  # hasflag's variable list (RFC 5232 §4 with RFC 5229)
    date_part: str = ""  # date / currentdate (RFC 5260)
    zone: str | None = None  # "+hhmm"; None: UTC (our "local" zone)
    original_zone: bool = False
    tests: list[Test] = field(default_factory=list)


@dataclass(slots=True)
class Command:
    name: str
    line: int
    test: Test | None = None
    block: list[Command] = field(default_factory=list)
    orelse: list[Command] = field(default_factory=list)  # elsif chains become nested ifs here
    strings: tuple[str, ...] = ()  # fileinto mailbox, redirect address, flags, require list
    flags: tuple[str, ...] | None = None  # :flags on keep/fileinto (RFC 5232 §5)
    copy: bool = False
    create: bool = False
    # vacation (RFC 5230 §4)
    days: int | None = None
    subject: str | None = None
    from_: str | None = None
    addresses: tuple[str, ...] = ()
    mime: bool = False
    handle: str | None = None
    reason: str = ""
    # variables (RFC 5229): set's name and modifiers; the flag commands' variable name
    variable: str | None = None
    modifiers: tuple[str, ...] = ()


@dataclass(slots=True)
class Script:
    commands: list[Command]
    require: frozenset[str]
    redirects: int  # redirect commands in the text (each may run at most once per message)


# ---------------------------------------------------------------- helpers
class _Args:
    """The arguments of one command/test: tags (with their values) and positional arguments."""

    def __init__(self, owner: str, line: int, args: list[Argument], tag_kinds: dict[str, str | None]) -> None:
        self.owner = owner
        self.line = line
        self.tags: dict[str, Argument | None] = {}
        self.tag_lines: dict[str, int] = {}
        self.positional: list[Argument] = []
        i = 0
        while i < len(args):
            a = args[i]
            if isinstance(a, Tag):
                if self.positional:
                    raise SieveError(f"{owner}: tag :{a.name} after positional arguments", a.line)
                if a.name not in tag_kinds:
                    raise SieveError(f"{owner}: unknown tag :{a.name}", a.line)
                if a.name in self.tags:
                    raise SieveError(f"{owner}: tag :{a.name} given twice", a.line)
                kind = tag_kinds[a.name]
                value: Argument | None = None
                if kind is not None:
                    i += 1
                    if i >= len(args) or not _is_kind(args[i], kind):
                        raise SieveError(f"{owner}: :{a.name} needs a {_kind_name(kind)}", a.line)
                    value = args[i]
                self.tags[a.name] = value
                self.tag_lines[a.name] = a.line
            else:
                self.positional.append(a)
            i += 1

    def one_of(self, names: tuple[str, ...]) -> str | None:
        found = [n for n in names if n in self.tags]
        if len(found) > 1:
            raise SieveError(f"{self.owner}: :{found[0]} and :{found[1]} cannot be used together", self.line)
        return found[0] if found else None

    def positional_kinds(self, kinds: list[str]) -> list[Argument]:
        if len(self.positional) != len(kinds):
            want = ", ".join(_kind_name(k) for k in kinds) or "no positional arguments"
            raise SieveError(f"{self.owner}: expected {want}", self.line)
        for a, k in zip(self.positional, kinds, strict=True):
            if not _is_kind(a, k):
                raise SieveError(f"{self.owner}: expected a {_kind_name(k)}", a.line)
        return self.positional


def _is_kind(a: Argument, kind: str) -> bool:
    if kind == "number":
        return isinstance(a, Number)
    if kind == "string":
        return isinstance(a, StringList) and len(a.values) == 1 and a.single
    return isinstance(a, StringList)  # stringlist


def _kind_name(kind: str) -> str:
    return {"number": "number", "string": "string", "stringlist": "string list"}[kind]


def _strings(a: Argument | None) -> tuple[str, ...]:
    assert isinstance(a, StringList)
    return a.values


def _string(a: Argument | None) -> str:
    return _strings(a)[0]


# ---------------------------------------------------------------- validator
class _Validator:
    def __init__(self, max_redirects: int) -> None:
        self.require: set[str] = set()
        self.redirects = 0
        self.max_redirects = max_redirects

    def need(self, ext: str, what: str, line: int) -> None:
        if ext not in self.require:
            raise SieveError(f'{what} needs require "{ext}"', line)

    def match_args(self, a: _Args, line: int) -> Match:
        comparator = "i;ascii-casemap"
        if "comparator" in a.tags:
            comparator = _string(a.tags["comparator"])
            if comparator not in COMPARATORS:
                raise SieveError(f"unknown comparator {comparator!r}", a.tag_lines["comparator"])
            if comparator == "i;ascii-numeric":
                self.need("comparator-i;ascii-numeric", "comparator i;ascii-numeric", line)
        mt = a.one_of(MATCH_TYPES) or "is"
        relation = ""
        if mt in ("value", "count"):
            self.need("relational", f":{mt}", line)
            relation = _string(a.tags[mt]).lower()
            if relation not in RELATIONS:
                raise SieveError(f":{mt}: unknown relation {relation!r} (gt, ge, lt, le, eq, ne)", line)
        return Match(comparator, mt, relation)

    def commands(self, nodes: list[CommandNode], top: bool) -> list[Command]:
        out: list[Command] = []
        prev: Command | None = None  # the if/elsif an elsif/else may attach to
        seen_other = False
        for node in nodes:
            name = node.name
            if name == "require":
                if not top or seen_other:
                    raise SieveError("require must come before any other command (RFC 5228 §3.2)", node.line)
                if node.tests or node.block is not None:
                    raise SieveError("require takes a string list and ends with ;", node.line)
                caps = _strings(_Args("require", node.line, node.args, {}).positional_kinds(["stringlist"])[0])
                for cap in caps:
                    if cap not in EXTENSIONS:
                        raise SieveError(f"unsupported extension {cap!r}", node.line)
                    self.require.add(cap)
                continue
            seen_other = True
            if name in ("elsif", "else"):
                if prev is None:
                    raise SieveError(f"{name} without a preceding if", node.line)
                cmd = self.control(node)
                tail = prev
                while tail.orelse:  # attach at the end of the chain
                    tail = tail.orelse[0]
                tail.orelse = [cmd]
                prev = cmd if name == "elsif" else None
                continue
            cmd = self.command(node)
            out.append(cmd)
            prev = cmd if name == "if" else None
        return out

    def control(self, node: CommandNode) -> Command:
        if node.block is None:
            raise SieveError(f"{node.name} needs a {{ block }}", node.line)
        if node.args:
            raise SieveError(f"{node.name} takes no arguments", node.line)
        cmd = Command(node.name, node.line)
        if node.name in ("if", "elsif"):
            if len(node.tests) != 1:
                raise SieveError(f"{node.name} needs exactly one test", node.line)
            cmd.test = self.test(node.tests[0])
        elif node.tests:
            raise SieveError("else takes no test", node.line)
        cmd.block = self.commands(node.block, top=False)
        return cmd

    def command(self, node: CommandNode) -> Command:
        name, line = node.name, node.line
        if name == "if":
            return self.control(node)
        if node.block is not None:
            raise SieveError(f"{name} takes no block", line)
        if node.tests:
            t = node.tests[0]
            raise SieveError(f"{name} takes no test (a missing ; before {t.name!r} on line {t.line}?)", line)
        cmd = Command(name, line)
        if name in ("stop", "discard"):
            _Args(name, line, node.args, {}).positional_kinds([])
        elif name == "keep":
            a = _Args(name, line, node.args, {"flags": "stringlist"})
            a.positional_kinds([])
            if "flags" in a.tags:
                self.need("imap4flags", "keep :flags", line)
                cmd.flags = _strings(a.tags["flags"])
        elif name == "fileinto":
            self.need("fileinto", "fileinto", line)
            a = _Args(name, line, node.args, {"copy": None, "flags": "stringlist", "create": None})
            cmd.strings = _strings(a.positional_kinds(["string"])[0])
            if "copy" in a.tags:
                self.need("copy", "fileinto :copy", line)
                cmd.copy = True
            if "flags" in a.tags:
                self.need("imap4flags", "fileinto :flags", line)
                cmd.flags = _strings(a.tags["flags"])
            if "create" in a.tags:
                self.need("mailbox", "fileinto :create", line)  # RFC 5490 §3.2
                cmd.create = True
        elif name == "redirect":
            a = _Args(name, line, node.args, {"copy": None})
            cmd.strings = _strings(a.positional_kinds(["string"])[0])
            if "${" in cmd.strings[0] and "variables" in self.require:
                pass  # checked when it runs
            elif "@" not in cmd.strings[0].strip("<>") or any(c in cmd.strings[0] for c in " \t\r\n,"):
                raise SieveError(f"redirect: {cmd.strings[0]!r} is not a mail address", line)  # RFC 5228 §4.2
            if "copy" in a.tags:
                self.need("copy", "redirect :copy", line)
                cmd.copy = True
            self.redirects += 1
            if self.redirects > self.max_redirects:
                raise SieveError(f"more than {self.max_redirects} redirects", line)
        elif name in ("setflag", "addflag", "removeflag"):
            self.need("imap4flags", name, line)
            a = _Args(name, line, node.args, {})
            if len(a.positional) == 2 and "variables" in self.require:
                var, flags = a.positional_kinds(["string", "stringlist"])
                cmd.variable = self.variable_name(_string(var), line)
                cmd.strings = _strings(flags)
            else:
                cmd.strings = _strings(a.positional_kinds(["stringlist"])[0])
        elif name == "set":
            self.need("variables", "set", line)
            a = _Args(name, line, node.args, {m: None for m in MODIFIERS})
            var, value = a.positional_kinds(["string", "string"])
            cmd.variable = self.variable_name(_string(var), line)
            cmd.strings = (_string(value),)
            for group in (("lower", "upper"), ("lowerfirst", "upperfirst")):
                a.one_of(group)  # RFC 5229 §4: same precedence cannot be combined
            cmd.modifiers = tuple(m for m in MODIFIERS if m in a.tags)  # highest precedence first
        elif name == "vacation":
            self.vacation(node, cmd)
        else:
            raise SieveError(f"unknown command {name!r}", line)
        return cmd

    @staticmethod
    def variable_name(name: str, line: int) -> str:
        """RFC 5229 §3: an identifier (no namespaces here); match variables cannot be set."""
        if not _VARNAME.fullmatch(name):
            raise SieveError(f"{name!r} is not a variable name", line)
        return name.lower()

    def vacation(self, node: CommandNode, cmd: Command) -> None:
        line = node.line
        self.need("vacation", "vacation", line)
        a = _Args(
            "vacation",
            line,
            node.args,
            {
                "days": "number",
                "subject": "string",
                "from": "string",
                "addresses": "stringlist",
                "mime": None,
                "handle": "string",
            },
        )
        cmd.reason = _string(a.positional_kinds(["string"])[0])
        if "days" in a.tags:
            days = a.tags["days"]
            assert isinstance(days, Number)
            cmd.days = days.value
        cmd.subject = _string(a.tags["subject"]) if "subject" in a.tags else None
        cmd.from_ = _string(a.tags["from"]) if "from" in a.tags else None
        cmd.addresses = _strings(a.tags["addresses"]) if "addresses" in a.tags else ()
        cmd.mime = "mime" in a.tags
        cmd.handle = _string(a.tags["handle"]) if "handle" in a.tags else None

    def test(self, node: TestNode) -> Test:
        name, line = node.name, node.line
        t = Test(name, line)
        if name in ("allof", "anyof"):
            if node.args or not node.tests:
                raise SieveError(f"{name} needs a ( test list )", line)
            t.tests = [self.test(x) for x in node.tests]
            return t
        if name == "not":
            if node.args or len(node.tests) != 1:
                raise SieveError("not needs one test", line)
            t.tests = [self.test(node.tests[0])]
            return t
        if node.tests:
            raise SieveError(f"{name} takes no nested test", line)
        match_tags: dict[str, str | None] = {
            "comparator": "string",
            **{m: None for m in MATCH_TYPES},
            "value": "string",
            "count": "string",
        }
        if name in ("true", "false"):
            _Args(name, line, node.args, {}).positional_kinds([])
        elif name in ("address", "envelope"):
            if name == "envelope":
                self.need("envelope", "envelope", line)
            a = _Args(name, line, node.args, {**match_tags, **{p: None for p in ADDRESS_PARTS}})
            hdrs, keys = a.positional_kinds(["stringlist", "stringlist"])
            t.match = self.match_args(a, line)
            t.address_part = a.one_of(ADDRESS_PARTS) or "all"
            t.headers, t.keys = _strings(hdrs), _strings(keys)
            if name == "envelope":
                for part in t.headers:
                    if part.lower() not in ("from", "to"):
                        raise SieveError(f"envelope: unknown envelope part {part!r}", line)  # RFC 5228 §5.4
            else:
                # RFC 5228 §5.1: only header fields that hold addresses.
                for h in t.headers:
                    if h.lower() not in _ADDRESS_HEADERS and not h.lower().startswith("x-"):
                        raise SieveError(f"address: {h!r} is not an address header", line)
        elif name == "header":
            a = _Args(name, line, node.args, match_tags)
            hdrs, keys = a.positional_kinds(["stringlist", "stringlist"])
            t.match = self.match_args(a, line)
            t.headers, t.keys = _strings(hdrs), _strings(keys)
        elif name == "exists":
            a = _Args(name, line, node.args, {})
            t.headers = _strings(a.positional_kinds(["stringlist"])[0])
        elif name == "size":
            a = _Args(name, line, node.args, {"over": None, "under": None})
            which = a.one_of(("over", "under"))
            if which is None:
                raise SieveError("size needs :over or :under", line)
            limit = a.positional_kinds(["number"])[0]
            assert isinstance(limit, Number)
            t.size_over, t.limit = which == "over", limit.value
        elif name == "body":
            self.need("body", "body", line)
            a = _Args(name, line, node.args, {**match_tags, "raw": None, "content": "stringlist", "text": None})
            t.keys = _strings(a.positional_kinds(["stringlist"])[0])
            t.match = self.match_args(a, line)
            t.transform = a.one_of(("raw", "content", "text")) or "text"
            if t.transform == "content":
                t.content_types = _strings(a.tags["content"])
        elif name == "hasflag":
            self.need("imap4flags", "hasflag", line)
            a = _Args(name, line, node.args, match_tags)
            if len(a.positional) == 2 and "variables" in self.require:
                vars_, keys = a.positional_kinds(["stringlist", "stringlist"])
                t.variables = tuple(self.variable_name(v, line) for v in _strings(vars_))
                t.keys = _strings(keys)
            else:
                t.keys = _strings(a.positional_kinds(["stringlist"])[0])
            t.match = self.match_args(a, line)
        elif name in ("date", "currentdate"):
            self.need("date", name, line)
            extra: dict[str, str | None] = {"zone": "string"}
            if name == "date":
                extra["originalzone"] = None
            a = _Args(name, line, node.args, {**match_tags, **extra})
            if name == "date":
                dhdr, dpart, dkeys = a.positional_kinds(["string", "string", "stringlist"])
                t.headers = (_string(dhdr),)
            else:
                dpart, dkeys = a.positional_kinds(["string", "stringlist"])
            t.date_part = _string(dpart).lower()
            if t.date_part not in DATE_PARTS:
                raise SieveError(f"{name}: unknown date part {t.date_part!r}", line)
            t.keys = _strings(dkeys)
            t.match = self.match_args(a, line)
            a.one_of(("zone", "originalzone"))
            if "zone" in a.tags:
                t.zone = _string(a.tags["zone"])
                if not _ZONE.fullmatch(t.zone):
                    raise SieveError(f'{name}: :zone is "+hhmm" or "-hhmm"', line)
            t.original_zone = "originalzone" in a.tags
        elif name == "string":
            self.need("variables", "string", line)
            a = _Args(name, line, node.args, match_tags)
            source, keys = a.positional_kinds(["stringlist", "stringlist"])
            t.headers, t.keys = _strings(source), _strings(keys)
            t.match = self.match_args(a, line)
        else:
            raise SieveError(f"unknown test {name!r}", line)
        return t


_ADDRESS_HEADERS = {
    "from",
    "to",
    "cc",
    "bcc",
    "sender",
    "resent-from",
    "resent-to",
    "resent-cc",
    "resent-bcc",
    "resent-sender",
    "reply-to",
    "return-path",
    "delivered-to",
    "x-original-to",
    "envelope-to",
    "disposition-notification-to",
    "list-post",
    "mail-followup-to",
    "mail-reply-to",
}


def compile_script(text: str | bytes, *, max_bytes: int = 64 * 1024, max_redirects: int = 5) -> Script:
    """Parse and validate; raises SieveError (one line, with the line number) for a bad script."""
    nodes = parse(text, max_bytes=max_bytes)
    v = _Validator(max_redirects)
    commands = v.commands(nodes, top=True)
    return Script(commands, frozenset(v.require), v.redirects)
