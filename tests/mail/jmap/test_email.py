"""Email/get|query|set|changes and Thread/get|changes (RFC 8621 §3, §4) over real HTTP."""

from __future__ import annotations

from tests.mail.jmap.conftest import message

MULTI = (
    b'From: "Dave, Jr." <dave@example.net>, team: a@example.net, b@example.net;\r\n'
    b"To: =?utf-8?q?J=C3=BCrgen?= <juergen@example.test>\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and files\r\n"
    b"Date: Fri, 04 Dec 2026 09:30:00 -0500\r\n"
    b"Message-ID: <multi@example.net>\r\n"
    b"References: <a@x> <b@x>\r\n"
    b"List-Unsubscribe: <mailto:leave@example.net>, <https://example.net/leave>\r\n"
    b"X-Custom: one\r\nX-Custom:  two\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Hall=C3=B6 plain text body\r\n"
    b"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Hall\xc3\xb6 <b>html</b> body</p>\r\n"
    b"--alt--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="report.pdf"\r\n'
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQKJcfsj6IK\r\n"
    b"--outer--\r\n"
)


async def _email_id(jmap, **flt) -> str:
    body = await jmap.ok("Email/query", {"filter": flt or None})
    return body["ids"][0]


async def test_email_get_headers_and_body(jmap, store, accounts):
    # RFC 8621 §4.1.2–4.1.4: parsed header forms, bodyStructure, textBody/htmlBody/attachments, bodyValues
    await store.deliver(accounts[0].id, "INBOX", MULTI)
    eid = await _email_id(jmap)
    props = [
        "from",
        "to",
        "subject",
        "sentAt",
        "messageId",
        "references",
        "preview",
        "hasAttachment",
        "header:X-Custom:all",
        "header:X-Custom",
        "header:From:asGroupedAddresses",
        "header:Subject:asRaw",
        "header:List-Unsubscribe:asURLs",
        "header:Date:asDate",
        "header:To:asText",
        "textBody",
        "htmlBody",
        "attachments",
        "bodyValues",
        "bodyStructure",
        "mailboxIds",
        "keywords",
        "threadId",
        "size",
        "receivedAt",
    ]
    body = await jmap.ok(
        "Email/get",
        {
            "ids": [eid, "e999999"],
            "properties": props,
            "fetchTextBodyValues": True,
            "fetchHTMLBodyValues": True,
            "maxBodyValueBytes": 10,
        },
    )
    assert body["notFound"] == ["e999999"]
    e = body["list"][0]
    assert e["from"] == [
        {"name": "Dave, Jr.", "email": "dave@example.net"},
        {"name": None, "email": "a@example.net"},
        {"name": None, "email": "b@example.net"},
    ]
    assert e["header:From:asGroupedAddresses"] == [
        {"name": None, "addresses": [{"name": "Dave, Jr.", "email": "dave@example.net"}]},
        {
            "name": "team",
            "addresses": [{"name": None, "email": "a@example.net"}, {"name": None, "email": "b@example.net"}],
        },
    ]
    assert e["to"] == [{"name": "Jürgen", "email": "juergen@example.test"}]
    assert e["subject"] == "Grüße and files"
    assert e["header:Subject:asRaw"] == " =?utf-8?q?Gr=C3=BC=C3=9Fe?= and files"
    assert e["header:X-Custom:all"] == [" one", "  two"] and e["header:X-Custom"] == "  two"
    assert e["header:List-Unsubscribe:asURLs"] == ["mailto:leave@example.net", "https://example.net/leave"]
    assert e["sentAt"] == "2026-12-04T09:30:00-05:00" == e["header:Date:asDate"]
    assert e["header:To:asText"] == "Jürgen <juergen@example.test>"
    assert e["messageId"] == ["multi@example.net"] and e["references"] == ["a@x", "b@x"]
    assert e["hasAttachment"] is True and e["preview"].startswith("Hallö plain text body")
    assert [p["type"] for p in e["textBody"]] == ["text/plain"]
    assert [p["type"] for p in e["htmlBody"]] == ["text/html"]
    assert [(p["type"], p["name"], p["size"]) for p in e["attachments"]] == [("application/pdf", "report.pdf", 15)]
    tp = e["textBody"][0]["partId"]
    assert e["bodyValues"][tp] == {"value": "Hallö pla", "isEncodingProblem": False, "isTruncated": True}
    assert e["bodyStructure"]["type"] == "multipart/mixed"
    assert [p["type"] for p in e["bodyStructure"]["subParts"]] == ["multipart/alternative", "application/pdf"]
    assert list(e["mailboxIds"].values()) == [True] and e["keywords"] == {}
    assert e["threadId"].startswith("T") and e["size"] == len(MULTI) and e["receivedAt"].endswith("Z")
    name, err = await jmap.call("Email/get", {"ids": [eid], "properties": ["header:From:asDate"]})
    assert name == "error" and err["type"] == "invalidArguments"


