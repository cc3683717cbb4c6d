"""SORT and THREAD (RFC 5256) and SORT=DISPLAY (RFC 5957): byte transcripts over the real server,
imaplib's sort()/thread(), and the base-subject and REFERENCES rules on crafted messages."""

from __future__ import annotations

import asyncio
import imaplib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import PASSWORD, Client

from suite.mail.imap import sortthread
from suite.mail.imap.sortthread import Facts, base_subject


def _msg(n: int, subject: str, frm: str, hour: int, refs: str = "") -> bytes:
    head = (
        f"From: {frm}\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
        f"Date: Mon, 02 Jan 2023 {hour:02d}:00:00 +0000\r\nMessage-ID: <m{n}@example.test>\r\n"
    )
    if refs:
        head += f"In-Reply-To: {refs.split()[-1]}\r\nReferences: {refs}\r\n"
    return (head + f"\r\nbody {n}\r\n").encode()


# seq: subject, from, hour, references — crafted for RFC 5256 §4 REFERENCES: 1←2 by References,
# 4 and 5 reply to a message not in the mailbox (a dummy parent), 6 has no references but the base
# subject of 1 and is a reply ("[list] Re: plans"), so subject gathering makes it 1's child
MESSAGES = [
    _msg(1, "Plans", "Abe <zed@example.test>", 10),
    _msg(2, "Re: Plans", "amy@example.test", 11, "<m1@example.test>"),
    _msg(3, "Other", "bob@example.test", 9),
    _msg(4, "Re: Missing", "carl@example.test", 12, "<gone@example.test>"),
    _msg(5, "Re: Missing", "dan@example.test", 13, "<gone@example.test>"),
    _msg(6, "[list] Re: plans", "eve@example.test", 14),
]


async def _fill(store, account_id: int) -> None:
    # a first message, expunged, so that UIDs are sequence numbers + 1 (UID SORT / UID THREAD)
    await store.deliver(account_id, "INBOX", _msg(0, "gone", "x@example.test", 8), flags=["\\Deleted"])
    for raw in MESSAGES:
        await store.deliver(account_id, "INBOX", raw)


async def _selected(c: Client, store, accounts) -> None:
    await _fill(store, accounts[0].id)
    assert (await c.cmd("s SELECT INBOX"))[-1].startswith(b"s OK")
    assert (await c.cmd("x EXPUNGE"))[-1].startswith(b"x OK")


def test_base_subject_rfc5256_2_1():
    # RFC 5256 §2.1 steps: leaders, blobs, (fwd) trailers, [fwd: ...] wrappers; reply/forward noted
    assert base_subject("Plans") == ("Plans", False)
    assert base_subject("Re: Plans") == ("Plans", True)
    assert base_subject("RE:  re:Fwd:  Plans  ") == ("Plans", True)
    assert base_subject("[list] Re: plans") == ("plans", True)
    assert base_subject("Re[2]: Plans (fwd)") == ("Plans", True)
    assert base_subject("[fwd: Re: Plans]") == ("Plans", True)
    assert base_subject("[list] Plans") == ("Plans", False)
    assert base_subject("[only a blob]") == ("[only a blob]", False)  # nothing left after it: kept
    assert base_subject("\tSpaced \t  out ") == ("Spaced out", False)
    assert base_subject("") == ("", False)


def _facts(seq: int, subject: str, hour: int, mid: str, refs: list[str]) -> Facts:
    base, reply = base_subject(subject)
    return Facts(
        seq,
        seq,
        float(hour),
        float(hour),
        subject=sortthread.casemap(base),
        is_reply=reply,
        message_id=mid.encode(),
        references=[r.encode() for r in refs],
    )


def test_references_dummies_loops_and_subject_merging():
    msgs = [
        # 1 and 2 share a missing grandparent through a missing parent: one dummy survives pruning
        _facts(1, "A", 1, "<a1>", ["<root>", "<mid>"]),
        _facts(2, "Re: A", 2, "<a2>", ["<root>", "<mid>"]),
        # a loop in References (3 says 4 is its parent, 4 says 3 is): 3 is already 4's child, and
        # linking 4 under 3 would make a cycle, so it is not made (RFC 5256 §4 (1)(C))
        _facts(3, "Loop", 3, "<l3>", ["<l4>"]),
        _facts(4, "Re: Loop", 4, "<l4>", ["<l3>"]),
        # two non-reply roots with one subject: a new dummy holds both (RFC 5256 §4 (5)(C)(iv))
        _facts(5, "Same", 5, "<s5>", []),
        _facts(6, "Same", 6, "<s6>", []),
        # a duplicate Message-ID is a message of its own
        _facts(7, "Dup", 7, "<s5>", []),
    ]
    roots = sortthread.references(msgs)
    assert sortthread.render(roots, uid=False) == b"((1)(2))(4 3)((5)(6))(7)"


