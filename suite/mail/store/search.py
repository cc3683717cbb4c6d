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
