"""Full-text index of Emails (issue #13 §4): subject, addresses, body text of every text part and
attachment names, written at delivery in the delivering transaction.

- SQLite: an FTS5 table ``email_fts`` (rowid = email id; columns subject, addrs, body, names);
- PostgreSQL: ``email_search`` with one ``tsvector`` (weights A subject, B addresses, C names,
  D body) under a GIN index.

Queries are token-prefix matches (``word*`` / ``word:*``): each word of the search text must
appear, a word written with punctuation ("alice@example.com") is a phrase of its tokens.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import TYPE_CHECKING, Any

from suite.mail.mime.searchtext import fold

if TYPE_CHECKING:
    from suite.storage.db import Conn

MAX_BODY = 256 * 1024  # characters of body text indexed per Email
_TOKEN = re.compile(r"\w+", re.UNICODE)
FIELDS = {"subject": "A", "addrs": "B", "names": "C", "body": "D"}


def _header_text(h: dict, names: tuple[str, ...]) -> str:
    return " ".join(v.split("\n", 1)[0] for n in names for v in h.get(n, []))


def document(headers_json: str, body: str, attachment_names: list[str]) -> dict[str, str]:
    return document_of(json.loads(headers_json) if headers_json else {}, body, attachment_names)


def document_of(h: dict[str, Any], body: str, attachment_names: list[str]) -> dict[str, str]:
    """:func:`document` from headers already decoded (delivery parses them once, in its worker thread)."""
    return {
        "subject": _header_text(h, ("subject",)),
        "addrs": _header_text(h, ("from", "to", "cc", "bcc", "sender", "reply-to")),
        "names": fold(" ".join(attachment_names)),
        "body": body[:MAX_BODY],
    }


async def index(c: Conn, account_id: int, email_id: int, doc: dict[str, str]) -> None:
    if c.pg:
        await c.run(
            "INSERT INTO email_search (email_id, account_id, tsv) VALUES (?, ?, "
            "setweight(to_tsvector('simple', ?), 'A') || setweight(to_tsvector('simple', ?), 'B') || "
            "setweight(to_tsvector('simple', ?), 'C') || setweight(to_tsvector('simple', ?), 'D')) "
            "ON CONFLICT (email_id) DO NOTHING",
            email_id,
            account_id,
            doc["subject"],
            doc["addrs"],
            doc["names"],
            doc["body"],
        )
    else:
        await c.run(
            "INSERT INTO email_fts (rowid, subject, addrs, names, body) VALUES (?, ?, ?, ?, ?)",
            email_id,
            doc["subject"],
            doc["addrs"],
            doc["names"],
            doc["body"],
        )


async def unindex(c: Conn, email_ids: list[int]) -> None:
    if not email_ids:
        return
    marks = ", ".join("?" * len(email_ids))
    if c.pg:
        await c.run(f"DELETE FROM email_search WHERE email_id IN ({marks})", *email_ids)
    else:
        await c.run(f"DELETE FROM email_fts WHERE rowid IN ({marks})", *email_ids)


def _words(text: str) -> list[list[str]]:
    """Each whitespace-separated word of the search as its tokens (folded like the index)."""
    out = []
    for chunk in fold(text).split():
        toks = _TOKEN.findall(chunk)
        if toks:
            out.append(toks)
    return out


def match(pg: bool, text: str, field: str | None) -> tuple[str, list[Any]] | None:
    """SQL (a condition on ``e.id``) matching Emails whose ``field`` (or any field) has every word
    of ``text`` as a token prefix; None when the text has no word at all."""
    words = _words(text)
    if not words:
        return None
    if pg:
        weight = FIELDS[field] if field else ""
        parts = []
        for toks in words:
            parts.append("(" + " <-> ".join(f"{t}:*{weight}" for t in toks) + ")")
        return "e.id IN (SELECT email_id FROM email_search WHERE tsv @@ to_tsquery('simple', ?))", [" & ".join(parts)]
    phrases = " AND ".join('"' + " ".join(toks) + '"*' for toks in words)
    query = f"{field} : ({phrases})" if field else phrases
    return "e.id IN (SELECT rowid FROM email_fts WHERE email_fts MATCH ?)", [query]


# IMAP SEARCH (RFC 9051 §6.4.4) matches substrings; the index matches tokens. A word of the search
# string that follows a separator inside it starts a token wherever the string occurs (on
# PostgreSQL only after whitespace: its parser keeps "alice@example.com" as one token), so requiring
# it as a token prefix keeps every message that can match. The word the string starts with may sit
# inside a token: on SQLite the FTS5 vocabulary gives every indexed token containing it (ending with
# it when the string goes on), and those tokens are required instead; on PostgreSQL that word is not
# used. The index narrows, the substring matcher decides. Only ASCII words take part (case folding
# differs between the index and RFC 9051's NFKC casefold).
IMAP_FIELDS = {"SUBJECT": "subject", "FROM": "addrs", "TO": "addrs", "CC": "addrs", "BCC": "addrs", "BODY": "body"}
MAX_EXPANSION = 500  # tokens a leading word may stand for; more and it does not narrow
_PLAIN = re.compile(r"^[a-z0-9]+$")
NOTHING: tuple[str, list[Any]] = ("1 = 0", [])  # no message can match


def substring_words(term: str, pg: bool = False) -> list[str]:
    """The words of an IMAP search string every substring match has as token prefixes."""
    t = fold(term)
    out = []
    for m in _TOKEN.finditer(t):
        if m.start() == 0:
            continue
        before = t[m.start() - 1]
        if (before.isspace() or not pg) and m.group(0).isascii():
            out.append(m.group(0))
    return out


def leading_word(term: str) -> tuple[str, bool] | None:
    """(the word the folded string starts with, whether more follows it) when it is plain ASCII."""
    t = fold(term)
    m = _TOKEN.match(t)
    if m is None or not _PLAIN.match(m.group(0)):
        return None
    return m.group(0), m.end() < len(t)


class Vocabulary:
    """This process's copy of the FTS5 vocabulary (SQLite): every token of ``email_fts``, kept up
    to date from the Emails indexed since, so that expanding a leading word (``%word%``) is a
    string search in memory instead of a scan of ``email_fts_vocab`` (which reads every doclist
    of the index, milliseconds per SEARCH).

    Email ids are never reused (AUTOINCREMENT) and a transaction's Emails are indexed in it, so the
    Emails not seen yet are exactly those with a higher rowid; their tokens come from the same
    tokenizer (an in-memory FTS5 table made with the index's own definition).  A deleted Email's
    tokens stay: a token that matches nothing any more only widens the candidates (a superset is
    all the callers need)."""

    MAX_TERMS = 2_000_000  # beyond, the memory is not worth it: the vocabulary table is scanned
    RELOAD_AFTER = 500  # more new Emails than this: re-read the vocabulary table instead

    def __init__(self) -> None:
        self.upto = -1  # the highest Email rowid whose tokens are in ``terms``
        self.terms: set[str] = set()
        self.chunks: list[str] = []  # "\nterm\nterm\n" blocks holding every term once
        self._mem: sqlite3.Connection | None = None

    @staticmethod
    async def _newest(c: Conn) -> int:
        """The highest Email id ever given (AUTOINCREMENT's mark: it never goes down)."""
        return await c.scalar("SELECT seq FROM sqlite_sequence WHERE name = 'emails'") or 0

    async def _reload(self, c: Conn) -> None:
        top = await self._newest(c)
        rows = await c.all("SELECT term FROM email_fts_vocab")  # after ``top``: a superset of its tokens
        self.terms = {r[0] for r in rows}
        self.chunks = ["\n" + "\n".join(self.terms) + "\n"] if self.terms else []
        self.upto = top

    def _tokens(self, docs: list[tuple], table_sql: str) -> list[str]:
        if self._mem is None:
            self._mem = sqlite3.connect(":memory:", check_same_thread=False)
            self._mem.execute(re.sub(r"(?i)^CREATE VIRTUAL TABLE\s+\S+", "CREATE VIRTUAL TABLE t", table_sql))
            self._mem.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
        mem = self._mem
        with mem:
            mem.executemany("INSERT INTO t (rowid, subject, addrs, names, body) VALUES (?, ?, ?, ?, ?)", docs)
            got = [r[0] for r in mem.execute("SELECT term FROM v")]
            mem.execute("DELETE FROM t")
        return got

    async def refresh(self, c: Conn) -> bool:
        """Bring the copy up to date; False when it is too big to keep (scan the table instead)."""
        if self.upto < 0:
            await self._reload(c)
        else:
            newest = await self._newest(c)
            if newest < self.upto:  # a different database (a restore)
                await self._reload(c)
            elif newest > self.upto:
                docs = await c.all(
                    "SELECT rowid, subject, addrs, names, body FROM email_fts WHERE rowid > ? LIMIT ?",
                    self.upto,
                    self.RELOAD_AFTER + 1,
                )
                if len(docs) > self.RELOAD_AFTER:
                    await self._reload(c)
                else:
                    table_sql = await c.scalar("SELECT sql FROM sqlite_master WHERE name = 'email_fts'")
                    new = [t for t in self._tokens([tuple(d) for d in docs], table_sql) if t not in self.terms]
                    if new:
                        self.terms.update(new)
                        self.chunks.append("\n" + "\n".join(new) + "\n")
                        if len(self.chunks) > 64:
                            self.chunks = ["\n" + "\n".join(self.terms) + "\n"]
                    self.upto = newest  # a later Email the rows held is read again next time
        return len(self.terms) <= self.MAX_TERMS

    def containing(self, word: str, at_end: bool, limit: int) -> list[str]:
        """Up to ``limit`` tokens holding ``word`` (ending with it when ``at_end``), each once."""
        needle = word + "\n" if at_end else word
        out: list[str] = []
        for chunk in self.chunks:
            i = chunk.find(needle)
            while i >= 0:
                start = chunk.rfind("\n", 0, i) + 1
                end = chunk.find("\n", i)
                out.append(chunk[start:end])
                if len(out) >= limit:
                    return out
                i = chunk.find(needle, end + 1)
        return out


async def candidates_query(
    c: Conn, key: str, term: str, vocabulary: Vocabulary | None = None
) -> tuple[str, list[Any]] | None:
    """SQL (a condition on ``e.id``) for the Emails that may contain ``term`` as a substring of
    ``key``'s field (SUBJECT, FROM, TO, CC, BCC, BODY); None when the index can't narrow it."""
    field = IMAP_FIELDS.get(key)
    if field is None:
        return None
    words = substring_words(term, c.pg)
    if c.pg:
        if not words:
            return None
        query = " & ".join(f"{w}:*{FIELDS[field]}" for w in words)
        return "e.id IN (SELECT email_id FROM email_search WHERE tsv @@ to_tsquery('simple', ?))", [query]
    parts = [f'"{w}"*' for w in words]
    lead = leading_word(term)
    if lead is not None:
        word, more = lead
        pattern = f"%{word}" if more else f"%{word}%"  # followed by a separator: the token ends there
        if vocabulary is not None and await vocabulary.refresh(c):
            tokens = vocabulary.containing(word, more, MAX_EXPANSION + 1)
        else:
            tokens = [
                r[0]
                for r in await c.all(
                    "SELECT term FROM email_fts_vocab WHERE term LIKE ? LIMIT ?", pattern, MAX_EXPANSION + 1
                )
            ]
        if not tokens:
            return NOTHING
        if len(tokens) <= MAX_EXPANSION:
            parts.append("(" + " OR ".join('"' + tok.replace('"', '""') + '"' for tok in tokens) + ")")
    if not parts:
        return None
    query = f"{field} : (" + " AND ".join(parts) + ")"
    return "e.id IN (SELECT rowid FROM email_fts WHERE email_fts MATCH ?)", [query]
