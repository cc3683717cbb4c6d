"""Email/import|parse|queryChanges|copy, Mailbox/queryChanges, SearchSnippet/get,
EmailSubmission/get|changes|query (RFC 8621 §2.4, §4.5, §4.7–4.9, §5.1, §7.1–7.3)."""

from __future__ import annotations

from tests.mail.jmap.conftest import message


async def _upload(jmap, data: bytes, ctype="message/rfc822") -> str:
    url = jmap.session["uploadUrl"].replace("{accountId}", jmap.account_id)
    r = await jmap.http.post(url, content=data, headers={"content-type": ctype})
    assert r.status_code == 201
    return r.json()["blobId"]


async def test_email_import_and_parse(jmap, store, accounts):
    # RFC 8621 §4.8 import (into two mailboxes, with keywords and receivedAt), §4.9 parse
    blob = await _upload(jmap, message("Imported", msgid="imp@x", body="imported body text\r\n"))
    inbox, archive = await jmap.mailbox("inbox"), await jmap.mailbox("archive")
    body = await jmap.ok(
        "Email/import",
        {
            "emails": {
                "i": {
                    "blobId": blob,
                    "mailboxIds": {inbox: True, archive: True},
                    "keywords": {"$seen": True},
                    "receivedAt": "2025-01-02T03:04:05Z",
                },
                "bad": {"blobId": "G" + "1" * 64, "mailboxIds": {inbox: True}},
                "nobox": {"blobId": blob, "mailboxIds": {}},
            }
        },
    )
    eid = body["created"]["i"]["id"]
    assert body["notCreated"]["bad"]["type"] == "blobNotFound"
    assert body["notCreated"]["nobox"]["type"] == "invalidProperties"
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["mailboxIds", "keywords", "receivedAt", "subject"]}))[
        "list"
    ][0]
    assert set(e["mailboxIds"]) == {inbox, archive} and e["keywords"] == {"$seen": True}
    assert e["receivedAt"] == "2025-01-02T03:04:05Z" and e["subject"] == "Imported"
    assert len(await store.messages((await store.get_mailbox(accounts[0].id, "Archive")).id)) == 1
    body = await jmap.ok("Email/parse", {"blobIds": [blob, "Gnope"], "fetchTextBodyValues": True})
    parsed = body["parsed"][blob]
    assert parsed["subject"] == "Imported" and parsed["blobId"] == blob
    assert next(iter(parsed["bodyValues"].values()))["value"].startswith("imported body text")
    assert body["notFound"] == ["Gnope"]


async def test_email_query_changes(jmap, store, accounts):
    # RFC 8620 §5.6: removed / added with index after new mail and a keyword change
    a = accounts[0].id
    for i in range(3):
        await store.deliver(a, "INBOX", message(f"M{i}", msgid=f"qc{i}@x"), internaldate=1_700_000_000 + i)
    inbox = await jmap.mailbox("inbox")
    args = {"filter": {"inMailbox": inbox}, "sort": [{"property": "receivedAt", "isAscending": False}]}
    q = await jmap.ok("Email/query", args)
    assert q["canCalculateChanges"] is True
    await store.deliver(a, "INBOX", message("New", msgid="qc9@x"), internaldate=1_700_000_100)
    body = await jmap.ok("Email/queryChanges", {**args, "sinceQueryState": q["queryState"], "calculateTotal": True})
    new = (await jmap.ok("Email/query", args))["ids"]
    assert body["added"] == [{"id": new[0], "index": 0}] and body["total"] == 4
    assert body["newQueryState"] != q["queryState"]
    name, err = await jmap.call("Email/queryChanges", {**args, "sinceQueryState": q["queryState"], "maxChanges": 1})
    assert err["type"] == "tooManyChanges"
    name, err = await jmap.call("Email/queryChanges", {**args, "sinceQueryState": "99999999"})
    assert err["type"] == "cannotCalculateChanges"
    # Mailbox/queryChanges (RFC 8621 §2.4)
    mq = await jmap.ok("Mailbox/query", {})
    await jmap.ok("Mailbox/set", {"create": {"n": {"name": "Zeta"}}})
    body = await jmap.ok("Mailbox/queryChanges", {"sinceQueryState": mq["queryState"]})
    assert len(body["added"]) == 1 and body["added"][0]["index"] == 6


async def test_search_snippet(jmap, store, accounts):
    # RFC 8621 §5.1: matched terms in <mark>, HTML escaped
    await store.deliver(
        accounts[0].id, "INBOX", message("Budget <draft> review", body="The quarterly budget is attached.\r\n")
    )
    eid = (await jmap.ok("Email/query", {"filter": {"text": "budget"}}))["ids"][0]
    body = await jmap.ok("SearchSnippet/get", {"filter": {"text": "budget"}, "emailIds": [eid, "e9999"]})
    snip = body["list"][0]
    assert snip["subject"] == "<mark>Budget</mark> &lt;draft&gt; review"
    assert "quarterly <mark>budget</mark> is" in snip["preview"]
    assert body["notFound"] == ["e9999"]


async def test_email_copy_single_account(jmap, bob_jmap):
    # RFC 8621 §4.7: only between accounts; none other is visible
    name, err = await jmap.call("Email/copy", {"fromAccountId": bob_jmap.account_id, "create": {}})
    assert err["type"] == "fromAccountNotFound"
    name, err = await jmap.call("Email/copy", {"fromAccountId": jmap.account_id, "create": {}})
    assert err["type"] == "invalidArguments"


async def test_submission_get_changes_query(jmap):
    drafts = await jmap.mailbox("drafts")
    state = (await jmap.ok("EmailSubmission/get", {"ids": []}))["state"]
    eid = (
        await jmap.ok(
            "Email/set",
            {
                "create": {
                    "d": {
                        "mailboxIds": {drafts: True},
                        "from": [{"email": "alice@example.test"}],
                        "to": [{"email": "bob@example.test"}],
                        "subject": "s",
                    }
                }
            },
        )
    )["created"]["d"]["id"]
    ident = (await jmap.ok("Identity/get", {}))["list"][0]["id"]
    sid = (await jmap.ok("EmailSubmission/set", {"create": {"s": {"identityId": ident, "emailId": eid}}}))["created"][
        "s"
    ]["id"]
    got = (await jmap.ok("EmailSubmission/get", {"ids": [sid]}))["list"][0]
    assert got["emailId"] == eid and got["undoStatus"] == "final" and got["identityId"] == ident
    assert got["deliveryStatus"]["bob@example.test"]["delivered"] == "yes"  # local: delivered at once
    ch = await jmap.ok("EmailSubmission/changes", {"sinceState": state})
    assert ch["created"] == [sid]
    q = await jmap.ok("EmailSubmission/query", {"filter": {"emailIds": [eid]}, "calculateTotal": True})
    assert q["ids"] == [sid] and q["total"] == 1
    body = await jmap.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
    assert body["notUpdated"][sid]["type"] == "cannotUnsend"
