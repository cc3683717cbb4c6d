"""Identity/set and Identity/changes (RFC 8621 §6.2, §6.3) over real HTTP; the submission's sender
stays bound to the identity's address (§7.5)."""

from __future__ import annotations

import asyncio

from suite.storage.events import IdentitiesChanged
from tests.mail.jmap.test_blobs_identity_submission import _draft


async def test_identity_set_and_changes_follow_aliases(jmap, ctx):
    got = await jmap.ok("Identity/get", {})
    state0 = got["state"]
    own = got["list"][0]
    assert own["email"] == "alice@example.test" and own["mayDelete"] is False
    # an admin adds an alias: the Identity state moves and /changes names the new identity (§6.2),
    # and the bus tells the push side (EventSource, PushSubscription)
    sub = ctx.bus.subscribe(IdentitiesChanged)
    await ctx.accounts.add_alias("info@example.test", "alice@example.test")
    assert (await asyncio.wait_for(sub.get(), 10)).account_id == (await ctx.accounts.get("alice@example.test")).id
    sub.close()
    ch = await jmap.ok("Identity/changes", {"sinceState": state0})
    assert len(ch["created"]) == 1 and ch["updated"] == [] and ch["destroyed"] == []
    alias_ident = ch["created"][0]
    # §6.3 create: an alias, an address under the account's catch-all; another address is forbiddenFrom
    await ctx.accounts.add_domain("shop.test")
    await ctx.accounts.add_alias("*@shop.test", "alice@example.test")
    body = await jmap.ok(
        "Identity/set",
        {
            "ifInState": ch["newState"],
            "create": {
                "a": {"email": "sales@shop.test", "name": "Sales", "textSignature": "-- \nSales"},
                "b": {"email": "bob@example.test"},
                "c": {"email": "x@elsewhere.test"},
                "d": {"email": "info@example.test", "mayDelete": False},
            },
        },
    )
    assert body["created"]["a"]["mayDelete"] is True
    assert body["notCreated"]["b"]["type"] == "forbiddenFrom" and body["notCreated"]["c"]["type"] == "forbiddenFrom"
    assert body["notCreated"]["d"]["type"] == "invalidProperties"
    sales = body["created"]["a"]["id"]
    # update every settable property; email is immutable
    patch = {
        "name": "Alice at work",
        "replyTo": [{"name": "Desk", "email": "desk@example.test"}],
        "bcc": [{"name": None, "email": "archive@example.test"}],
        "textSignature": "-- \nAlice",
        "htmlSignature": "<p>Alice</p>",
    }
    body = await jmap.ok("Identity/set", {"update": {own["id"]: patch, alias_ident: {"email": "x@example.test"}}})
    assert body["updated"] == {own["id"]: None} and body["notUpdated"][alias_ident]["type"] == "invalidProperties"
    got = {i["id"]: i for i in (await jmap.ok("Identity/get", {}))["list"]}
    assert {k: got[own["id"]][k] for k in patch} == patch
    assert got[sales]["email"] == "sales@shop.test" and got[sales]["name"] == "Sales"
    # destroy: not the own address (mayDelete false)
    body = await jmap.ok("Identity/set", {"destroy": [own["id"], sales, "I999999"]})
    assert body["destroyed"] == [sales]
    assert body["notDestroyed"][own["id"]]["type"] == "forbidden"
    assert body["notDestroyed"]["I999999"]["type"] == "notFound"
    # the admin removes the alias: its identity is destroyed, seen through /changes
    before = (await jmap.ok("Identity/get", {"ids": []}))["state"]
    await ctx.accounts.remove_alias("info@example.test")
    ch = await jmap.ok("Identity/changes", {"sinceState": before})
    assert ch["destroyed"] == [alias_ident]
    assert alias_ident not in {i["id"] for i in (await jmap.ok("Identity/get", {}))["list"]}


async def test_submission_sender_bound_to_identity(jmap, ctx):
    # an identity under the catch-all sends From its own address; another identity may not use it
    await ctx.accounts.add_domain("shop.test")
    await ctx.accounts.add_alias("*@shop.test", "alice@example.test")
    body = await jmap.ok("Identity/set", {"create": {"a": {"email": "sales@shop.test"}}})
    sales = body["created"]["a"]["id"]
    own = next(i["id"] for i in (await jmap.ok("Identity/get", {}))["list"] if i["email"] == "alice@example.test")
    eid = await _draft(jmap, frm="sales@shop.test", to="someone@remote.example")
    body = await jmap.ok("EmailSubmission/set", {"create": {"s": {"identityId": own, "emailId": eid}}})
    assert body["notCreated"]["s"]["type"] == "forbiddenFrom"
    body = await jmap.ok("EmailSubmission/set", {"create": {"s": {"identityId": sales, "emailId": eid}}})
    assert body["created"]["s"]["envelope"]["mailFrom"]["email"] == "sales@shop.test"