async def test_capabilities(alice_client: Client):
    caps = (await alice_client.cmd("a CAPABILITY"))[0].split()
    for c in (b"SORT", b"SORT=DISPLAY", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
        assert c in caps


async def test_sort_transcripts(alice_client: Client, store, accounts):
    c = alice_client
    await _selected(c, store, accounts)
    # RFC 5256 §3: SUBJECT sorts by base subject (i;ascii-casemap), ties by sequence number
    assert await c.cmd("a SORT (SUBJECT) UTF-8 ALL") == [b"* SORT 4 5 3 1 2 6\r\n", b"a OK Sort completed.\r\n"]
    assert (await c.cmd("b SORT (REVERSE DATE) UTF-8 ALL"))[0] == b"* SORT 6 5 4 2 1 3\r\n"
    assert (await c.cmd("c SORT (DATE) US-ASCII ALL"))[0] == b"* SORT 3 1 2 4 5 6\r\n"
    assert (await c.cmd("d SORT (ARRIVAL) UTF-8 ALL"))[0] == b"* SORT 1 2 3 4 5 6\r\n"
    # FROM is the first From address's addr-mailbox ("zed" for Abe <zed@…>)
    assert (await c.cmd("e SORT (FROM) UTF-8 ALL"))[0] == b"* SORT 2 3 4 5 6 1\r\n"
    # RFC 5957 §3 DISPLAYFROM: the display name ("abe") when there is one
    assert (await c.cmd("f SORT (DISPLAYFROM) UTF-8 ALL"))[0] == b"* SORT 1 2 3 4 5 6\r\n"
    assert (await c.cmd("g SORT (TO REVERSE ARRIVAL) UTF-8 ALL"))[0] == b"* SORT 6 5 4 3 2 1\r\n"
    assert (await c.cmd("h SORT (SUBJECT REVERSE DATE) UTF-8 SUBJECT plans"))[0] == b"* SORT 6 2 1\r\n"
    assert (await c.cmd("i SORT (CC SIZE) UTF-8 SUBJECT nothing-like-this"))[0] == b"* SORT\r\n"
    # UID SORT answers UIDs (here sequence numbers + 1)
    assert await c.cmd("j UID SORT (SUBJECT) UTF-8 ALL") == [b"* SORT 5 6 4 2 3 7\r\n", b"j OK Sort completed.\r\n"]
    # bad input: unknown charset NO [BADCHARSET], unknown criterion BAD, a missing charset BAD
    assert (await c.cmd("k SORT (DATE) X-NO-SUCH ALL"))[-1].startswith(b"k NO [BADCHARSET")
    assert (await c.cmd("l SORT (COLOUR) UTF-8 ALL"))[-1].startswith(b"l BAD")
    assert (await c.cmd("m SORT (DATE) ALL"))[-1].startswith(b"m ")
    assert (await c.cmd("n SORT (REVERSE) UTF-8 ALL"))[-1].startswith(b"n BAD")


async def test_thread_transcripts(alice_client: Client, store, accounts):
    c = alice_client
    await _selected(c, store, accounts)
    # RFC 5256 §4 ORDEREDSUBJECT: grouped by base subject, first message the parent of the rest
    r = await c.cmd("a THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert r == [b"* THREAD (3)(1 (2)(6))(4 5)\r\n", b"a OK Thread completed.\r\n"]
    # RFC 5256 §4 REFERENCES: 4 and 5 under a dummy parent, 6 gathered under 1 by subject
    r = await c.cmd("b THREAD REFERENCES UTF-8 ALL")
    assert r == [b"* THREAD (3)(1 (2)(6))((4)(5))\r\n", b"b OK Thread completed.\r\n"]
    assert (await c.cmd("c UID THREAD REFERENCES UTF-8 ALL"))[0] == b"* THREAD (4)(2 (3)(7))((5)(6))\r\n"
    # only the matching messages are threaded: the dummy with one child left is pruned
    assert (await c.cmd("d THREAD REFERENCES UTF-8 NOT 5"))[0] == b"* THREAD (3)(1 (2)(6))(4)\r\n"
    assert (await c.cmd("e THREAD REFERENCES UTF-8 SUBJECT nothing-like-this"))[0] == b"* THREAD\r\n"
    assert (await c.cmd("f THREAD NOSUCHALG UTF-8 ALL"))[-1].startswith(b"f BAD")


async def test_imaplib_sort_and_thread(server, store, accounts):
    await _fill(store, accounts[0].id)

    def run() -> tuple:
        m = imaplib.IMAP4("127.0.0.1", server.port, timeout=10)
        try:
            m.login("alice@example.test", PASSWORD)
            m.select("INBOX")
            m.expunge()
            return (
                m.sort("(REVERSE DATE)", "UTF-8", "ALL"),
                m.uid("SORT", "(SUBJECT)", "UTF-8", "ALL"),
                m.thread("REFERENCES", "UTF-8", "ALL"),
                m.thread("ORDEREDSUBJECT", "UTF-8", "SINCE", "1-Jan-2000"),
            )
        finally:
            m.logout()

    sort, uid_sort, refs, ordered = await asyncio.to_thread(run)
    assert sort == ("OK", [b"6 5 4 2 1 3"])
    assert uid_sort == ("OK", [b"5 6 4 2 3 7"])
    assert refs == ("OK", [b"(3)(1 (2)(6))((4)(5))"])
    assert ordered == ("OK", [b"(3)(1 (2)(6))(4 5)"])