async def test_threads(jmap, store, accounts):
    # RFC 8621 §3: threads from References/In-Reply-To, with the base subject as guard
    a = accounts[0].id
    await store.deliver(a, "INBOX", message("Plans", msgid="p1@x"))
    await store.deliver(a, "INBOX", message("Re: Plans", msgid="p2@x", refs="<p1@x>"))
    await store.deliver(a, "INBOX", message("Completely new topic", msgid="p3@x", refs="<p1@x>"))
    body = await jmap.ok("Email/query", {"sort": [{"property": "receivedAt", "isAscending": True}]})
    ids = body["ids"]
    got = {
        e["id"]: e["threadId"] for e in (await jmap.ok("Email/get", {"ids": ids, "properties": ["threadId"]}))["list"]
    }
    t1 = got[ids[0]]
    assert got[ids[1]] == t1 and got[ids[2]] != t1
    th = await jmap.ok("Thread/get", {"ids": [t1, "T999999"]})
    assert th["list"] == [{"id": t1, "emailIds": ids[:2]}] and th["notFound"] == ["T999999"]
    state = th["state"]
    await store.deliver(a, "INBOX", message("RE: plans", msgid="p4@x", refs="<p1@x> <p2@x>"))
    ch = await jmap.ok("Thread/changes", {"sinceState": state})
    assert ch["updated"] == [t1]
    body = await jmap.ok("Email/query", {"collapseThreads": True, "calculateTotal": True})
    assert body["total"] == 2 and len(body["ids"]) == 2


async def test_thread_merge(jmap, store, accounts):
    # RFC 8621 §3: a message that refers to two threads joins them (the older one absorbs the other)
    a = accounts[0].id
    await store.deliver(a, "INBOX", message("Topic", msgid="x1@x"))
    await store.deliver(a, "INBOX", message("Topic", msgid="y1@x"))
    ids = (await jmap.ok("Email/query", {"sort": [{"property": "receivedAt", "isAscending": True}]}))["ids"]
    before = {
        e["id"]: e["threadId"] for e in (await jmap.ok("Email/get", {"ids": ids, "properties": ["threadId"]}))["list"]
    }
    assert len(set(before.values())) == 2
    state = (await jmap.ok("Thread/get", {"ids": []}))["state"]
    await store.deliver(a, "INBOX", message("Re: Topic", msgid="z1@x", refs="<x1@x> <y1@x>"))
    ids = (await jmap.ok("Email/query", {}))["ids"]
    after = {e["threadId"] for e in (await jmap.ok("Email/get", {"ids": ids, "properties": ["threadId"]}))["list"]}
    assert after == {min(before.values(), key=lambda t: int(t[1:]))}
    ch = await jmap.ok("Thread/changes", {"sinceState": state})
    assert len(ch["destroyed"]) == 1 and len(ch["updated"]) == 1
    th = await jmap.ok("Thread/get", {"ids": list(after)})
    assert len(th["list"][0]["emailIds"]) == 3


