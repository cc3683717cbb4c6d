"""The mail corpus (tests/data/mail) through JMAP: every message stored, then Email/get with body
structure, parts, values, preview and header forms answers without a server failure, and the
body structure agrees with the stdlib ``email`` parser's MIME tree (RFC 8621 §4.1.4)."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from suite.mail.jmap.message import LIST_FACTS
from suite.storage.blobs import BlobStore

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
    # the list properties cached at delivery (emails.list_facts) are what the blob path renders
    for start in range(0, len(ids), 50):
        chunk = ids[start : start + 50]
        cached = await jmap.ok("Email/get", {"ids": chunk, "properties": LIST_PROPS})
        from_blob = await jmap.ok("Email/get", {"ids": chunk, "properties": [*LIST_PROPS, "bodyStructure"]})
        for e in from_blob["list"]:
            del e["bodyStructure"]
        assert cached["list"] == from_blob["list"]


LIST_PROPS = ["id", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "hasAttachment", *LIST_FACTS]


class CountingReads:
    """Wraps BlobStore.read_bytes to count the blobs a request opens."""

    def __init__(self, monkeypatch) -> None:
        self.count = 0
        original = BlobStore.read_bytes

        async def read_bytes(blobs, digest, start=0, end=None):
            self.count += 1
            return await original(blobs, digest, start, end)

        monkeypatch.setattr(BlobStore, "read_bytes", read_bytes)


async def test_list_properties_open_no_blob(jmap, store, accounts, monkeypatch):
    """A message list page (Email/get of its list properties) reads the database only; rows stored
    before the cache (list_facts NULL) are filled from their blob once, with the same values."""
    for f in sorted(CORPUS.glob("*.eml"))[:6]:
        await store.deliver(accounts[0].id, "INBOX", f.read_bytes())
    ids = (await jmap.ok("Email/query", {}))["ids"]
    reads = CountingReads(monkeypatch)
    first = await jmap.ok("Email/get", {"ids": ids, "properties": LIST_PROPS})
    assert len(first["list"]) == 6 and reads.count == 0
    await jmap.ok("Email/get", {"ids": ids[:1], "properties": ["preview", "bodyValues"]})
    assert reads.count == 1  # a body property still reads the message
    async with store.raw_db.write() as c:  # as rows stored before revision 0003wp
        await c.run("UPDATE emails SET list_facts = NULL WHERE account_id = ?", accounts[0].id)
    reads.count = 0
    assert await jmap.ok("Email/get", {"ids": ids, "properties": LIST_PROPS}) == first
    assert reads.count == 6
    reads.count = 0
    assert await jmap.ok("Email/get", {"ids": ids, "properties": LIST_PROPS}) == first
    assert reads.count == 0
