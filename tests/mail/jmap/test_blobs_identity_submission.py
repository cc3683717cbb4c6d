"""Blobs (RFC 8620 §6), Identity/get (RFC 8621 §6) and EmailSubmission/set (RFC 8621 §7)."""

from __future__ import annotations

import asyncio
import base64
import time

from suite.mail.queue import queue
from tests.mail.jmap.conftest import CORE, PW


def _download_url(jmap, blob_id: str, name: str, type_: str) -> str:
    return (
        jmap.session["downloadUrl"]
        .replace("{accountId}", jmap.account_id)
        .replace("{blobId}", blob_id)
        .replace("{name}", name)
        .replace("{type}", type_)
    )


async def test_upload_download_range_and_isolation(jmap, bob_jmap):
    # RFC 8620 §6.1 upload, §6.2 download (accept and name honoured, attachment, Range)
    data = bytes(range(256)) * 40
    url = jmap.session["uploadUrl"].replace("{accountId}", jmap.account_id)
    r = await jmap.http.post(url, content=data, headers={"content-type": "image/png"})
    assert r.status_code == 201
    up = r.json()
    assert up["size"] == len(data) and up["type"] == "image/png" and up["accountId"] == jmap.account_id
    dl = _download_url(jmap, up["blobId"], "pic%20%C3%BC.png", "image/png")
    r = await jmap.http.get(dl)
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "image/png"
    cd = r.headers["content-disposition"]
    assert cd.startswith("attachment;") and "filename*=UTF-8''pic%20%C3%BC.png" in cd
    assert r.headers["content-security-policy"].startswith("sandbox")
    r = await jmap.http.get(dl, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{len(data)}"
    r = await jmap.http.get(dl, headers={"Range": f"bytes={len(data) + 5}-"})
    assert r.status_code == 416
    # another account: neither its URL nor the blob id works
    assert (await bob_jmap.http.get(dl)).status_code == 404
    bob_dl = dl.replace(f"/{jmap.account_id}/", f"/{bob_jmap.account_id}/")
    assert (await bob_jmap.http.get(bob_dl)).status_code == 404
    # Blob/copy (RFC 8620 §6.3) within the account
    _, body = await jmap.call(
        "Blob/copy", {"fromAccountId": jmap.account_id, "blobIds": [up["blobId"], "Gbad"]}, using=[CORE]
    )
    assert body["copied"] == {up["blobId"]: up["blobId"]} and body["notCopied"]["Gbad"]["type"] == "blobNotFound"


async def test_upload_too_large(jmap, gateway):
    # RFC 8620 §6.1: over maxSizeUpload is refused from Content-Length, before the body is stored
    limit = jmap.session["capabilities"][CORE]["maxSizeUpload"]
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    token = base64.b64encode(f"alice@example.test:{PW}".encode()).decode()
    writer.write(
        (
            f"POST /jmap/upload/{jmap.account_id}/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            f"Content-Length: {limit + 1}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413")
    writer.close()


async def test_attachment_from_upload_and_part_download(jmap):
    # RFC 8621 §4.6: an attachment by blobId; its part is downloadable by the part's blobId
    url = jmap.session["uploadUrl"].replace("{accountId}", jmap.account_id)
    up = (await jmap.http.post(url, content=b"%PDF-1.4 fake", headers={"content-type": "application/pdf"})).json()
    drafts = await jmap.mailbox("drafts")
    body = await jmap.ok(
        "Email/set",
        {
            "create": {
                "a": {
                    "mailboxIds": {drafts: True},
                    "subject": "with file",
                    "textBody": [{"partId": "1"}],
                    "bodyValues": {"1": {"value": "see attached"}},
                    "attachments": [{"blobId": up["blobId"], "type": "application/pdf", "name": "f.pdf"}],
                }
            }
        },
    )
    eid = body["created"]["a"]["id"]
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["attachments", "hasAttachment"]}))["list"][0]
    assert e["hasAttachment"] and e["attachments"][0]["name"] == "f.pdf"
    r = await jmap.http.get(_download_url(jmap, e["attachments"][0]["blobId"], "f.pdf", "application/pdf"))
    assert r.status_code == 200 and r.content == b"%PDF-1.4 fake"
    body = await jmap.ok(
        "Email/set", {"create": {"b": {"mailboxIds": {drafts: True}, "attachments": [{"blobId": "G" + "0" * 64}]}}}
    )
    assert body["notCreated"]["b"]["type"] == "blobNotFound"


async def test_identity_get(jmap, ctx):
    # RFC 8621 §6.1: the own address and the aliases, never the catch-all
    await ctx.accounts.add_alias("info@example.test", "alice@example.test")
    await ctx.accounts.add_alias("*@example.test", "alice@example.test")
    body = await jmap.ok("Identity/get", {})
    assert sorted(i["email"] for i in body["list"]) == ["alice@example.test", "info@example.test"]
    assert all(i["name"] == "Alice" for i in body["list"])
    # the own address stays; an alias's identity may be removed (the alias itself is the admin's)
    assert {i["email"]: i["mayDelete"] for i in body["list"]} == {
        "alice@example.test": False,
        "info@example.test": True,
    }


async def _draft(jmap, frm="alice@example.test", to="bob@example.test", extra=None) -> str:
    drafts = await jmap.mailbox("drafts")
    obj = {
        "mailboxIds": {drafts: True},
        "keywords": {"$draft": True},
        "from": [{"email": frm}],
        "to": [{"email": to}],
        "subject": "Sent via JMAP",
        "textBody": [{"partId": "1"}],
        "bodyValues": {"1": {"value": "hello bob"}},
        **(extra or {}),
    }
    return (await jmap.ok("Email/set", {"create": {"d": obj}}))["created"]["d"]["id"]


