"""Property tests on the sans-I/O session: random command lines never crash it, and every complete
line gets an answer (tagged, untagged or a continuation); the output stays well-formed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, PASSWORD

from suite.mail.imap.parse import CommandReader
from suite.mail.imap.session import ImapSession, Shared
from suite.mail.store import MailStore

WORDS = [
    "NOOP",
    "CAPABILITY",
    "LOGIN",
    "SELECT",
    "EXAMINE",
    "FETCH",
    "UID",
    "STORE",
    "SEARCH",
    "COPY",
    "MOVE",
    "EXPUNGE",
    "APPEND",
    "LIST",
    "LSUB",
    "STATUS",
    "CREATE",
    "DELETE",
    "RENAME",
    "IDLE",
    "DONE",
    "ENABLE",
    "NAMESPACE",
    "ID",
    "UNSELECT",
    "CLOSE",
    "CHECK",
    "GETQUOTA",
    "GETQUOTAROOT",
    "SETQUOTA",
    "AUTHENTICATE",
    "PLAIN",
    "INBOX",
    "Trash",
    "1",
    "1:*",
    "*",
    "$",
    "2,4:5",
    "0",
    "4294967296",
    "(FLAGS)",
    "(UID BODY.PEEK[])",
    "BODY[1.MIME]",
    "BINARY[1]<0.5>",
    "BINARY.SIZE[1]",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "RFC822",
    "FLAGS",
    "+FLAGS",
    "-FLAGS.SILENT",
    "(\\Seen)",
    "(\\Deleted $Junk)",
    "RETURN",
    "(MIN MAX COUNT ALL SAVE)",
    "CHARSET",
    "UTF-8",
    "OR",
    "NOT",
    "SUBJECT",
    "BODY",
    "TEXT",
    "HEADER",
    "MODSEQ",
    "CHANGEDSINCE",
    "(CHANGEDSINCE 1 VANISHED)",
    "(CONDSTORE)",
    "(QRESYNC (1 1))",
    "QRESYNC",
    "CONDSTORE",
    "IMAP4rev2",
    '""',
    '"*"',
    '"%"',
    "%",
    "(SUBSCRIBED)",
    "(MESSAGES UIDNEXT SIZE)",
    "{3+}\r\nabc",
    "{0}",
    "~{2+}\r\n\x00a",
    "(",
    ")",
    "[",
    "]",
    "\\",
    '"unterminated',
    "a&b",
    "Caf&AOk-",
    "é",
    "\x00",
    "\t",
]
LOGIN = b'a0 LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n'


def _lines():
    word = st.sampled_from(WORDS)
    line = st.lists(word, min_size=1, max_size=8).map(" ".join)
    tagged = st.tuples(st.sampled_from(["t", "x1", "*", "+", "A.b", ""]), line).map(lambda t: f"{t[0]} {t[1]}")
    return st.lists(tagged, min_size=1, max_size=12)


_WELL_FORMED = re.compile(rb"^(\* |\+ |\+\r\n|[^\s]+ (OK|NO|BAD) )")


async def _run_session(shared: Shared, prefix: bytes, lines: list[str]) -> list[bytes]:
    out: list[bytes] = []

    async def write(chunks):
        out.extend(bytes(c) for c in chunks)

    s = ImapSession(shared, write, peer="127.0.0.1")
    await s.start()
    await s.feed(prefix)
    for line in lines:
        if s.closed:
            break
        before = len(out)
        reader_busy = s.reader.in_command
        await s.feed(line.encode("utf-8") + b"\r\n")
        # a complete line is answered, unless it continued a literal / IDLE / AUTHENTICATE
        # exchange that waits for more, or the session is waiting in a command's literal
        if line.strip() and not (reader_busy or s.reader.in_command or s.idling):  # blank lines are ignored
            assert len(out) > before or s.closed, line
    s.close()
    data = b"".join(out)
    # every response line starts like a response (literal payloads aside)
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n", pos)
        assert end >= 0, data[pos:]
        line = data[pos : end + 2]
        assert _WELL_FORMED.match(line), line
        m = re.search(rb"~?\{(\d+)\}\r\n$", line)
        pos = end + 2 + (int(m.group(1)) if m else 0)
        if m:
            # the rest of the response line after the literal
            end = data.find(b"\r\n", pos)
            pos = end + 2
    return out


@pytest.fixture
async def shared(ctx, accounts):
    ctx.settings.allow_plaintext_loopback = True
    store = MailStore(ctx)
    sh = Shared(ctx, store, auth_delay=0)
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    await store.deliver(alice.id, "INBOX", MSG, flags=["\\Seen"])
    return sh


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=_lines(), login=st.booleans(), select=st.booleans())
async def test_random_commands_never_crash(shared, lines, login, select):
    prefix = b""
    if login:
        prefix += LOGIN
        if select:
            prefix += b"a1 SELECT INBOX\r\n"
    out = await _run_session(shared, prefix, lines)
    data = b"".join(out)
    assert b"SERVERBUG" not in data
    if login:
        assert b"a0 OK" in data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
async def test_random_bytes_never_crash(shared, data):
    out: list[bytes] = []

    async def write(chunks):
        out.extend(bytes(c) for c in chunks)

    s = ImapSession(shared, write, peer="127.0.0.1")
    await s.start()
    await s.feed(LOGIN + b"a1 SELECT INBOX\r\n" + data + b"\r\n")
    s.close()
    assert b"SERVERBUG" not in b"".join(out)


def test_nul_in_append_literal_needs_the_option():
    """The session's reader accepts NUL in APPEND data (as Dovecot); the default reader does not."""
    from suite.mail.imap.commands import Append, ParseError
    from suite.mail.imap.limits import ImapLimits

    data = b"a APPEND INBOX {3+}\r\na\x00b\r\n"
    strict = CommandReader()
    strict.feed(data)
    assert isinstance(strict.next_event(), ParseError)
    lenient = CommandReader(ImapLimits(allow_nul_in_append=True))
    lenient.feed(data)
    ev = lenient.next_event()
    assert isinstance(ev, Append) and bytes(ev.messages[0].data) == b"a\x00b"
