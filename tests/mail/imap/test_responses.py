"""Tests for the IMAP response encoder (suite.mail.imap.responses) and modified UTF-7."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suite.mail.imap import commands as c
from suite.mail.imap import responses as r
from suite.mail.imap.mutf7 import mutf7_decode, mutf7_encode
from suite.mail.imap.parse import CommandReader, parse_date_time


def reparse_login_user(encoded: bytes) -> str:
    """Feed ``a LOGIN <encoded> x`` to the real command reader and return the user name."""
    rd = CommandReader()
    rd.feed(b"a LOGIN " + encoded + b" x\r\n")
    evs = [e for e in rd if not isinstance(e, c.NeedContinuation)]
    assert len(evs) == 1 and isinstance(evs[0], c.Login), evs
    return evs[0].username


# --------------------------------------------------------------------- strings


@pytest.mark.parametrize(
    "value, expected",
    [
        ("plain", b'"plain"'),
        ('a"b\\c', b'"a\\"b\\\\c"'),
        ("", b'""'),
        ("two\r\nlines", b"{10}\r\ntwo\r\nlines"),
        ("caf\xe9", b"{5}\r\ncaf\xc3\xa9"),
        (b"nul\x00", b"{4}\r\nnul\x00"),
        ("x" * 2000, b"{2000}\r\n" + b"x" * 2000),
    ],
)
def test_string(value, expected):
    assert r.string(value) == expected


def test_string_utf8_accept_is_quoted():
    # RFC 9051 §4.3 / RFC 6855: UTF-8 may go in quoted strings once UTF8=ACCEPT is enabled
    assert r.string("café", utf8=True) == '"café"'.encode()
    assert r.string(b"\xff", utf8=True) == b"{1}\r\n\xff"  # not UTF-8 → literal


@pytest.mark.parametrize(
    "value, expected",
    [
        ("INBOX", b"INBOX"),
        ("a]b", b"a]b"),
        ("a b", b'"a b"'),
        ("NIL", b'"NIL"'),
        ("", b'""'),
        ("a*", b'"a*"'),
        ("x{1}", b'"x{1}"'),
    ],
)
def test_astring(value, expected):
    assert r.astring(value) == expected


def test_nstring_and_literals():
    assert r.nstring(None) == b"NIL"
    assert r.nstring("x") == b'"x"'
    assert r.literal(b"abc") == b"{3}\r\nabc"
    assert r.literal(b"a\0c", binary=True) == b"~{3}\r\na\0c"


@given(st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=300))
@settings(max_examples=300)
def test_string_round_trip_through_parser(text):
    # (NUL cannot travel in an IMAP string at all, RFC 9051 §4.3.)  Whatever form the encoder picks (quoted or literal), the parser reads the same text
    assert reparse_login_user(r.string(text)) == text
    assert reparse_login_user(r.string(text, utf8=True)) == text


@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=60))
@settings(max_examples=300)
def test_astring_round_trip_through_parser(text):
    assert reparse_login_user(r.astring(text)) == text


# --------------------------------------------------------------------- values


def test_encode_values():
    v = [
        None,
        7,
        r.Atom("\\Seen"),
        "x y",
        b"raw",
        [1, [r.Atom("A")]],
        r.Raw(b"(pre encoded)"),
        c.SequenceSet.of((1, 3), (5, None)),
    ]
    assert r.encode(v) == b'(NIL 7 \\Seen "x y" "raw" (1 (A)) (pre encoded) 1:3,5:*)'
    assert r.encode(r.Literal(b"q")) == b"{1}\r\nq"
    assert r.encode(r.Literal8(b"\0")) == b"~{1}\r\n\0"
    with pytest.raises(TypeError):
        r.encode(object())
    with pytest.raises(TypeError):
        r.encode(True)


@pytest.mark.parametrize(
    "when",
    [
        dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7))),
        dt.datetime(2024, 2, 5, 23, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
        dt.datetime(2000, 1, 1, 0, 0, 0, tzinfo=dt.UTC),
    ],
)
def test_date_time_round_trip(when):
    enc = r.date_time(when)
    assert len(enc) == 28  # RFC 9051 §9: fixed-width date-time incl. quotes
    assert parse_date_time(enc.decode()) == when


def test_date_time_format():
    when = dt.datetime(1996, 7, 7, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    assert r.date_time(when) == b'" 7-Jul-1996 02:44:25 -0700"'


@pytest.mark.parametrize(
    "nums, expected",
    [([], b""), ([5], b"5"), ([3, 1, 2, 2], b"1:3"), ([1, 2, 3, 5, 7, 8], b"1:3,5,7:8")],
)
def test_seqset(nums, expected):
    assert r.seqset(nums) == expected


@given(st.sets(st.integers(min_value=1, max_value=500), max_size=60))
def test_seqset_round_trip(nums):
    enc = r.seqset(nums)
    if not nums:
        assert enc == b""
        return
    rd = CommandReader()
    rd.feed(b"a UID EXPUNGE " + enc + b"\r\n")
    (cmd,) = list(rd)
    assert cmd.uid_set.resolve(500) == sorted(nums)


# --------------------------------------------------------------------- responses


def test_status_lines():
    assert r.tagged("a1", "OK", "done") == b"a1 OK done\r\n"
    assert r.tagged("a1", "NO", "no such mailbox", "TRYCREATE") == b"a1 NO [TRYCREATE] no such mailbox\r\n"
    assert (
        r.tagged("a", "OK", "x", r.response_code("APPENDUID", 38505, r.Atom("3955")))
        == b"a OK [APPENDUID 38505 3955] x\r\n"
    )
    assert r.tagged("a", "BAD", "bad\r\ninjected") == b"a BAD bad  injected\r\n"
    assert (
        r.untagged_status("OK", "hi", r.response_code("PERMANENTFLAGS", [r.Atom("\\Seen"), r.Atom("\\*")]))
        == b"* OK [PERMANENTFLAGS (\\Seen \\*)] hi\r\n"
    )
    assert r.bye("bye") == b"* BYE bye\r\n"
    assert r.continuation() == b"+ Ready\r\n"
    assert r.untagged(5, r.Atom("EXISTS")) == b"* 5 EXISTS\r\n"
    assert r.capability(["IMAP4rev2", "IDLE"]) == b"* CAPABILITY IMAP4rev2 IDLE\r\n"


def test_parse_error_answer_round_trip():
    # a ParseError from the reader maps onto a tagged answer
    rd = CommandReader()
    rd.feed(b"a LOGIN {999999}\r\n")
    (err,) = list(rd)
    assert r.tagged(err.tag, err.status, err.text, err.code) == b"a BAD [TOOBIG] Literal too big\r\n"


def test_fetch_response():
    cmd_reader = CommandReader()
    cmd_reader.feed(b"a FETCH 1 (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)]<0.50> BINARY[1] INTERNALDATE)\r\n")
    (cmd,) = list(cmd_reader)
    uid, flags, hdr, binary, idate = cmd.attrs
    when = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    body = b"Subject: hi\r\n\r\n"
    chunks = r.fetch_response_chunks(
        12, [(uid, 99), (flags, [r.Atom("\\Seen")]), (hdr, body), (binary, r.Literal8(b"\0\1")), (idate, when)]
    )
    assert any(ch is body for ch in chunks)  # literal data is not copied
    assert b"".join(chunks) == (
        b"* 12 FETCH (UID 99 FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT)]<0> {15}\r\nSubject: hi\r\n\r\n"
        b' BINARY[1] ~{2}\r\n\0\1 INTERNALDATE " 2-Jan-2024 03:04:05 +0000")\r\n'
    )
    assert (
        r.fetch_response(1, [("RFC822.SIZE", 5), ("ENVELOPE", r.Raw(b"(NIL)"))])
        == b"* 1 FETCH (RFC822.SIZE 5 ENVELOPE (NIL))\r\n"
    )


def test_envelope_value():
    env = r.envelope(
        "Mon, 1 Jan 2024 00:00:00 +0000",
        "Hi",
        [r.address("Fred", None, "fred", "ex.org")],
        None,
        [],
        None,
        None,
        None,
        None,
        "<id@x>",
    )
    assert r.encode(env) == (
        b'("Mon, 1 Jan 2024 00:00:00 +0000" "Hi" (("Fred" NIL "fred" "ex.org")) NIL NIL NIL NIL NIL NIL "<id@x>")'
    )


def test_search_and_esearch():
    assert r.search_response([]) == b"* SEARCH\r\n"
    assert r.search_response([1, 4], modseq=9) == b"* SEARCH 1 4 (MODSEQ 9)\r\n"
    assert (
        r.esearch_response("a1", True, min=1, max=9, count=3, all=[1, 2, 9])
        == b'* ESEARCH (TAG "a1") UID MIN 1 MAX 9 COUNT 3 ALL 1:2,9\r\n'
    )
    assert r.esearch_response("a", False, count=0, all=[]) == b'* ESEARCH (TAG "a") COUNT 0\r\n'


def test_list_status_vanished():
    assert (
        r.list_response(["\\HasNoChildren", "\\Drafts"], "/", "Drafts")
        == b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
    )
    assert (
        r.list_response([], None, "x", [("CHILDINFO", ["SUBSCRIBED"])])
        == b'* LIST () NIL "x" (CHILDINFO ("SUBSCRIBED"))\r\n'
    )
    assert r.list_response([], "/", "a", command="LSUB") == b'* LSUB () "/" "a"\r\n'
    assert (
        r.status_response("INBOX", [("MESSAGES", 3), ("UIDNEXT", 4)]) == b'* STATUS "INBOX" (MESSAGES 3 UIDNEXT 4)\r\n'
    )
    assert r.vanished([5, 1, 2, 3], earlier=True) == b"* VANISHED (EARLIER) 1:3,5\r\n"


# --------------------------------------------------------------------- modified UTF-7


@pytest.mark.parametrize(
    "text, encoded",
    [
        ("INBOX", "INBOX"),
        ("&", "&-"),
        ("Entwürfe", "Entw&APw-rfe"),
        # RFC 3501 §5.1.3 example
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("\U0001f600", "&2D3eAA-"),
        ("a\tb", "a&AAk-b"),
    ],
)
def test_mutf7(text, encoded):
    assert mutf7_encode(text) == encoded
    assert mutf7_decode(encoded) == text
    assert mutf7_decode(encoded.encode()) == text


@pytest.mark.parametrize("bad", ["&", "&Jjo", "&AGE-", "&U,BTF2XlZyyKng-x&-&*-", "\xe9", "&A-", "a\tb"])
def test_mutf7_invalid(bad):
    with pytest.raises(ValueError):
        mutf7_decode(bad)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=50))
def test_mutf7_round_trip(text):
    enc = mutf7_encode(text)
    assert enc.isascii()
    assert mutf7_decode(enc) == text


@pytest.mark.parametrize(
    "names",
    [("FLAGS",), ("UID", "FLAGS"), ("FLAGS", "UID", "FLAGS"), ("MODSEQ", "RFC822.SIZE", "INTERNALDATE", "FLAGS")],
)
@pytest.mark.parametrize("uid", [False, True])
@pytest.mark.parametrize("add_modseq", [False, True])
def test_fetch_view_fast_path_same_bytes(names, uid, add_modseq):
    """FETCH items from the view alone take a fast path; its lines are the general path's bytes."""
    from suite.mail.imap import fetch
    from suite.mail.imap.commands import FetchAttr
    from suite.mail.imap.responses import fetch_response
    from suite.mail.imap.view import Msg

    attrs = tuple(FetchAttr(n) for n in names)
    render = fetch.view_renderer(attrs, uid=uid, add_modseq=add_modseq)
    msgs = [Msg(7, 42, ("\\Seen", "$Label"), 1234, 1.7e9, "b"), Msg(9, 43, (), 5, 1.6e9, "c", recent=True)]
    for seq, m in enumerate(msgs + msgs, 1):
        items, _ = fetch.render(seq, m, attrs, uid=uid, structure=None, raw=None, add_modseq=add_modseq)
        assert render(seq, m) == fetch_response(seq, items)
