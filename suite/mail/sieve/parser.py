"""Sieve lexer and parser (RFC 5228 §8 grammar) → a generic AST with line numbers. Pure, no I/O.

The validator (``validate.py``) checks commands, tests, tags and ``require`` on this tree and turns it
into the typed tree the evaluator runs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_SCRIPT_BYTES = 64 * 1024
MAX_NESTING = 32  # blocks and test nesting together (Dovecot: sieve_max_… default 32)


class SieveError(Exception):
    """A script that cannot be used; ``str()`` is one line with the line number."""

    def __init__(self, message: str, line: int = 0) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass(frozen=True, slots=True)
class Tag:
    name: str  # lower case, without the colon
    line: int


@dataclass(frozen=True, slots=True)
class Number:
    value: int
    line: int


@dataclass(frozen=True, slots=True)
class StringList:
    values: tuple[str, ...]
    line: int
    single: bool  # written as one string, not a [list]


Argument = Tag | Number | StringList


@dataclass(slots=True)
class TestNode:
    name: str
    line: int
    args: list[Argument] = field(default_factory=list)
    tests: list[TestNode] = field(default_factory=list)


@dataclass(slots=True)
class CommandNode:
    name: str
    line: int
    args: list[Argument] = field(default_factory=list)
    tests: list[TestNode] = field(default_factory=list)
    block: list[CommandNode] | None = None


# ---------------------------------------------------------------- lexer
_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<hash>\#[^\n]*)
  | (?P<bracket>/\*.*?\*/)
  | (?P<multiline>text:[ \t]*(?:\#[^\n]*)?\r?\n)
  | (?P<quoted>"(?:[^"\\]|\\.)*")
  | (?P<number>[0-9]+[KkMmGg]?)
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[\[\](),;{}])
    """,
    re.VERBOSE | re.DOTALL,
)
_QUANT = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, tag, number, string, punct, eof
    value: object
    line: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line, n = 0, 1, len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            if text.startswith("/*", pos):
                raise SieveError("unterminated /* comment", line)
            if text[pos] == '"':
                raise SieveError("unterminated string", line)
            raise SieveError(f"unexpected character {text[pos]!r}", line)
        kind = m.lastgroup
        raw = m.group()
        if kind == "quoted":
            # RFC 5228 §2.4.2: \" and \\ are escapes; any other \x is x.
            tokens.append(Token("string", _ESCAPE.sub(r"\1", raw[1:-1]), line))
        elif kind == "multiline":
            start_line = line
            body, end = _multiline(text, m.end(), start_line)
            line += text.count("\n", pos, end)
            tokens.append(Token("string", body, start_line))
            pos = end
            continue
        elif kind == "number":
            q = raw[-1].lower()
            value = int(raw[:-1]) * _QUANT[q] if q in _QUANT else int(raw)
            if value >= 1 << 63:
                raise SieveError("number too large", line)
            tokens.append(Token("number", value, line))
        elif kind == "tag":
            tokens.append(Token("tag", raw[1:].lower(), line))
        elif kind == "ident":
            tokens.append(Token("ident", raw.lower(), line))
        elif kind == "punct":
            tokens.append(Token("punct", raw, line))
        line += raw.count("\n")
        pos = m.end()
    tokens.append(Token("eof", None, line))
    return tokens


def _multiline(text: str, pos: int, line: int) -> tuple[str, int]:
    """RFC 5228 §2.4.2 multi-line string: lines up to a lone ".", leading ".." unstuffed."""
    out: list[str] = []
    while True:
        nl = text.find("\n", pos)
        if nl < 0:
            raise SieveError('multi-line string not terminated by a line with a single "."', line)
        cur = text[pos:nl].removesuffix("\r")
        pos = nl + 1
        if cur == ".":
            return "".join(out), pos
        out.append((cur[1:] if cur.startswith("..") else cur) + "\r\n")