async def test_submission_local_and_on_success(jmap, bob_jmap):
    # RFC 8621 §7.5: local delivery, then onSuccessUpdateEmail moves the draft to Sent
    eid = await _draft(jmap, extra={"bcc": [{"email": "secret@example.net"}]})
    ident = (await jmap.ok("Identity/get", {}))["list"][0]["id"]
    drafts, sent = await jmap.mailbox("drafts"), await jmap.mailbox("sent")
    args = {
        "accountId": jmap.account_id,
        "create": {
            "s": {
                "identityId": ident,
                "emailId": eid,
                "envelope": {"mailFrom": {"email": "alice@example.test"}, "rcptTo": [{"email": "bob@example.test"}]},
            }
        },
        "onSuccessUpdateEmail": {
            "#s": {
                f"mailboxIds/{drafts}": None,
                f"mailboxIds/{sent}": True,
                "keywords/$draft": None,
                "keywords/$seen": True,
            }
        },
    }
    r = (await jmap.request([["EmailSubmission/set", args, "0"]]))["methodResponses"]
    assert r[0][0] == "EmailSubmission/set" and r[0][1]["created"]["s"]["undoStatus"] == "final"
    assert r[1][0] == "Email/set" and r[1][2] == "0" and eid in r[1][1]["updated"]
    e = (await jmap.ok("Email/get", {"ids": [eid], "properties": ["mailboxIds", "keywords"]}))["list"][0]
    assert set(e["mailboxIds"]) == {sent} and e["keywords"] == {"$seen": True}
    # Bob got it, without the Bcc header field
    deadline = time.monotonic() + 10
    ids: list = []
    while not ids and time.monotonic() < deadline:
        ids = (await bob_jmap.ok("Email/query", {"filter": {"subject": "Sent via JMAP"}}))["ids"]
        await asyncio.sleep(0.05)
    got = (await bob_jmap.ok("Email/get", {"ids": ids, "properties": ["bcc", "from"]}))["list"][0]
    assert got["bcc"] is None and got["from"] == [{"name": None, "email": "alice@example.test"}]


async def test_submission_remote_goes_to_queue_and_sender_is_bound(jmap, ctx):
    # the remote recipient is queued; a From or MAIL FROM the account does not own is refused
    eid = await _draft(jmap, to="someone@remote.example")
    ident = (await jmap.ok("Identity/get", {}))["list"][0]["id"]
    body = await jmap.ok("EmailSubmission/set", {"create": {"s": {"identityId": ident, "emailId": eid}}})
    assert body["created"]["s"]["envelope"]["rcptTo"] == [{"email": "someone@remote.example", "parameters": None}]
    entries = await queue.list_queue(ctx)
    assert [r.address for e in entries for r in e.recipients] == ["someone@remote.example"]
    assert entries[0].mail_from == "alice@example.test"
    # RFC 8621 §7: pending while queued (no queue worker runs here), then canceled through the queue
    sid = body["created"]["s"]["id"]
    assert body["created"]["s"]["undoStatus"] == "pending"
    got = (await jmap.ok("EmailSubmission/get", {"ids": [sid]}))["list"][0]
    assert got["deliveryStatus"]["someone@remote.example"]["delivered"] == "queued"
    body = await jmap.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
    assert body["updated"] == {sid: None}
    assert await queue.list_queue(ctx) == []
    assert (await jmap.ok("EmailSubmission/get", {"ids": [sid]}))["list"][0]["undoStatus"] == "canceled"
    body = await jmap.ok("EmailSubmission/set", {"update": {sid: {"undoStatus": "canceled"}}})
    assert body["notUpdated"][sid]["type"] == "cannotUnsend"
    forged = await _draft(jmap, frm="ceo@example.test")
    body = await jmap.ok("EmailSubmission/set", {"create": {"s": {"identityId": ident, "emailId": forged}}})
    assert body["notCreated"]["s"]["type"] == "forbiddenFrom"

    def env(mail_from: str, rcpt: str) -> dict:
        return {"mailFrom": {"email": mail_from}, "rcptTo": [{"email": rcpt}]}

    create = {"s": {"identityId": ident, "emailId": eid, "envelope": env("bob@example.test", "x@remote.example")}}
    body = await jmap.ok("EmailSubmission/set", {"create": create})
    assert body["notCreated"]["s"]["type"] == "forbiddenMailFrom"
    create = {"s": {"identityId": ident, "emailId": eid, "envelope": env("alice@example.test", "nobody@example.test")}}
    body = await jmap.ok("EmailSubmission/set", {"create": create})
    assert body["notCreated"]["s"]["type"] == "invalidRecipients"
    body = await jmap.ok("EmailSubmission/set", {"create": {"s": {"identityId": "I999", "emailId": eid}}})
    assert body["notCreated"]["s"]["type"] == "invalidProperties"


async def test_uploads_count_on_quota(jmap, ctx):
    # issue #13 §5: an upload takes quota; past it the answer is overQuota (413)
    url = jmap.session["uploadUrl"].replace("{accountId}", jmap.account_id)
    before = (await ctx.accounts.get("alice@example.test")).used_bytes
    r = await jmap.http.post(url, content=b"x" * 1000, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 201
    assert (await ctx.accounts.get("alice@example.test")).used_bytes == before + 1000
    await ctx.accounts.set_quota("alice@example.test", before + 1500)
    r = await jmap.http.post(url, content=b"y" * 1000, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413 and r.json()["type"] == "urn:ietf:params:jmap:error:overQuota"
