"""IMAP OBJECTID (RFC 8474) names the objects JMAP names (RFC 8621): imaplib's EMAILID, THREADID
and MAILBOXID equal Email/get's id and threadId and Mailbox/get's id for the same message."""

from __future__ import annotations

import asyncio
import imaplib
import re

from tests.mail.jmap.conftest import PW, message


def _imap_ids(port: int) -> tuple[str, dict[int, tuple[str, str]]]:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        m.login("alice@example.test", PW)
        typ, data = m.select("INBOX")
        assert typ == "OK", data
        mailboxid = m.untagged_responses["MAILBOXID"][0].decode()  # RFC 8474 §4.1: "(M1)"
        typ, data = m.uid("FETCH", "1:*", "(EMAILID THREADID)")
        assert typ == "OK", data
        out = {}
        for line in data:
            assert isinstance(line, bytes), data
            got = re.search(rb"UID (\d+) EMAILID \(([^)]+)\) THREADID \(([^)]+)\)", line)
            assert got, line
            out[int(got[1])] = (got[2].decode(), got[3].decode())
        return mailboxid.strip("()"), out
    finally:
        m.logout()


async def test_imap_objectids_equal_jmap_ids(jmap, store, accounts, imap_port):
    await store.deliver(accounts[0].id, "INBOX", message("Plans", msgid="a@example.test"))
    await store.deliver(accounts[0].id, "INBOX", message("Re: Plans", msgid="b@example.test", refs="<a@example.test>"))
    await store.deliver(accounts[0].id, "INBOX", message("Other", msgid="c@example.test"))
    mailboxid, imap = await asyncio.to_thread(_imap_ids, imap_port)
    assert mailboxid == await jmap.mailbox("inbox")
    ids = (await jmap.ok("Email/query", {"sort": [{"property": "receivedAt", "isAscending": True}]}))["ids"]
    got = await jmap.ok("Email/get", {"ids": ids, "properties": ["id", "threadId", "mailboxIds", "messageId"]})
    jmap_ids = {e["messageId"][0]: (e["id"], e["threadId"]) for e in got["list"]}
    assert all(mailboxid in e["mailboxIds"] for e in got["list"])
    # UIDs 1..3 in delivery order
    assert imap[1] == jmap_ids["a@example.test"]
    assert imap[2] == jmap_ids["b@example.test"]
    assert imap[3] == jmap_ids["c@example.test"]
    assert imap[1][1] == imap[2][1] != imap[3][1]