# ---------------------------------------------------------------- parser
class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.toks[self.i]

    def take(self) -> Token:
        t = self.toks[self.i]
        self.i += 1
        return t

    def is_punct(self, ch: str) -> bool:
        t = self.peek()
        return t.kind == "punct" and t.value == ch

    def expect(self, ch: str, what: str) -> Token:
        t = self.take()
        if t.kind != "punct" or t.value != ch:
            raise SieveError(f"expected {what}, found {_show(t)}", t.line)
        return t

    def nest(self, line: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise SieveError(f"nested deeper than {MAX_NESTING} levels", line)

    def commands(self, top: bool) -> list[CommandNode]:
        out: list[CommandNode] = []
        while True:
            t = self.peek()
            if t.kind == "eof":
                if not top:
                    raise SieveError("missing } at end of script", t.line)
                return out
            if t.kind == "punct" and t.value == "}":
                if top:
                    raise SieveError("unexpected }", t.line)
                return out
            out.append(self.command())

    def command(self) -> CommandNode:
        t = self.take()
        if t.kind != "ident":
            raise SieveError(f"expected a command, found {_show(t)}", t.line)
        node = CommandNode(str(t.value), t.line)
        node.args, node.tests = self.arguments()
        if self.is_punct(";"):
            self.take()
        elif self.is_punct("{"):
            open_ = self.take()
            self.nest(open_.line)
            node.block = self.commands(top=False)
            self.expect("}", "}")
            self.depth -= 1
        else:
            nt = self.peek()
            raise SieveError(f"expected ; or {{ after {node.name}, found {_show(nt)}", nt.line)
        return node

    def arguments(self) -> tuple[list[Argument], list[TestNode]]:
        args: list[Argument] = []
        while True:
            t = self.peek()
            if t.kind == "tag":
                self.take()
                args.append(Tag(str(t.value), t.line))
            elif t.kind == "number":
                self.take()
                args.append(Number(int(t.value), t.line))  # type: ignore[call-overload]
            elif t.kind == "string":
                self.take()
                args.append(StringList((str(t.value),), t.line, True))
            elif t.kind == "punct" and t.value == "[":
                args.append(self.string_list())
            else:
                break
        tests: list[TestNode] = []
        t = self.peek()
        if t.kind == "ident":
            tests = [self.test()]
        elif t.kind == "punct" and t.value == "(":
            tests = self.test_list()
        return args, tests

    def string_list(self) -> StringList:
        open_ = self.take()
        values: list[str] = []
        while True:
            t = self.take()
            if t.kind != "string":
                raise SieveError(f"expected a string in the list, found {_show(t)}", t.line)
            values.append(str(t.value))
            t = self.take()
            if t.kind == "punct" and t.value == "]":
                return StringList(tuple(values), open_.line, False)
            if not (t.kind == "punct" and t.value == ","):
                raise SieveError(f"expected , or ] in the string list, found {_show(t)}", t.line)

    def test(self) -> TestNode:
        t = self.take()
        if t.kind != "ident":
            raise SieveError(f"expected a test, found {_show(t)}", t.line)
        self.nest(t.line)
        node = TestNode(str(t.value), t.line)
        node.args, node.tests = self.arguments()
        self.depth -= 1
        return node

    def test_list(self) -> list[TestNode]:
        self.take()
        tests = [self.test()]
        while self.is_punct(","):
            self.take()
            tests.append(self.test())
        self.expect(")", ") or , in the test list")
        return tests


def _show(t: Token) -> str:
    if t.kind == "eof":
        return "end of script"
    if t.kind == "string":
        return "a string"
    if t.kind == "tag":
        return f":{t.value}"
    return repr(str(t.value))


def parse(script: str | bytes, *, max_bytes: int = MAX_SCRIPT_BYTES) -> list[CommandNode]:
    """Parse a script (UTF-8, RFC 5228 §2.1) into command nodes; raises SieveError with a line number."""
    if isinstance(script, bytes):
        data: bytes = script
        if len(data) > max_bytes:
            raise SieveError(f"script is larger than {max_bytes} bytes")
        try:
            script = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SieveError("script is not valid UTF-8", data[: exc.start].count(b"\n") + 1) from None
    elif len(script.encode("utf-8")) > max_bytes:
        raise SieveError(f"script is larger than {max_bytes} bytes")
    if "\x00" in script:
        raise SieveError("script contains a NUL character", script[: script.index("\x00")].count("\n") + 1)
    return _Parser(tokenize(script)).commands(top=True)
