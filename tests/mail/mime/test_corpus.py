"""Differential tests against Dovecot 2.3's recorded FETCH / SEARCH answers.

For every message of the reference corpus (tests/data/mail) we rebuild the untagged FETCH data from
suite.mail.mime and compare it byte for byte with what Dovecot sent. Known, deliberate differences are
cases marked xfail(strict=True) with their reason (tests/mail/mail_corpus.py); exchanges Dovecot could
not record are not generated.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import mail_corpus as corpus

from suite.mail.mime import MessageStructure, MimeError, bodystructure, envelope, parse_structure
from suite.mail.mime.decode import binary
from suite.mail.mime.imapquote import literal
from suite.mail.mime.searchtext import search_text
from suite.mail.mime.sections import SectionSpec, partial, section
from suite.testing import mail_corpus

SECTIONS = {
    "fetch_header": (b"BODY[HEADER]", SectionSpec((), "HEADER"), None),
    "fetch_part1_mime": (b"BODY[1.MIME]", SectionSpec((1,), "MIME"), None),
    "fetch_text_0_64": (b"BODY[TEXT]<0>", SectionSpec((), "TEXT"), (0, 64)),
}
SEARCHES = {"search_subject": "subject", "search_from": "from", "search_body": None, "search_message_id": "message-id"}


def _msg(name: str):
    d, raw, exs = corpus.load(name)
    return raw, parse_structure(raw), exs


def _fetch(items: bytes) -> bytes:
    return b"* 1 FETCH (UID 1 " + items + b")\r\n"


def test_corpus_present():
    assert len(list(mail_corpus().glob("*.eml"))) == len(corpus.NAMES) >= 200


@pytest.mark.parametrize("name", corpus.messages())
def test_fetch_structure(name):
    """RFC822.SIZE, ENVELOPE, BODYSTRUCTURE, BODY (RFC 9051 §7.5.2)."""
    raw, st, exs = _msg(name)
    ex = exs.get("fetch_structure_without_binary_size") or exs["fetch_structure"]
    exp = re.sub(rb" BINARY\.SIZE\[1\] \d+\)\r\n$", b")\r\n", corpus.untagged(ex))
    got = _fetch(
        b"RFC822.SIZE %d ENVELOPE %s BODYSTRUCTURE %s BODY %s"
        % (st.size, envelope(st, raw), bodystructure(st, True), bodystructure(st, False))
    )
    assert got == exp


@pytest.mark.parametrize("name", corpus.messages(corpus.BINARY))
def test_binary_size(name):
    """BINARY.SIZE[1] (RFC 3516 §4.2) and its NO [UNKNOWN-CTE] / NO [PARSE] answers."""
    raw, st, exs = _msg(name)
    ex = exs["fetch_structure"]
    if ex["status"] == "OK":
        m = re.search(rb" BINARY\.SIZE\[1\] (\d+)\)\r\n$", corpus.untagged(ex))
        assert m is not None
        assert len(binary(raw, st, (1,))) == int(m.group(1))
    else:
        assert ex["status"] == "NO", ex["response"][-1]["data"]
        code = re.search(r"\[([A-Z-]+)\]", ex["response"][-1]["data"]).group(1)
        with pytest.raises(MimeError) as err:
            binary(raw, st, (1,))
        assert err.value.code == code


@pytest.mark.parametrize("name,xid", corpus.cases(SECTIONS, corpus.SECTION))
def test_sections(name, xid):
    """BODY[HEADER], BODY[1.MIME], BODY[TEXT]<0.64> (RFC 9051 §6.4.5)."""
    raw, st, exs = _msg(name)
    label, spec, part = SECTIONS[xid]
    data = section(raw, st, spec)
    if part is not None:
        data = partial(data, *part)
    assert _fetch(label + b" " + literal(data)) == corpus.untagged(exs[xid])


@pytest.mark.parametrize("name,xid", corpus.cases(SEARCHES, corpus.SEARCH))
def test_search(name, xid):
    """SEARCH SUBJECT / FROM / BODY / HEADER Message-ID (RFC 9051 §6.4.4)."""
    raw, st, exs = _msg(name)
    ex, header = exs[xid], SEARCHES[xid]
    text = search_text(raw, st)
    got = text.matches_body(ex["term"]) if header is None else text.matches_header(header, ex["term"])
    assert got == bool(ex["matched_uids"])
    assert corpus.untagged(ex) == (b"* SEARCH 1\r\n" if got else b"* SEARCH\r\n")


@pytest.mark.parametrize("name", corpus.messages())
def test_cache_roundtrip(name):
    """The cached JSON gives the same answers without reparsing."""
    raw, st, exs = _msg(name)
    blob = st.to_json()
    again = MessageStructure.from_json(blob)
    assert again.to_json() == blob
    assert bodystructure(again, True) == bodystructure(st, True)
    assert envelope(again, raw) == envelope(st, raw)