async def test_email_query_filters_and_sorts(jmap, store, accounts):
    # RFC 8621 §4.4.1 filters, §4.4.2 sorts, RFC 8620 §5.5 position/anchor/calculateTotal
    a = accounts[0].id
    for i in range(6):
        await store.deliver(
            a,
            "INBOX" if i % 2 == 0 else "Archive",
            message(f"Subject {i}", msgid=f"q{i}@x", frm=f"user{i}@example.net", body=f"body word{i}\r\n"),
            flags=["\\Flagged"] if i < 2 else [],
            internaldate=1_700_000_000 + i * 100,
        )
    inbox = await jmap.mailbox("inbox")
    body = await jmap.ok("Email/query", {"filter": {"inMailbox": inbox}, "calculateTotal": True})
    assert body["total"] == 3 and len(body["ids"]) == 3
    # a whole folder's total comes from the Mailbox counts: it follows a delivery and a move
    await store.deliver(a, "INBOX", message("Subject 6", msgid="q6@x", body="late\r\n"))
    body = await jmap.ok("Email/query", {"filter": {"inMailbox": inbox}, "calculateTotal": True})
    assert body["total"] == 4 and len(body["ids"]) == 4
    (late,) = (await jmap.ok("Email/query", {"filter": {"header": ["Message-ID", "q6@x"]}}))["ids"]
    archive = await jmap.mailbox("archive")
    await jmap.ok("Email/set", {"update": {late: {f"mailboxIds/{inbox}": None, f"mailboxIds/{archive}": True}}})
    for collapse in (False, True):
        args = {"filter": {"inMailbox": inbox}, "calculateTotal": True, "collapseThreads": collapse}
        body = await jmap.ok("Email/query", args)
        assert body["total"] == 3 and len(body["ids"]) == 3 and late not in body["ids"]
    await jmap.ok("Email/set", {"destroy": [late]})
    all_ = (await jmap.ok("Email/query", {"sort": [{"property": "receivedAt", "isAscending": False}]}))["ids"]
    assert len(all_) == 6
    checks = [
        ({"hasKeyword": "$flagged"}, 2),
        ({"notKeyword": "$flagged"}, 4),
        ({"from": "user3"}, 1),
        ({"subject": "subject 4"}, 1),
        ({"body": "WORD5"}, 1),
        ({"text": "word1"}, 1),
        ({"after": "2023-11-14T22:18:20Z"}, 3),
        ({"after": "2023-11-14T22:13:20Z"}, 6),
        ({"before": "2023-11-14T22:15:00Z"}, 1),
        ({"before": "2023-11-14T22:15:01Z"}, 2),
        ({"minSize": 10, "maxSize": 100000}, 6),
        ({"header": ["Message-ID", "q2@x"]}, 1),
        ({"header": ["X-Nope"]}, 0),
        ({"operator": "OR", "conditions": [{"from": "user1"}, {"from": "user2"}]}, 2),
        ({"operator": "NOT", "conditions": [{"inMailbox": inbox}]}, 3),
        ({"inMailboxOtherThan": [inbox]}, 3),
        ({"hasAttachment": False}, 6),
    ]
    for flt, n in checks:
        body = await jmap.ok("Email/query", {"filter": flt, "calculateTotal": True})
        assert body["total"] == n, (flt, body)
    body = await jmap.ok("Email/query", {"position": 2, "limit": 2})
    assert body["ids"] == all_[2:4] and body["position"] == 2
    body = await jmap.ok("Email/query", {"anchor": all_[3], "anchorOffset": -1, "limit": 2})
    assert body["ids"] == all_[2:4] and body["position"] == 2
    body = await jmap.ok("Email/query", {"sort": [{"property": "from", "isAscending": True}], "limit": 1})
    assert body["ids"] == [all_[-1]]
    body = await jmap.ok(
        "Email/query",
        {"sort": [{"property": "hasKeyword", "keyword": "$flagged", "isAscending": False}, {"property": "receivedAt"}]},
    )
    assert set(body["ids"][:2]) == set(all_[-2:])
    name, err = await jmap.call("Email/query", {"anchor": "e424242"})
    assert err["type"] == "anchorNotFound"
    name, err = await jmap.call("Email/query", {"filter": {"nope": 1}})
    assert err["type"] == "unsupportedFilter"
    name, err = await jmap.call("Email/query", {"sort": [{"property": "nope"}]})
    assert err["type"] == "unsupportedSort"


