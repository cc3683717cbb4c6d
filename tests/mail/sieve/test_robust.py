"""Whatever arrives: the Sieve compiler answers with a Script or a SieveError, the ManageSieve reader
with lines or BadLines — never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from suite.mail.managesieve.protocol import Atom, BadLine, CommandReader, Line
from suite.mail.sieve import Envelope, MessageView, SieveError, compile_script, evaluate

TOKENS = [
    "if",
    "elsif",
    "else",
    "require",
    "keep",
    "discard",
    "stop",
    "fileinto",
    "redirect",
    "vacation",
    "header",
    "address",
    "envelope",
    "body",
    "size",
    "not",
    "anyof",
    "allof",
    "true",
    "false",
    "set",
    "string",
    "hasflag",
    "addflag",
    ":is",
    ":contains",
    ":matches",
    ":over",
    ":copy",
    ":flags",
    ":days",
    ":comparator",
    '"fileinto"',
    '"variables"',
    '"vacation"',
    '"x@y.test"',
    '"${1}"',
    '"*a?b*"',
    "[",
    "]",
    "(",
    ")",
    "{",
    "}",
    ";",
    ",",
    "10K",
    "text:\n.\n",
    "#c\n",
    "/* c */",
    '"\\"',
    " ",
    "\n",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40))
def test_compiler_never_crashes(parts):
    script = " ".join(parts)
    try:
        compiled = compile_script(script)
    except SieveError as exc:
        assert str(exc)
        return
    try:
        evaluate(
            compiled,
            MessageView.from_bytes(b"From: a@b.test\r\nSubject: x\r\n\r\nbody\r\n"),
            Envelope("a@b.test", "me@x.test"),
        )
    except SieveError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=17))
def test_reader_never_crashes(data, chunk):
    r = CommandReader(max_line=64, max_literal=32)
    out = []
    for i in range(0, len(data), chunk):
        out += r.feed(data[i : i + chunk])
    assert all(isinstance(x, (Line, BadLine)) for x in out)
    assert len(r.buf) <= 64 + 32 + chunk + 16  # bounded however long the garbage


def test_reader_bounds_a_line_that_never_ends():
    r = CommandReader(max_line=64, max_literal=32)
    out = r.feed(b'PUTSCRIPT "a" {3+}\r\nabc')
    for _ in range(100):
        out += r.feed(b' "more tokens that never end"')
    assert len(r.buf) <= 64 + 32 + 40
    out += r.feed(b"\r\nNOOP\r\n")
    assert out[0] == BadLine("line too long") and out[-1] == Line((Atom("NOOP"),))


def test_reader_split_anywhere_gives_the_same_commands():
    wire = b'PUTSCRIPT "a\\"b" {5+}\r\nhello\r\nHAVESPACE "x" 10\r\nNOOP\r\n'
    whole = CommandReader().feed(wire)
    for cut in range(1, len(wire)):
        r = CommandReader()
        assert r.feed(wire[:cut]) + r.feed(wire[cut:]) == whole
