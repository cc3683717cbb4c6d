"""Tests for the sans-I/O IMAP command reader and parser (suite.mail.imap.parse)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.mail.imap import commands as c
from suite.mail.imap.limits import ImapLimits
from suite.mail.imap.parse import (
    CommandReader,
    parse_command,
    parse_date,
    parse_date_time,
)


def events(data: bytes, limits: ImapLimits | None = None, chunk: int | None = None) -> list:
    r = CommandReader(limits)
    out = []
    if chunk is None:
        r.feed(data)
        out.extend(r)
    else:
        for i in range(0, len(data), chunk):
            r.feed(data[i : i + chunk])
            out.extend(r)
    return out


def one(line: str | bytes):
    """Parse a single-line command."""
    b = line.encode() if isinstance(line, str) else line
    evs = events(b + b"\r\n")
    assert len(evs) == 1, evs
    return evs[0]


def ok(line: str | bytes) -> c.Command:
    ev = one(line)
    assert isinstance(ev, c.Command), ev
    return ev


def bad(line: str | bytes) -> c.ParseError:
    ev = one(line)
    assert isinstance(ev, c.ParseError), ev
    return ev


S = c.SequenceSet.of


# --------------------------------------------------------------------- simple commands


@pytest.mark.parametrize(
    "line, expected",
    [
        ("a CAPABILITY", c.Capability(tag="a")),
        ("a1 noop", c.Noop(tag="a1")),
        ("A.2 LOGOUT", c.Logout(tag="A.2")),
        ("t STARTTLS", c.StartTLS(tag="t")),
        ("t NAMESPACE", c.Namespace(tag="t")),
        ("t IDLE", c.Idle(tag="t")),
        ("t CHECK", c.Check(tag="t")),
        ("t CLOSE", c.Close(tag="t")),
        ("t UNSELECT", c.Unselect(tag="t")),
        ("t EXPUNGE", c.Expunge(tag="t")),
        ("t UID EXPUNGE 3:5,9", c.Expunge(tag="t", uid_set=S((3, 5), 9))),
        ("t AUTHENTICATE plain", c.Authenticate(tag="t", mechanism="PLAIN")),
        (
            "t AUTHENTICATE PLAIN AGZvbwBiYXI=",
            c.Authenticate(tag="t", mechanism="PLAIN", initial_response=b"\0foo\0bar"),
        ),
        ("t AUTHENTICATE EXTERNAL =", c.Authenticate(tag="t", mechanism="EXTERNAL", initial_response=b"")),
        ('t LOGIN fred "pass word"', c.Login(tag="t", username="fred", password="pass word")),
        ('t LOGIN "a\\"b\\\\c" x]y', c.Login(tag="t", username='a"b\\c', password="x]y")),
        ("t ENABLE condstore utf8=accept", c.Enable(tag="t", capabilities=("CONDSTORE", "UTF8=ACCEPT"))),
        ("t SELECT inbox", c.Select(tag="t", mailbox="INBOX")),
        ("t EXAMINE Archive", c.Select(tag="t", mailbox="Archive", readonly=True)),
        ("t SELECT INBOX (CONDSTORE)", c.Select(tag="t", mailbox="INBOX", condstore=True)),
        (
            "t SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
            c.Select(
                tag="t", mailbox="INBOX", qresync=c.QResync(67890007, 20050715194045000, S(41, (43, 211), (214, 541)))
            ),
        ),
        (
            "t SELECT INBOX (QRESYNC (1 2 1:9 (3,5 7,9)))",
            c.Select(tag="t", mailbox="INBOX", qresync=c.QResync(1, 2, S((1, 9)), (S(3, 5), S(7, 9)))),
        ),
        (
            "t SELECT INBOX (QRESYNC (1 2 (3 7)))",
            c.Select(tag="t", mailbox="INBOX", qresync=c.QResync(1, 2, None, (S(3), S(7)))),
        ),
        ('t CREATE "Sent Items"', c.Create(tag="t", mailbox="Sent Items")),
        ("t CREATE Drafts (USE (\\Drafts))", c.Create(tag="t", mailbox="Drafts", special_use=("\\Drafts",))),
        ("t DELETE foo", c.Delete(tag="t", mailbox="foo")),
        ("t RENAME foo bar", c.Rename(tag="t", mailbox="foo", new_name="bar")),
        ("t RENAME INBOX old", c.Rename(tag="t", mailbox="INBOX", new_name="old")),
        ("t SUBSCRIBE foo", c.Subscribe(tag="t", mailbox="foo")),
        ("t UNSUBSCRIBE foo", c.Unsubscribe(tag="t", mailbox="foo")),
        ('t LSUB "" *', c.Lsub(tag="t", reference="", pattern="*")),
        (
            "t STATUS inbox (MESSAGES uidnext UIDVALIDITY UNSEEN DELETED SIZE RECENT HIGHESTMODSEQ APPENDLIMIT)",
            c.Status(
                tag="t",
                mailbox="INBOX",
                items=(
                    "MESSAGES",
                    "UIDNEXT",
                    "UIDVALIDITY",
                    "UNSEEN",
                    "DELETED",
                    "SIZE",
                    "RECENT",
                    "HIGHESTMODSEQ",
                    "APPENDLIMIT",
                ),
            ),
        ),
        ("t COPY 1:3 Trash", c.Copy(tag="t", sequence_set=S((1, 3)), mailbox="Trash")),
        ("t UID COPY 1:* Trash", c.Copy(tag="t", uid=True, sequence_set=S((1, None)), mailbox="Trash")),
        ("t MOVE $ Junk", c.Move(tag="t", sequence_set=c.SequenceSet(saved=True), mailbox="Junk")),
        ("t UID MOVE 4,2 inbox", c.Move(tag="t", uid=True, sequence_set=S(4, 2), mailbox="INBOX")),
        ("t ID NIL", c.Id(tag="t", params=None)),
        (
            't ID ("name" "Thunderbird" "version" NIL)',
            c.Id(tag="t", params=(("name", "Thunderbird"), ("version", None))),
        ),
        ("t ID ()", c.Id(tag="t", params=())),
        ('t GETQUOTA ""', c.GetQuota(tag="t", root="")),
        ("t GETQUOTAROOT inbox", c.GetQuotaRoot(tag="t", mailbox="INBOX")),
        (
            't SETQUOTA "" (STORAGE 512 message 100)',
            c.SetQuota(tag="t", root="", limits=(("STORAGE", 512), ("MESSAGE", 100))),
        ),
        ('t SETQUOTA "" ()', c.SetQuota(tag="t", root="", limits=())),
        ('t SELECT "Entwürfe"', c.Select(tag="t", mailbox="Entwürfe")),
    ],
)
def test_commands(line, expected):
    assert ok(line) == expected


def test_command_names():
    assert ok("t UID FETCH 1 FLAGS").name == "FETCH"
    assert ok("t EXAMINE x").name == "SELECT"
    assert c.Noop.name == "NOOP" and c.Idle(tag="x").name == "IDLE"


# --------------------------------------------------------------------- LIST


@pytest.mark.parametrize(
    "line, ref, patterns, selection, returns, extended",
    [
        ('t LIST "" *', "", ("*",), set(), c.ListReturn(), False),
        ('t LIST "" ""', "", ("",), set(), c.ListReturn(), False),
        ("t LIST ~/Mail/ %foo]", "~/Mail/", ("%foo]",), set(), c.ListReturn(), False),
        ('t LIST "" ("INBOX" Drafts/*)', "", ("INBOX", "Drafts/*"), set(), c.ListReturn(), True),
        ('t LIST (SUBSCRIBED) "" "*"', "", ("*",), {"SUBSCRIBED"}, c.ListReturn(), True),
        ('t LIST (subscribed recursivematch) "" %', "", ("%",), {"SUBSCRIBED", "RECURSIVEMATCH"}, c.ListReturn(), True),
        (
            't LIST () "" % RETURN (CHILDREN SUBSCRIBED special-use)',
            "",
            ("%",),
            set(),
            c.ListReturn(subscribed=True, children=True, special_use=True),
            True,
        ),
        (
            't LIST "" % RETURN (STATUS (MESSAGES UNSEEN))',
            "",
            ("%",),
            set(),
            c.ListReturn(status=("MESSAGES", "UNSEEN")),
            True,
        ),
        ('t LIST "" % RETURN ()', "", ("%",), set(), c.ListReturn(), True),
        ('t LIST (SPECIAL-USE) "" *', "", ("*",), {"SPECIAL-USE"}, c.ListReturn(), True),
    ],
)
def test_list(line, ref, patterns, selection, returns, extended):
    cmd = ok(line)
    assert isinstance(cmd, c.List)
    assert (cmd.reference, cmd.patterns, set(cmd.selection), cmd.returns, cmd.extended) == (
        ref,
        patterns,
        selection,
        returns,
        extended,
    )


# --------------------------------------------------------------------- FETCH


def F(name, section=None, partial=None, peek=False):
    return c.FetchAttr(name, section, partial, peek)


@pytest.mark.parametrize(
    "items, expected",
    [
        ("FLAGS", (F("FLAGS"),)),
        ("(UID RFC822.SIZE)", (F("UID"), F("RFC822.SIZE"))),
        (
            "(ENVELOPE INTERNALDATE RFC822 RFC822.HEADER RFC822.TEXT BODY BODYSTRUCTURE MODSEQ)",
            tuple(
                F(n)
                for n in (
                    "ENVELOPE",
                    "INTERNALDATE",
                    "RFC822",
                    "RFC822.HEADER",
                    "RFC822.TEXT",
                    "BODY",
                    "BODYSTRUCTURE",
                    "MODSEQ",
                )
            ),
        ),
        ("BODY[]", (F("BODY", c.Section()),)),
        ("body.peek[]<0.2048>", (F("BODY", c.Section(), c.Partial(0, 2048), True),)),
        ("BODY[HEADER]", (F("BODY", c.Section((), "HEADER")),)),
        ("BODY[TEXT]", (F("BODY", c.Section((), "TEXT")),)),
        ("BODY[1.2.3]", (F("BODY", c.Section((1, 2, 3))),)),
        ("BODY[2.MIME]", (F("BODY", c.Section((2,), "MIME")),)),
        ("BODY[1.HEADER]", (F("BODY", c.Section((1,), "HEADER")),)),
        ("BODY[4.2.TEXT]", (F("BODY", c.Section((4, 2), "TEXT")),)),
        (
            'BODY.PEEK[HEADER.FIELDS (From "To" {2+}\r\nCc)]',
            (F("BODY", c.Section((), "HEADER.FIELDS", ("FROM", "TO", "CC")), None, True),),
        ),
        (
            "(BODY[1.header.fields.not (Received)]<10.20>)",
            (F("BODY", c.Section((1,), "HEADER.FIELDS.NOT", ("RECEIVED",)), c.Partial(10, 20)),),
        ),
        ("BINARY[1]", (F("BINARY", c.Section((1,))),)),
        ("BINARY.PEEK[]<5.10>", (F("BINARY", c.Section(), c.Partial(5, 10), True),)),
        ("BINARY.SIZE[2]", (F("BINARY.SIZE", c.Section((2,))),)),
        ("ALL", tuple(F(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"))),
        ("fast", tuple(F(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE"))),
        ("FULL", tuple(F(n) for n in ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"))),
    ],
)
def test_fetch_items(items, expected):
    cmd = ok("t FETCH 1:* " + items)
    assert isinstance(cmd, c.Fetch)
    assert cmd.attrs == expected
    assert cmd.sequence_set == S((1, None))
    assert (cmd.macro is not None) == (items.upper() in ("ALL", "FAST", "FULL"))


def test_fetch_modifiers_and_uid():
    cmd = ok("t UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert cmd.uid and cmd.changedsince == 12345 and cmd.vanished
    assert cmd.attrs == (F("FLAGS"), F("UID"))  # RFC 9051 §6.4.9: UID implied
    cmd = ok("t FETCH 2 (FLAGS) (CHANGEDSINCE 1)")
    assert cmd.changedsince == 1 and not cmd.vanished and not cmd.uid


def test_fetch_response_names():
    cmd = ok("t FETCH 1 (BODY.PEEK[HEADER.FIELDS (DATE FROM)]<0.100> BINARY[1]<4.5> RFC822.SIZE BODY[])")
    assert [a.response_name() for a in cmd.attrs] == [
        "BODY[HEADER.FIELDS (DATE FROM)]<0>",
        "BINARY[1]<4>",
        "RFC822.SIZE",
        "BODY[]",
    ]
    assert [a.sets_seen for a in cmd.attrs] == [False, True, False, True]


# --------------------------------------------------------------------- STORE


@pytest.mark.parametrize(
    "line, mode, silent, flags, unchanged",
    [
        ("t STORE 1 FLAGS (\\Seen)", "", False, ("\\Seen",), None),
        ("t STORE 1 +FLAGS.SILENT (\\seen \\DELETED $Junk)", "+", True, ("\\Seen", "\\Deleted", "$Junk"), None),
        ("t STORE 1 -flags \\Flagged foo", "-", False, ("\\Flagged", "foo"), None),
        ("t STORE 1 FLAGS ()", "", False, (), None),
        ("t STORE 1 (UNCHANGEDSINCE 0) +FLAGS (\\Answered)", "+", False, ("\\Answered",), 0),
        ("t STORE 1 FLAGS (\\Ext)", "", False, ("\\Ext",), None),
    ],
)
def test_store(line, mode, silent, flags, unchanged):
    cmd = ok(line)
    assert isinstance(cmd, c.Store)
    assert (cmd.mode, cmd.silent, cmd.flags, cmd.unchangedsince) == (mode, silent, flags, unchanged)


def test_uid_store():
    cmd = ok("t UID STORE 5:7 (UNCHANGEDSINCE 9) -FLAGS.SILENT (\\Draft)")
    assert cmd.uid and cmd.sequence_set == S((5, 7)) and cmd.mode == "-" and cmd.unchangedsince == 9


# --------------------------------------------------------------------- SEARCH

K = c.SearchCriterion


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ALL", (K("ALL"),)),
        (
            "answered deleted draft flagged new old recent seen unanswered undeleted undraft unflagged unseen",
            tuple(
                K(k)
                for k in (
                    "ANSWERED",
                    "DELETED",
                    "DRAFT",
                    "FLAGGED",
                    "NEW",
                    "OLD",
                    "RECENT",
                    "SEEN",
                    "UNANSWERED",
                    "UNDELETED",
                    "UNDRAFT",
                    "UNFLAGGED",
                    "UNSEEN",
                )
            ),
        ),
        (
            'BCC a BODY "b c" CC d FROM e SUBJECT f TEXT g TO h',
            (
                K("BCC", "a"),
                K("BODY", "b c"),
                K("CC", "d"),
                K("FROM", "e"),
                K("SUBJECT", "f"),
                K("TEXT", "g"),
                K("TO", "h"),
            ),
        ),
        ("KEYWORD $Forwarded UNKEYWORD foo", (K("KEYWORD", "$Forwarded"), K("UNKEYWORD", "foo"))),
        ('HEADER Message-ID "<x@y>"', (K("HEADER", ("Message-ID", "<x@y>")),)),
        (
            'BEFORE 1-Feb-2024 ON "01-Mar-2023" SINCE 29-feb-2024',
            (K("BEFORE", dt.date(2024, 2, 1)), K("ON", dt.date(2023, 3, 1)), K("SINCE", dt.date(2024, 2, 29))),
        ),
        (
            "SENTBEFORE 1-Jan-2000 SENTON 2-Jan-2000 SENTSINCE 3-Jan-2000",
            (
                K("SENTBEFORE", dt.date(2000, 1, 1)),
                K("SENTON", dt.date(2000, 1, 2)),
                K("SENTSINCE", dt.date(2000, 1, 3)),
            ),
        ),
        ("LARGER 100 SMALLER 5000000000", (K("LARGER", 100), K("SMALLER", 5000000000))),
        ("OLDER 60 YOUNGER 3600", (K("OLDER", 60), K("YOUNGER", 3600))),
        (
            "1:5,7 UID 10:* $",
            (c.SearchSet(S((1, 5), 7)), c.SearchSet(S((10, None)), True), c.SearchSet(c.SequenceSet(saved=True))),
        ),
        ("NOT SEEN", (c.SearchNot(K("SEEN")),)),
        ("OR SEEN (FLAGGED FROM x)", (c.SearchOr(K("SEEN"), c.SearchAnd((K("FLAGGED"), K("FROM", "x")))),)),
        (
            "OR OR a b c".replace("a", "SEEN").replace("b", "DRAFT").replace(" c", " NEW"),
            (c.SearchOr(c.SearchOr(K("SEEN"), K("DRAFT")), K("NEW")),),
        ),
        ("MODSEQ 620162338", (c.SearchModSeq(620162338),)),
        ('MODSEQ "/flags/\\\\draft" all 620162338', (c.SearchModSeq(620162338, "/flags/\\draft", "all"),)),
        ("* 1", (c.SearchSet(S((None, None))), c.SearchSet(S(1)))),
    ],
)
def test_search_keys(text, expected):
    cmd = ok("t SEARCH " + text)
    assert isinstance(cmd, c.Search)
    assert cmd.criteria == c.SearchAnd(expected)
    assert cmd.returns is None and cmd.charset is None


def test_search_return_and_charset():
    cmd = ok('t UID SEARCH RETURN (MIN MAX COUNT ALL SAVE) CHARSET UTF-8 SUBJECT "Grüße"')
    assert cmd.uid and cmd.returns == ("MIN", "MAX", "COUNT", "ALL", "SAVE") and cmd.charset == "UTF-8"
    assert cmd.criteria == c.SearchAnd((K("SUBJECT", "Grüße"),))
    assert ok("t SEARCH RETURN () ALL").returns == ("ALL",)  # RFC 4731 §3.1
    # a non-UTF-8 charset decodes the literal with that charset
    evs = events(b"t SEARCH CHARSET ISO-8859-1 SUBJECT {4+}\r\nGr\xfc\xdf\r\n")
    assert evs[0].criteria == c.SearchAnd((K("SUBJECT", "Grüß"),))


def test_search_nested_too_deep_is_limit():
    err = bad("t SEARCH " + "NOT " * 200 + "SEEN")
    assert err.code == "LIMIT"
    err = bad("t SEARCH " + "(" * 200 + "SEEN" + ")" * 200)
    assert err.code == "LIMIT"


def test_walk_search():
    cmd = ok("t SEARCH OR NOT $ UID 1 (MODSEQ 5)")
    kinds = [type(k).__name__ for k in c.walk_search(cmd.criteria)]
    assert kinds == ["SearchAnd", "SearchOr", "SearchNot", "SearchSet", "SearchSet", "SearchAnd", "SearchModSeq"]


# --------------------------------------------------------------------- invalid commands


@pytest.mark.parametrize(
    "line, code",
    [
        ("t FOO", None),
        ("NOOP", None),
        ("t NOOP extra", None),
        ("t NOOP ", None),
        ("+ NOOP", None),
        ("t LOGIN onlyuser", None),
        ('t LOGIN "unterminated pass', None),
        ('t LOGIN "bad\\escape" x', None),
        ("t SELECT", None),
        ("t SELECT INBOX (BOGUS)", None),
        ("t SELECT INBOX ()", None),
        ("t SELECT INBOX (QRESYNC (0 1))", None),
        ("t CREATE x (USE (Drafts))", None),
        ("t CREATE x (FOO)", None),
        ("t STATUS INBOX (MESSAGES BOGUS)", None),
        ("t STATUS INBOX ()", None),
        ("t STATUS INBOX", None),
        ('t LIST (BOGUS) "" *', None),
        ('t LIST (RECURSIVEMATCH) "" *', None),
        ('t LIST "" * RETURN (BOGUS)', None),
        ('t LIST "" * FOO ()', None),
        ("t FETCH 1", None),
        ("t FETCH 0 FLAGS", None),
        ("t FETCH 01 FLAGS", None),
        ("t FETCH 1:2:3 FLAGS", None),
        ("t FETCH 4294967296 FLAGS", None),
        ("t FETCH 1 BOGUS", None),
        ("t FETCH 1 (FLAGS", None),
        ("t FETCH 1 BODY[HEADER.FIELDS]", None),
        ("t FETCH 1 BODY[MIME]", None),
        ("t FETCH 1 BODY[0]", None),
        ("t FETCH 1 BODY[1.FOO]", None),
        ("t FETCH 1 BODY.PEEK", None),
        ("t FETCH 1 BINARY[HEADER]", None),
        ("t FETCH 1 BINARY", None),
        ("t FETCH 1 BODY[]<0.0>", None),
        ("t FETCH 1 BODY[]<5>", None),
        ("t FETCH 1 FLAGS (VANISHED)", None),
        ("t UID FETCH 1 FLAGS (VANISHED)", None),
        ("t FETCH 1 FLAGS (CHANGEDSINCE 0)", None),
        ("t FETCH 1 FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)", None),
        ("t STORE 1 FLAGS (\\Recent)", None),
        ("t STORE 1 LABELS (x)", None),
        ("t STORE 1 *FLAGS (x)", None),
        ("t STORE 1 (UNCHANGEDSINCE x) FLAGS (x)", None),
        ("t SEARCH", None),
        ("t SEARCH BOGUS", None),
        ("t SEARCH FROM", None),
        ("t SEARCH SINCE 31-Feb-2024", None),
        ("t SEARCH SINCE 1-Foo-2024", None),
        ("t SEARCH OR SEEN", None),
        ("t SEARCH RETURN (BOGUS) ALL", None),
        ("t SEARCH MODSEQ x", None),
        ("t SEARCH (SEEN", None),
        ("t SEARCH SEEN)", None),
        ("t UID BOGUS 1", None),
        ("t UID EXPUNGE", None),
        ("t AUTHENTICATE", None),
        ("t AUTHENTICATE PLAIN !!!", None),
        ("t AUTHENTICATE PLAIN AGZvbwBiYXI", None),
        ("t ENABLE", None),
        ("t ID", None),
        ('t ID ("a")', None),
        ("t ID (" + " ".join(f'"k{i}" "v"' for i in range(31)) + ")", None),
        ('t SETQUOTA "" (STORAGE)', None),
        ("t COPY 1", None),
        ("t MOVE 1:* ", None),
        ("t RENAME a", None),
        ('t LOGIN "a\xff" b', None),
        ("t SEARCH CHARSET X-NOPE-42 ALL", "BADCHARSET (US-ASCII UTF-8)"),
    ],
)
def test_invalid(line, code):
    b = line.encode("latin-1") if "\xff" in line else line.encode()
    err = bad(b)
    assert err.code == code
    assert not err.fatal
    expected_tag = {"NOOP": "NOOP", "+ NOOP": None}.get(line, "t")
    assert err.tag == expected_tag
    assert err.text


def test_badcharset_is_no():
    assert bad("t SEARCH CHARSET X-NOPE-42 ALL").status == "NO"


def test_parse_command_direct():
    assert parse_command([b"a NOOP"]) == c.Noop(tag="a")
    assert isinstance(parse_command([b""]), c.ParseError)


# --------------------------------------------------------------------- dates, sets


def test_dates():
    assert parse_date("1-Feb-2024") == dt.date(2024, 2, 1)
    assert parse_date('"01-feb-2024"') == dt.date(2024, 2, 1)
    got = parse_date_time('"17-Jul-1996 02:44:25 -0700"')
    assert got == dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert parse_date_time('" 7-Jul-1996 02:44:25 +0000"').day == 7
    for badd in (
        '"7-Jul-1996 02:44:25 +0000"',
        '"17-Jul-1996 25:44:25 +0000"',
        '"17-Jul-1996 02:44:25 0000"',
        "17-Jul-1996 02:44:25 +0000",
    ):
        with pytest.raises(ValueError):
            parse_date_time(badd)
    with pytest.raises(ValueError):
        parse_date("32-Jan-2020")


def test_sequence_set_resolution():
    s = ok("t FETCH 5:3,10:*,1 FLAGS").sequence_set
    assert s.resolve(12) == [1, 3, 4, 5, 10, 11, 12]
    assert s.iter_ranges(12) == [(1, 1), (3, 5), (10, 12)]
    assert s.resolve(4) == [1, 3, 4, 4][:3]  # 10:* with largest 4 is 4:10 → clipped to 4
    assert s.contains(11, 12) and not s.contains(7, 12) and s.contains(4, 4)
    assert str(s) == "5:3,10:*,1"
    assert s.max_explicit() == 10 and s.uses_star()
    star = S((559, None))  # RFC 9051 §6.4.9: 559:* includes the last UID even if < 559
    assert star.resolve(100) == [100]
    saved = c.SequenceSet(saved=True)
    assert saved.resolve(10, saved=[9, 2, 30]) == [2, 9]
    assert saved.contains(30, 10, saved=[30])
    assert str(saved) == "$"
    assert S(1, (2, 3)).resolve(0) == []


# --------------------------------------------------------------------- reader: literals and framing


def test_sync_literal_needs_continuation():
    r = CommandReader()
    r.feed(b"a LOGIN {4}\r\n")
    assert list(r) == [c.NeedContinuation("a", "LOGIN", 4, False)]
    r.feed(b"fred {6}\r\n")
    assert list(r) == [c.NeedContinuation("a", "LOGIN", 6, False)]
    r.feed(b"se\r\ncr\r\n")
    assert list(r) == [c.Login(tag="a", username="fred", password="se\r\ncr")]
    assert not r.in_command and r.buffered == 0


def test_literal_plus_no_continuation():
    assert events(b'a LOGIN {4+}\r\nfred {3+}\r\nx"y\r\n') == [c.Login(tag="a", username="fred", password='x"y')]


def test_zero_length_literal():
    assert events(b'a LOGIN {0}\r\n ""\r\n') == [
        c.NeedContinuation("a", "LOGIN", 0, False),
        c.Login(tag="a", username="", password=""),
    ]


def test_append_single_and_multi_and_binary():
    data = (
        b'a APPEND "Sent" (\\Seen $Sent) "17-Jul-1996 02:44:25 -0700" {12}\r\nHello\r\nWorld'
        b" ~{3}\r\nA\x00B {2+}\r\nhi\r\n"
    )
    evs = events(data)
    assert [type(e).__name__ for e in evs] == ["NeedContinuation", "NeedContinuation", "Append"]
    assert evs[0].append_message and evs[0].size == 12 and evs[0].command == "APPEND"
    cmd = evs[-1]
    assert cmd.mailbox == "Sent"
    m1, m2, m3 = cmd.messages
    assert m1.data == b"Hello\r\nWorld" and m1.flags == ("\\Seen", "$Sent") and not m1.binary
    assert m1.internal_date == dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert m2.data == b"A\x00B" and m2.binary and m2.flags == () and m2.internal_date is None
    assert m3.data == b"hi"
    assert isinstance(m1.data, bytearray)


def test_append_mailbox_as_literal_uses_normal_limit():
    lim = ImapLimits(max_literal=10, max_append_literal=1000)
    evs = events(b"a APPEND {5}\r\nINBOX {500}\r\n" + b"x" * 500 + b"\r\n", lim)
    assert evs[0] == c.NeedContinuation("a", "APPEND", 5, False)
    assert evs[1] == c.NeedContinuation("a", "APPEND", 500, True)
    assert evs[2].mailbox == "INBOX" and len(evs[2].messages[0].data) == 500
    # a too-big mailbox literal in APPEND is held to the normal literal cap
    evs = events(b"a APPEND {50}\r\n", lim)
    assert evs == [c.ParseError("a", "TOOBIG", "Literal too big")]


def test_nul_in_plain_literal_rejected():
    err = events(b"a APPEND x {3+}\r\na\x00b\r\n")[0]
    assert isinstance(err, c.ParseError) and err.tag == "a"


def test_literal8_only_in_append():
    err = events(b"a LOGIN ~{3+}\r\nabc x\r\n")[0]
    assert isinstance(err, c.ParseError) and err.tag == "a"


SCRIPT = (
    b"a1 LOGIN {4}\r\nfred {6+}\r\nse\r\ncr\r\n"
    b"a2 SELECT INBOX (CONDSTORE)\r\n"
    b"a3 APPEND Drafts (\\Draft) {20}\r\nSubject: x\r\n\r\nbody\r\n\r\n"
    b"a4 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS ({4}\r\nDate)])\r\n"
    b"a5 SEARCH CHARSET UTF-8 SUBJECT {5+}\r\n\xc3\xa9t\xc3\xa9 UNSEEN\r\n"
    b"\r\n"
    b"a6 NOOP\n"
    b"a7 LOGOUT\r\n"
)


def test_script_events():
    evs = events(SCRIPT)
    kinds = [type(e).__name__ for e in evs]
    assert kinds == [
        "NeedContinuation",
        "Login",
        "Select",
        "NeedContinuation",
        "Append",
        "NeedContinuation",
        "Fetch",
        "Search",
        "Noop",
        "Logout",
    ]
    assert evs[4].messages[0].data == b"Subject: x\r\n\r\nbody\r\n"
    assert evs[6].attrs[1].section.headers == ("DATE",)
    assert evs[7].criteria == c.SearchAnd((K("SUBJECT", "été"), K("UNSEEN")))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 13, 64])
def test_chunk_boundaries_give_same_result(chunk):
    assert events(SCRIPT, chunk=chunk) == events(SCRIPT)


@given(st.lists(st.integers(min_value=1, max_value=len(SCRIPT)), max_size=20))
@settings(max_examples=200)
def test_random_split_points(cuts):
    cuts = sorted(set(cuts))
    r = CommandReader()
    out = []
    prev = 0
    for cut in cuts + [len(SCRIPT)]:
        r.feed(SCRIPT[prev:cut])
        out.extend(r)
        prev = cut
    assert out == events(SCRIPT)


# --------------------------------------------------------------------- reader: limits before data


def test_sync_literal_too_big_rejected_before_data():
    r = CommandReader()
    r.feed(b"a LOGIN {200000}\r\n")
    evs = list(r)
    assert evs == [c.ParseError("a", "TOOBIG", "Literal too big")]
    assert not any(isinstance(e, c.NeedContinuation) for e in evs)
    # the client abandons the command; the next line is a fresh command
    r.feed(b"b NOOP\r\n")
    assert list(r) == [c.Noop(tag="b")]


def test_append_too_big_is_no_toobig():
    lim = ImapLimits(max_append_literal=1000)
    r = CommandReader(lim)
    r.feed(b"a APPEND INBOX {1001}\r\n")
    assert list(r) == [c.ParseError("a", "TOOBIG", "Message too big", status="NO")]
    r.feed(b"a APPEND INBOX {1000}\r\n")
    assert list(r) == [c.NeedContinuation("a", "APPEND", 1000, True)]


def test_append_total_cap_multiappend():
    lim = ImapLimits(max_append_literal=1000, max_append_total=1500)
    evs = events(b"a APPEND INBOX {800+}\r\n" + b"x" * 800 + b" {800+}\r\n" + b"y" * 800 + b"\r\nb NOOP\r\n", lim)
    assert evs == [c.ParseError("a", "TOOBIG", "Message too big", status="NO"), c.Noop(tag="b")]


def test_nonsync_too_big_is_discarded_without_buffering():
    lim = ImapLimits(max_literal=100)
    r = CommandReader(lim)
    r.feed(b"a LOGIN {5000+}\r\n")
    assert list(r) == [c.ParseError("a", "TOOBIG", "Literal too big")]
    total = 0
    for _ in range(5):
        r.feed(b"z" * 1000)
        assert list(r) == []
        total += r.buffered
    assert total == 0  # counted out, nothing kept
    # rest of the rejected command (with another non-sync literal) is skipped too
    r.feed(b" {3+}\r\nabc\r\nb NOOP\r\n")
    assert list(r) == [c.Noop(tag="b")]


def test_nonsync_too_big_beyond_discard_is_fatal():
    lim = ImapLimits(max_literal=100, max_discard=10_000)
    r = CommandReader(lim)
    r.feed(b"a LOGIN {10001+}\r\nb NOOP\r\n")
    evs = list(r)
    assert len(evs) == 1 and evs[0].fatal and evs[0].code == "TOOBIG"
    r.feed(b"c NOOP\r\n")
    assert list(r) == []


def test_literal_minus_limit():
    # RFC 7888 §4: with LITERAL- (literal_plus=False) {n+} is limited to 4096 octets
    lim = ImapLimits(literal_plus=False)
    evs = events(b"a LOGIN {4097+}\r\n" + b"x" * 4097 + b" y\r\nb NOOP\r\n", lim)
    assert evs == [c.ParseError("a", "TOOBIG", "Non-synchronizing literal too big"), c.Noop(tag="b")]
    evs = events(b"a LOGIN {4096+}\r\n" + b"x" * 4096 + b" y\r\n", lim)
    assert isinstance(evs[0], c.Login) and len(evs[0].username) == 4096
    # the non-standard {n-} form is taken as non-synchronising and held to 4096 as well
    evs = events(b"a LOGIN {5000-}\r\n" + b"x" * 5000 + b" y\r\nb NOOP\r\n")
    assert evs == [c.ParseError("a", "TOOBIG", "Non-synchronizing literal too big"), c.Noop(tag="b")]


def test_line_too_long_rejected_before_end_of_line():
    lim = ImapLimits(max_line=100)
    r = CommandReader(lim)
    r.feed(b"a LOGIN " + b"x" * 200)
    evs = list(r)
    assert evs == [c.ParseError("a", "TOOBIG", "Line too long")]
    r.feed(b"y" * 10_000)
    assert list(r) == [] and r.buffered == 0
    r.feed(b"\r\nb NOOP\r\n")
    assert list(r) == [c.Noop(tag="b")]


def test_line_too_long_ending_in_nonsync_literal_is_skipped():
    lim = ImapLimits(max_line=50)
    evs = events(b"a LOGIN " + b"x" * 100 + b" {3+}\r\nabc\r\nb NOOP\r\n", lim)
    assert evs == [c.ParseError("a", "TOOBIG", "Line too long"), c.Noop(tag="b")]


def test_command_total_cap():
    lim = ImapLimits(max_command=1000, max_literal=800)
    evs = events(b"a LOGIN {600+}\r\n" + b"x" * 600 + b" {600+}\r\n" + b"y" * 600 + b"\r\nb NOOP\r\n", lim)
    assert evs == [c.ParseError("a", "TOOBIG", "Literal too big"), c.Noop(tag="b")]


def test_too_many_literals():
    lim = ImapLimits(max_literals=3)
    data = b"a FETCH 1 BODY[HEADER.FIELDS (" + b" ".join([b"{1+}\r\nx"] * 4) + b")]\r\nb NOOP\r\n"
    evs = events(data, lim)
    assert evs == [c.ParseError("a", "LIMIT", "Too many literals"), c.Noop(tag="b")]
    assert isinstance(events(data, ImapLimits(max_literals=4))[0], c.Fetch)


def test_unknown_command_or_bad_tag_with_literal_gets_no_continuation():
    assert events(b"a BOGUS {5}\r\n") == [c.ParseError("a", None, "Unknown command")]
    assert events(b"{5}\r\n") == [c.ParseError(None, None, "Missing or invalid tag")]


def test_cancel_command_after_refusing_continuation():
    r = CommandReader()
    r.feed(b"a APPEND Nope {10}\r\n")
    assert list(r) == [c.NeedContinuation("a", "APPEND", 10, True)]
    r.cancel_command()  # server answered "a NO [TRYCREATE]" instead of "+"
    r.feed(b"b NOOP\r\n")
    assert list(r) == [c.Noop(tag="b")]


def test_large_append_single_buffer():
    size = 3 * 1024 * 1024
    r = CommandReader()
    r.feed(b"a APPEND INBOX {%d}\r\n" % size)
    assert list(r) == [c.NeedContinuation("a", "APPEND", size, True)]
    chunk = b"0123456789abcdef" * 4096
    sent = 0
    while sent < size:
        part = chunk[: size - sent]
        r.feed(part)
        sent += len(part)
        assert list(r) == []
        assert r.buffered == 0
    r.feed(b"\r\n")
    (cmd,) = list(r)
    data = cmd.messages[0].data
    assert len(data) == size and data[:16] == b"0123456789abcdef"


# --------------------------------------------------------------------- modes


def test_idle_done():
    r = CommandReader()
    r.feed(b"i IDLE\r\ndone\r\nn NOOP\r\n")
    ev = r.next_event()
    assert ev == c.Idle(tag="i")
    r.expect_idle_done(ev.tag)
    assert list(r) == [c.IdleDone("i"), c.Noop(tag="n")]


def test_idle_not_done():
    r = CommandReader()
    r.feed(b"i IDLE\r\n")
    assert list(r) == [c.Idle(tag="i")]
    r.expect_idle_done("i")
    r.feed(b"x NOOP\r\ny NOOP\r\n")
    assert list(r) == [c.ParseError("i", None, "Expected DONE to end IDLE"), c.Noop(tag="y")]


def test_authenticate_raw_lines():
    r = CommandReader()
    r.feed(b"a AUTHENTICATE PLAIN\r\nAGZyZWQAc2VjcmV0\r\nb NOOP\r\n")
    ev = r.next_event()
    assert ev == c.Authenticate(tag="a", mechanism="PLAIN")
    r.expect_raw_line()
    assert r.next_event() == c.RawLine(b"AGZyZWQAc2VjcmV0")
    assert list(r) == [c.Noop(tag="b")]


def test_starttls_drops_pipelined_plaintext():
    r = CommandReader()
    r.feed(b"a STARTTLS\r\nb LOGIN evil injected\r\n")
    assert r.next_event() == c.StartTLS(tag="a")
    assert r.take_buffered() == b"b LOGIN evil injected\r\n"
    assert list(r) == []


def test_empty_lines_ignored_and_bare_lf():
    assert events(b"\r\n\r\na NOOP\nb NOOP\r\n") == [c.Noop(tag="a"), c.Noop(tag="b")]


# --------------------------------------------------------------------- properties


def _per_line_invariant(data: bytes, limits: ImapLimits) -> None:
    r = CommandReader(limits)
    r.feed(data)
    evs = list(r)  # must not raise
    for e in evs:
        assert isinstance(e, (c.Command, c.ParseError, c.NeedContinuation)), e


@given(st.binary(max_size=400))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_random_bytes_never_raise(data):
    _per_line_invariant(data, ImapLimits(max_line=200, max_literal=100, max_command=500))


WORDS = [
    "a",
    "A1",
    "NOOP",
    "UID",
    "FETCH",
    "SEARCH",
    "STORE",
    "LIST",
    "SELECT",
    "APPEND",
    "LOGIN",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    "1:*",
    "$",
    "*",
    '"x"',
    '"\\""',
    "BODY[",
    "HEADER.FIELDS",
    "NOT",
    "OR",
    "FLAGS",
    "+FLAGS",
    "\\Seen",
    "{3+}\r\nabc",
    "{2}\r\nxy",
    "~{1+}\r\n\x00",
    "RETURN",
    "CHARSET",
    "INBOX",
    "1-Jan-2020",
    '"01-Jan-2020 00:00:00 +0000"',
    "NIL",
    "%",
    "CHANGEDSINCE",
    "VANISHED",
    "\xe9",
]


@given(st.lists(st.lists(st.sampled_from(WORDS), max_size=12), min_size=1, max_size=5))
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_command_like_lines_one_result_each(lines):
    data = b"".join((" ".join(ws)).encode("utf-8") + b"\r\n" for ws in lines)
    r = CommandReader(ImapLimits(max_line=200, max_literal=100))
    r.feed(data)
    evs = list(r)
    finals = [e for e in evs if isinstance(e, (c.Command, c.ParseError))]
    assert not any(isinstance(e, c.ParseError) and e.fatal for e in evs)
    # each non-empty CRLF-terminated line that is not literal data gives at most one
    # final answer, and a line that completes a command gives exactly one
    assert len(finals) <= data.count(b"\n")
    nonempty = [ws for ws in lines if " ".join(ws).strip()]
    if not any("{" in w for ws in lines for w in ws):
        assert len(finals) == len(nonempty)


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=17))
@settings(max_examples=200)
def test_random_bytes_chunking_invariant(data, chunk):
    lim = ImapLimits(max_line=120, max_literal=60, max_command=400)
    assert events(data, lim, chunk=chunk) == events(data, lim)


def test_absurd_literal_sizes():
    # sync: refused at once, no continuation, reader goes on with the next line
    assert events(b"a LOGIN {" + b"9" * 40 + b"}\r\nb NOOP\r\n") == [
        c.ParseError("a", "TOOBIG", "Literal too big"),
        c.Noop(tag="b"),
    ]
    # non-sync: the client would send the bytes; they cannot be counted out → fatal
    (err,) = events(b"a LOGIN {" + b"9" * 40 + b"+}\r\nb NOOP\r\n")
    assert err.fatal and err.code == "TOOBIG"
    # same while skipping an over-long line whose literal header is longer than the kept tail
    (err0, err1) = events(b"a LOGIN " + b"x" * 300 + b" {" + b"9" * 40 + b"+}\r\nb NOOP\r\n", ImapLimits(max_line=100))
    assert err0.code == "TOOBIG" and not err0.fatal and err1.fatal


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_stream_append_delivers_chunks(chunk):
    msg1 = b"Subject: one\r\n\r\n" + bytes(range(1, 256)) * 50
    msg2 = b"B\x00C"
    data = b"a APPEND {5}\r\nINBOX (\\Seen) {%d}\r\n" % len(msg1) + msg1 + b" ~{3+}\r\n" + msg2 + b"\r\nb NOOP\r\n"
    r = CommandReader(stream_append=True)
    evs = []
    step = chunk or len(data)
    for i in range(0, len(data), step):
        r.feed(data[i : i + step])
        evs.extend(r)
        assert r.buffered == 0 or not r.in_command or r.buffered < step + 64
    parts: dict[int, bytearray] = {}
    lasts = []
    for e in evs:
        if isinstance(e, c.AppendData):
            assert e.tag == "a"
            parts.setdefault(e.index, bytearray()).extend(e.chunk)
            if e.last:
                lasts.append(e.index)
    assert lasts == [0, 1]
    assert parts == {0: bytearray(msg1), 1: bytearray(msg2)}
    finals = [e for e in evs if isinstance(e, (c.Command, c.ParseError))]
    assert [type(e).__name__ for e in finals] == ["Append", "Noop"]
    m1, m2 = finals[0].messages
    assert m1.streamed and m2.streamed and m2.binary and m1.flags == ("\\Seen",)
    assert m1.data == b"" and finals[0].mailbox == "INBOX"
    # the mailbox literal was not streamed (it is not message data)
    assert [e for e in evs if isinstance(e, c.NeedContinuation)] == [
        c.NeedContinuation("a", "APPEND", 5, False),
        c.NeedContinuation("a", "APPEND", len(msg1), True),
    ]


def test_stream_append_limits_still_apply():
    r = CommandReader(ImapLimits(max_append_literal=10), stream_append=True)
    r.feed(b"a APPEND INBOX {11}\r\n")
    assert list(r) == [c.ParseError("a", "TOOBIG", "Message too big", status="NO")]