async def test_email_set_keywords_mailboxes_destroy_and_changes(jmap, store, accounts):
    # RFC 8621 §4.6 update by patch, §4.3 Email/changes; IMAP memberships follow
    a = accounts[0].id
    await store.deliver(a, "INBOX", message())
    eid = await _email_id(jmap)
    state = (await jmap.ok("Email/get", {"ids": []}))["state"]
    inbox, archive, trash = await jmap.mailbox("inbox"), await jmap.mailbox("archive"), await jmap.mailbox("trash")
    body = await jmap.ok(
        "Email/set",
        {"update": {eid: {"keywords/$seen": True, "keywords/$flagged": True, f"mailboxIds/{archive}": True}}},
    )
    assert eid in body["updated"] and body["oldState"] == state
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["keywords", "mailboxIds"]}))["list"][0]
    assert e["keywords"] == {"$seen": True, "$flagged": True} and set(e["mailboxIds"]) == {inbox, archive}
    arch = await store.get_mailbox(a, "Archive")
    msgs = await store.messages(arch.id)
    assert len(msgs) == 1 and set(msgs[0].flags) == {"\\Seen", "\\Flagged"}
    ch = await jmap.ok("Email/changes", {"sinceState": state})
    assert ch["updated"] == [eid] and ch["created"] == [] and ch["newState"] == body["newState"]
    # a move (one out, one in) and a whole-map set
    body = await jmap.ok("Email/set", {"update": {eid: {"mailboxIds": {trash: True}, "keywords": {"$seen": True}}}})
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["keywords", "mailboxIds"]}))["list"][0]
    assert set(e["mailboxIds"]) == {trash} and e["keywords"] == {"$seen": True}
    body = await jmap.ok("Email/set", {"update": {eid: {"mailboxIds": {}}, "e424242": {"keywords": {}}}})
    assert body["notUpdated"][eid]["type"] == "invalidProperties"
    assert body["notUpdated"]["e424242"]["type"] == "notFound"
    body = await jmap.ok("Email/set", {"update": {eid: {"subject": "x"}}})
    assert body["notUpdated"][eid]["type"] == "invalidProperties"
    state2 = body["newState"]
    body = await jmap.ok("Email/set", {"destroy": [eid]})
    assert body["destroyed"] == [eid]
    assert (await jmap.ok("Email/get", {"ids": [eid]}))["notFound"] == [eid]
    ch = await jmap.ok("Email/changes", {"sinceState": state2})
    assert ch["destroyed"] == [eid]
    assert await store.messages((await store.get_mailbox(a, "Trash")).id) == []


async def test_email_changes_max_changes(jmap, store, accounts):
    # RFC 8620 §5.2: maxChanges and hasMoreChanges, followed to the end
    state = (await jmap.ok("Email/get", {"ids": []}))["state"]
    for i in range(5):
        await store.deliver(accounts[0].id, "INBOX", message(msgid=f"c{i}@x"))
    seen: list[str] = []
    while True:
        ch = await jmap.ok("Email/changes", {"sinceState": state, "maxChanges": 2})
        assert len(ch["created"]) <= 2
        seen += ch["created"]
        state = ch["newState"]
        if not ch["hasMoreChanges"]:
            break
    assert len(set(seen)) == 5


