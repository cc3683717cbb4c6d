"""The mail corpus (tests/data/mail) through JMAP: every message stored, then Email/get with body
structure, parts, values, preview and header forms answers without a server failure, and the
body structure agrees with the stdlib ``email`` parser's MIME tree (RFC 8621 §4.1.4)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"
# Where suite.mail.mime (which IMAP BODYSTRUCTURE uses too, parsing as Dovecot does) and the stdlib
# read a message differently; JMAP follows the store's parser so both protocols show one tree.
KNOWN = {
    "cpython-msg_33.eml": "RFC 2231 boundary*= is not used as the boundary (Dovecot neither)",
    "enmime-mail-mime-bad-content-type.eml": "the stdlib keeps a malformed Content-Type as the type",
    "mikel-mime-raw_email_with_illegal_boundary.eml": "unquoted boundary with '=': lenient boundary match",
    "mikel-plain-raw_email_bad_time.eml": "unquoted boundary with '=': lenient boundary match",
}


def _leaves(part: dict) -> list[str]:
    if part.get("subParts"):
        return [t for p in part["subParts"] for t in _leaves(p)]
    return [part["type"]]


def _email_leaves(msg) -> list[str]:
    if msg.get_content_maintype() == "message":
        # an attached message or report is one part (RFC 8621 §4.1.4); the stdlib opens them
        return [msg.get_content_type()]
    if msg.is_multipart():
        return [t for p in msg.get_payload() for t in _email_leaves(p)]
    return [msg.get_content_type()]


async def test_corpus_email_get(jmap, store, accounts):
    files = sorted(CORPUS.glob("*.eml"))
    assert files, "the corpus is in tests/data/mail"
    raws = {}
    for f in files:
        raw = f.read_bytes()
        await store.deliver(accounts[0].id, "INBOX", raw)
        raws[len(raws)] = raw
    ids = (await jmap.ok("Email/query", {"sort": [{"property": "receivedAt", "isAscending": True}]}))["ids"]
    assert len(ids) == len(files)
    props = [
        "bodyStructure",
        "textBody",
        "htmlBody",
        "attachments",
        "bodyValues",
        "preview",
        "from",
        "to",
        "subject",
        "sentAt",
        "messageId",
        "references",
        "header:List-Id:asText",
        "hasAttachment",
    ]
    differs: set[str] = set()
    compared = 0
    for start in range(0, len(ids), 50):
        chunk = ids[start : start + 50]
        body = await jmap.ok(
            "Email/get",
            {"ids": chunk, "properties": ["id", *props], "fetchAllBodyValues": True, "maxBodyValueBytes": 2000},
        )
        assert body["notFound"] == []
        for n, e in enumerate(body["list"]):
            leaves = set(_leaves(e["bodyStructure"]))
            for key in ("textBody", "htmlBody", "attachments"):
                assert {p["type"] for p in e[key]} <= leaves | {"message/rfc822"}, (e["id"], key)
            raw = raws[start + n]
            parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
            if not parsed.defects and not any(p.defects for p in parsed.walk()):
                compared += 1
                if _leaves(e["bodyStructure"]) != _email_leaves(parsed):
                    differs.add(files[start + n].name)
    # where the stdlib sees a well-formed message, the MIME trees agree (but for the known cases)
    assert compared > 100 and differs == set(KNOWN)
