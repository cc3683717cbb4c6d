"""Mailbox/get|changes|query|set (RFC 8621 §2) over real HTTP."""

from __future__ import annotations

from tests.mail.jmap.conftest import message


async def test_mailbox_get_roles_and_counts(jmap, store, accounts):
    # RFC 8621 §2.1: roles from SPECIAL-USE, counts of emails and threads, myRights, isSubscribed
    alice = accounts[0]
    await store.deliver(alice.id, "INBOX", message("One", msgid="a@x"))
    await store.deliver(alice.id, "INBOX", message("Re: One", msgid="b@x", refs="<a@x>"), flags=["\\Seen"])
    await store.deliver(alice.id, "INBOX", message("Other", msgid="c@x"))
    body = await jmap.ok("Mailbox/get", {"ids": None})
    roles = {m["role"]: m for m in body["list"]}
    assert set(roles) == {"inbox", "drafts", "sent", "junk", "trash", "archive"}
    inbox = roles["inbox"]
    assert inbox["name"] == "INBOX" and inbox["parentId"] is None and inbox["isSubscribed"] is True
    assert (inbox["totalEmails"], inbox["unreadEmails"], inbox["totalThreads"], inbox["unreadThreads"]) == (3, 2, 2, 2)
    assert inbox["myRights"]["mayReadItems"] and not inbox["myRights"]["mayDelete"]
    body = await jmap.ok("Mailbox/get", {"ids": [inbox["id"], "Mnope"], "properties": ["name"]})
    assert body["list"] == [{"id": inbox["id"], "name": "INBOX"}] and body["notFound"] == ["Mnope"]
    name, err = await jmap.call("Mailbox/get", {"properties": ["nope"]})
    assert name == "error" and err["type"] == "invalidArguments"


async def test_mailbox_set_and_changes(jmap, store, accounts):
    # RFC 8621 §2.5 and §2.2: create (with a creation-id parent), rename, subscribe, destroy; changes
    state0 = (await jmap.ok("Mailbox/get", {"ids": []}))["state"]
    out = await jmap.request(
        [
            [
                "Mailbox/set",
                {
                    "accountId": jmap.account_id,
                    "create": {"p": {"name": "Projects"}, "c": {"name": "Suite", "parentId": "#p"}},
                },
                "0",
            ],
        ]
    )
    created = out["methodResponses"][0][1]["created"]
    pid, cid = created["p"]["id"], created["c"]["id"]
    mbs = {m.name: m for m in await store.list_mailboxes(accounts[0].id)}
    assert "Projects/Suite" in mbs  # IMAP sees the hierarchy
    ch = await jmap.ok("Mailbox/changes", {"sinceState": state0})
    assert set(ch["created"]) == {pid, cid} and ch["oldState"] == state0 and not ch["hasMoreChanges"]
    body = await jmap.ok("Mailbox/set", {"update": {cid: {"name": "Renamed", "isSubscribed": False}}})
    assert cid in body["updated"]
    got = (await jmap.ok("Mailbox/get", {"ids": [cid]}))["list"][0]
    assert got["name"] == "Renamed" and got["parentId"] == pid and got["isSubscribed"] is False
    ch2 = await jmap.ok("Mailbox/changes", {"sinceState": ch["newState"]})
    assert cid in ch2["updated"] and ch2["updatedProperties"] is None
    # a mailbox with a child cannot go; one with mail needs onDestroyRemoveEmails
    body = await jmap.ok("Mailbox/set", {"destroy": [pid]})
    assert body["notDestroyed"][pid]["type"] == "mailboxHasChild"
    await store.deliver(accounts[0].id, "Projects/Renamed", message())
    body = await jmap.ok("Mailbox/set", {"destroy": [cid]})
    assert body["notDestroyed"][cid]["type"] == "mailboxHasEmail"
    body = await jmap.ok("Mailbox/set", {"destroy": [cid], "onDestroyRemoveEmails": True})
    assert body["destroyed"] == [cid]
    ch3 = await jmap.ok("Mailbox/changes", {"sinceState": ch2["newState"], "maxChanges": 50})
    assert cid in ch3["destroyed"]
    # invalid names, ifInState
    body = await jmap.ok("Mailbox/set", {"create": {"x": {"name": "a/b"}}})
    assert body["notCreated"]["x"]["type"] == "invalidProperties"
    name, err = await jmap.call("Mailbox/set", {"ifInState": "0", "create": {"y": {"name": "Y"}}})
    assert name == "error" and err["type"] == "stateMismatch"
    name, err = await jmap.call("Mailbox/changes", {"sinceState": "999999999"})
    assert err["type"] == "cannotCalculateChanges"


async def test_mailbox_changes_counts_only(jmap, store, accounts):
    # RFC 8621 §2.2 updatedProperties: only the counts changed
    state0 = (await jmap.ok("Mailbox/get", {"ids": []}))["state"]
    await store.deliver(accounts[0].id, "INBOX", message())
    ch = await jmap.ok("Mailbox/changes", {"sinceState": state0})
    assert ch["updatedProperties"] == ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]


async def test_mailbox_query(jmap):
    # RFC 8621 §2.3
    body = await jmap.ok("Mailbox/query", {"filter": {"role": "inbox"}})
    assert len(body["ids"]) == 1
    body = await jmap.ok("Mailbox/query", {"filter": {"hasAnyRole": False}, "calculateTotal": True})
    assert body["total"] == 0
    body = await jmap.ok("Mailbox/query", {"sort": [{"property": "name"}], "limit": 2, "calculateTotal": True})
    assert len(body["ids"]) == 2 and body["total"] == 6
    name, err = await jmap.call("Mailbox/query", {"filter": {"bogus": 1}})
    assert err["type"] == "unsupportedFilter"
    name, err = await jmap.call("Mailbox/query", {"sort": [{"property": "totalEmails"}]})
    assert err["type"] == "unsupportedSort"