async def test_email_create_draft(jmap, store, accounts):
    # RFC 8621 §4.6 create from JSON: the draft is in Drafts for IMAP too
    drafts = await jmap.mailbox("drafts")
    out = await jmap.request(
        [
            [
                "Email/set",
                {
                    "accountId": jmap.account_id,
                    "create": {
                        "d1": {
                            "mailboxIds": {drafts: True},
                            "keywords": {"$draft": True, "$seen": True},
                            "from": [{"name": "Alice", "email": "alice@example.test"}],
                            "to": [{"name": "Bob", "email": "bob@example.test"}],
                            "subject": "Draft über",
                            "textBody": [{"partId": "t", "type": "text/plain"}],
                            "htmlBody": [{"partId": "h", "type": "text/html"}],
                            "bodyValues": {"t": {"value": "Plain words"}, "h": {"value": "<p>HTML words</p>"}},
                        }
                    },
                },
                "0",
            ],
            [
                "Email/get",
                {
                    "accountId": jmap.account_id,
                    "ids": ["#d1"],
                    "properties": ["subject", "keywords", "textBody", "htmlBody", "bodyValues", "to"],
                    "fetchAllBodyValues": True,
                },
                "1",
            ],
        ]
    )
    created = out["methodResponses"][0][1]["created"]["d1"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    assert "createdIds" not in out  # RFC 8620 §3.4: only when the request had createdIds
    e = out["methodResponses"][1][1]["list"][0]
    assert e["subject"] == "Draft über" and e["keywords"] == {"$draft": True, "$seen": True}
    assert e["to"] == [{"name": "Bob", "email": "bob@example.test"}]
    values = [v["value"].strip() for v in e["bodyValues"].values()]
    assert "Plain words" in values and "<p>HTML words</p>" in values
    box = await store.get_mailbox(accounts[0].id, "Drafts")
    msgs = await store.messages(box.id)
    assert len(msgs) == 1 and set(msgs[0].flags) == {"\\Draft", "\\Seen"}
    out = await jmap.request(
        [
            [
                "Email/set",
                {
                    "accountId": jmap.account_id,
                    "create": {"bad": {"mailboxIds": {drafts: True}, "to": [{"email": "no at sign"}]}},
                },
                "0",
            ]
        ]
    )
    assert out["methodResponses"][0][1]["notCreated"]["bad"]["type"] == "invalidProperties"


async def test_created_ids_round_trip(jmap):
    # RFC 8620 §3.3 createdIds: sent ones come back, with the new ones added
    drafts = await jmap.mailbox("drafts")
    out = await jmap.request(
        [
            [
                "Email/set",
                {"accountId": jmap.account_id, "create": {"k": {"mailboxIds": {drafts: True}, "subject": "x"}}},
                "0",
            ]
        ],
        createdIds={"old": "e1"},
    )
    assert out["createdIds"]["old"] == "e1" and out["createdIds"]["k"].startswith("e")


async def test_other_account_isolated(jmap, bob_jmap, store, accounts):
    # issue #13 §5: another account's ids are simply not found; its account id is accountNotFound
    await store.deliver(accounts[0].id, "INBOX", message())
    eid = await _email_id(jmap)
    body = await bob_jmap.ok("Email/get", {"ids": [eid]})
    assert body["notFound"] == [eid]
    body = await bob_jmap.ok("Email/set", {"update": {eid: {"keywords/$seen": True}}, "destroy": [eid]})
    assert body["notUpdated"][eid]["type"] == "notFound" and body["notDestroyed"][eid]["type"] == "notFound"
    name, err = await bob_jmap.call("Email/query", {"accountId": jmap.account_id})
    assert err["type"] == "accountNotFound"


async def test_ids_never_reassigned(jmap, store, accounts):
    # RFC 8620 §1.2: the id of a destroyed Email is not given to a new one
    await store.deliver(accounts[0].id, "INBOX", message(msgid="r1@x"))
    first = (await jmap.ok("Email/query", {}))["ids"][0]
    await jmap.ok("Email/set", {"destroy": [first]})
    await store.deliver(accounts[0].id, "INBOX", message(msgid="r2@x"))
    second = (await jmap.ok("Email/query", {}))["ids"][0]
    assert second != first
