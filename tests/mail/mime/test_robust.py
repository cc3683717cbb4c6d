"""Property tests: mangled MIME never raises anything but MimeError; big messages parse fast."""

from __future__ import annotations

import base64

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suite.mail.mime import MimeError, bodystructure, envelope, parse_structure
from suite.mail.mime.decode import binary
from suite.mail.mime.searchtext import search_text, sent_date, subject
from suite.mail.mime.sections import SectionSpec, section
from suite.testing import MAIL_CORPUS as CORPUS
from suite.testing import mail_corpus

SEEDS = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))[:40]] if CORPUS.is_dir() else []
SEEDS.append(
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: x\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nhi\r\n--c--\r\n"
    b"--b\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--b--\r\n"
)

TOKENS = [
    b"\r\n",
    b"\n",
    b"--b",
    b"--c--",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"=?utf-8?q?=C3=A9?=",
    b"=ZZ",
    b"==",
    b'From: "a\\" b" <x@[1.2',
    b"To: g: a@b, (c) <d@e>;\r\n",
    b"\x00",
    b"\xff\xfe",
    b" \t",
    b":",
    b"Content-Disposition: attachment; filename*0*=utf-8''a%; filename*1=b\r\n",
    b"(",
    b")",
]


def exercise(raw: bytes) -> None:
    s = parse_structure(raw)
    envelope(s, raw)
    bodystructure(s, True)
    bodystructure(s, False)
    s2 = type(s).from_json(s.to_json())
    assert bodystructure(s2, True) == bodystructure(s, True)
    for path in [(), (1,), (2,), (1, 1), (2, 1), (1, 2, 1)]:
        for kind in (None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS"):
            try:
                section(raw, s, SectionSpec(path, kind, (b"Subject", b"From")))
            except MimeError:
                pass
        try:
            binary(raw, s, path)
        except MimeError:
            pass
    t = search_text(raw, s)
    t.matches_text("x")
    subject(raw, s)
    sent_date(raw, s)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS) | st.binary(max_size=12), max_size=40))
def test_token_soup_never_crashes(chunks):
    exercise(b"".join(chunks))


def test_fuzz_seeds_include_the_corpus():
    """The fuzzing below starts from 40 corpus messages; without the corpus it would quietly shrink."""
    mail_corpus()
    assert len(SEEDS) == 41


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEEDS),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.sampled_from(TOKENS) | st.binary(max_size=8)),
        max_size=6,
    ),
)
def test_mangled_corpus_never_crashes(seed, edits):
    raw = bytearray(seed)
    for pos, cut, ins in edits:
        pos %= len(raw) + 1
        raw[pos : pos + cut] = ins
    exercise(bytes(raw))


def test_deep_nesting_is_bounded():
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(500))
    s = parse_structure(raw)
    depth, p = 0, s.root
    while p.children:
        p, depth = p.children[0], depth + 1
    assert depth <= 101
    bodystructure(s, True)


@pytest.mark.timeout(60)  # a hang guard against quadratic scanning, not a timing assertion (bench/ has figures)
def test_large_message_parses_in_one_pass():
    blob = base64.encodebytes(bytes(range(256)) * (18 * 1024 * 1024 // 256)).replace(b"\n", b"\r\n")
    parts = [b"--XX\r\nContent-Type: text/plain\r\n\r\nhello\r\n"]
    for i in range(3):
        parts.append(
            b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=f%d.bin\r\n\r\n" % i + blob[: len(blob) // 3] + b"\r\n"
        )
    raw = (
        b"From: a@b.example\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n" + b"".join(parts) + b"--XX--\r\n"
    )
    assert len(raw) > 24 * 1024 * 1024
    s = parse_structure(raw)
    assert len(s.root.children) == 4
    assert s.root.children[1].disp_params == [(b"filename", b"f0.bin")]
    assert s.root.children[3].body_end - s.root.children[3].body_start == len(blob) // 3


def test_nested_sections_rfc9051():
    raw = (
        b"Subject: outer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
        b"--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Subject: inner\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n"
        b"--c\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--c\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--c--\r\n"
        b"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9=\r\n!\r\n"
        b"--b--\r\n"
    )
    s = parse_structure(raw)
    assert section(raw, s, SectionSpec((1,))) == b"first"
    assert section(raw, s, SectionSpec((1,), "MIME")) == b"Content-Type: text/plain\r\n\r\n"
    assert section(raw, s, SectionSpec((2,), "HEADER")).startswith(b"Subject: inner\r\n")
    assert section(raw, s, SectionSpec((2,), "HEADER.FIELDS", (b"SUBJECT",))) == b"Subject: inner\r\n\r\n"
    assert (
        section(raw, s, SectionSpec((), "HEADER.FIELDS.NOT", (b"subject", b"mime-version")))
        == b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    assert section(raw, s, SectionSpec((2, 1))) == b"inner text"
    assert section(raw, s, SectionSpec((2, 2), "MIME")) == b"Content-Type: text/html\r\n\r\n"
    assert section(raw, s, SectionSpec((2,), "TEXT")).startswith(b"--c\r\n")
    assert binary(raw, s, (3,)) == "café!".encode()
    t = search_text(raw, s)
    assert t.matches_body("CAFÉ") and t.matches_body("inner TEXT") and not t.matches_body("outer")
    assert t.matches_header("subject", "OUT")
    assert b'"message" "rfc822"' in bodystructure(s, True)
