"""IMAP SEARCH narrowed by the full-text index (issue #13 §4): string keys of the top-level
conjunction take their candidates from FTS5 / tsvector, the substring matcher (RFC 9051 §6.4.4)
decides; a term the token index can't answer for (its first word may start mid-word) scans as
before. Every search answers as with the index off."""

from __future__ import annotations

import pytest

from suite.mail.imap import session as session_mod
from suite.mail.store import MailStore

MAILS = [
    ("Quarterly figures for Othello", "The hello-world budget is attached.\r\n"),
    ("Re: quarterly figures", "Figures look fine; see the world map.\r\n"),
    ("Lunch", "Meet at noon at the Hellofresh place.\r\n"),
    ("Ticket 4711 fixed", "Patch for foo_bar in the worldwide build.\r\n"),
]
SEARCHES = [
    'SUBJECT "quarterly figures"',  # second word from the index
    'SUBJECT " figures"',  # leading space: its first word too
    "SUBJECT ello",  # mid-word: no index, substring scan
    'BODY "the world"',
    'BODY " worldwide build"',
    'FROM "x carol@example.net"',
    'OR SUBJECT lunch BODY " budget"',
    'NOT BODY " world"',
    'SUBJECT "quarterly figures" BODY " budget"',
    'BODY "x zzz-nothing"',
]


async def _search(client, tag: str, criteria: str) -> bytes:
    r = await client.cmd(f"{tag} UID SEARCH {criteria}")
    assert r[-1].startswith(f"{tag} OK".encode()), r
    return r[0]


async def test_search_uses_index_with_substring_semantics(alice_client, store, accounts, monkeypatch, ctx):
    for subject, body in MAILS:
        raw = (
            f"From: Carol <carol@example.net>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(subject))}@x>\r\n\r\n{body}"
        ).encode()
        await store.deliver(accounts[0].id, "INBOX", raw)
    await alice_client.cmd("s SELECT INBOX")
    calls: list[tuple[str, str, set[int] | None]] = []
    original = MailStore.text_candidates

    async def spy(self, mailbox_id: int, key: str, term: str):
        got = await original(self, mailbox_id, key, term)
        calls.append((key, term, got))
        return got

    monkeypatch.setattr(MailStore, "text_candidates", spy)
    monkeypatch.setattr(session_mod, "INDEX_MIN_MESSAGES", 10**9)  # index off: the reference answers
    want = [await _search(alice_client, f"r{i}", c) for i, c in enumerate(SEARCHES)]
    assert calls == []
    monkeypatch.setattr(session_mod, "INDEX_MIN_MESSAGES", 0)
    got = [await _search(alice_client, f"i{i}", c) for i, c in enumerate(SEARCHES)]
    assert got == want
    assert want[0] == b"* SEARCH 1 2\r\n" and want[2] == b"* SEARCH 1\r\n" and want[3] == b"* SEARCH 2 4\r\n"
    used = {(k, t): c for k, t, c in calls}
    # the index narrowed where it can: only candidates were checked
    assert used[("SUBJECT", "quarterly figures")] == {1, 2}
    assert used[("BODY", " worldwide build")] == {4}
    assert used[("BODY", "x zzz-nothing")] == set()
    if ctx.settings.db_url.startswith("postgresql"):
        assert used[("SUBJECT", "ello")] is None  # may start mid-token: scanned
    else:
        assert used[("SUBJECT", "ello")] == {1}  # the FTS5 vocabulary's tokens holding it (othello)


@pytest.mark.parametrize(
    ("term", "pg", "words"),
    [
        ("hello", False, []),
        (" hello", False, ["hello"]),
        ("a b-c", False, ["b", "c"]),
        ("a b-c", True, ["b"]),  # PostgreSQL's parser may keep "b-c" as one token
        ("x  ünï yes", False, ["yes"]),
        ("foo\tbar.baz", True, ["bar"]),
    ],
)
def test_substring_words(term, pg, words):
    from suite.mail.store.search import substring_words

    assert substring_words(term, pg) == words


def _mail(subject: str) -> bytes:
    return (
        f"From: Carol <carol@example.net>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash(subject))}@x>\r\n\r\nHello.\r\n"
    ).encode()


async def test_search_index_sees_mail_delivered_later(alice_client, store, accounts, monkeypatch, ctx):
    """A leading word expands to the indexed tokens holding it, on SQLite from this process's copy
    of the vocabulary: mail delivered after a search — here by another store on the same database,
    as another worker process would — is found by the next search."""
    monkeypatch.setattr(session_mod, "INDEX_MIN_MESSAGES", 0)
    await store.deliver(accounts[0].id, "INBOX", _mail("Zebrafish report"))
    await alice_client.cmd("s SELECT INBOX")
    assert await _search(alice_client, "a", "SUBJECT brafi") == b"* SEARCH 1\r\n"
    await MailStore(ctx).deliver(accounts[0].id, "INBOX", _mail("Quizzical brafix"))
    await alice_client.cmd("n NOOP")
    assert await _search(alice_client, "b", "SUBJECT brafi") == b"* SEARCH 1 2\r\n"
    assert await _search(alice_client, "c", 'SUBJECT "zzical brafix"') == b"* SEARCH 2\r\n"  # ends a token
    assert await _search(alice_client, "d", 'SUBJECT "zzica brafix"') == b"* SEARCH\r\n"


def test_vocabulary_tokens_holding_a_word():
    from suite.mail.store.search import Vocabulary

    v = Vocabulary()
    v.terms = {"othello", "hello", "hellox", "bob"}
    v.chunks = ["\nothello\nhello\n", "\nhellox\nbob\n"]
    assert v.containing("hello", False, 10) == ["othello", "hello", "hellox"]
    assert v.containing("hello", True, 10) == ["othello", "hello"]  # the token ends with it
    assert v.containing("hello", False, 2) == ["othello", "hello"]
    assert v.containing("zz", False, 10) == []
