"""RFC 8620 core over real HTTP: session resource, request errors, references, limits, auth."""

from __future__ import annotations

import httpx

from tests.mail.jmap.conftest import CORE, MAIL, PW, USING


async def test_session_resource(jmap, base_url):
    # RFC 8620 §2: capabilities with limits, accounts, primaryAccounts, URLs, state
    s = jmap.session
    core = s["capabilities"][CORE]
    assert core["maxCallsInRequest"] >= 1 and core["maxObjectsInGet"] >= 500 and core["maxSizeRequest"] > 0
    assert MAIL in s["capabilities"]
    acc = s["accounts"][jmap.account_id]
    assert acc["isPersonal"] and MAIL in acc["accountCapabilities"]
    assert s["username"] == "alice@example.test"
    assert s["apiUrl"] == f"{base_url}/jmap/api"
    for key in ("{accountId}", "{blobId}", "{name}", "{type}"):
        assert key in s["downloadUrl"]
    assert "{accountId}" in s["uploadUrl"]
    for key in ("{types}", "{closeafter}", "{ping}"):
        assert key in s["eventSourceUrl"]
    assert s["state"]


async def test_auth_required_and_app_password_scope(base_url, ctx):
    # issue #13 §5: Basic with the account password or an app password of scope "jmap"
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await http.get("/.well-known/jmap")
        assert r.status_code == 401 and "basic" in r.headers["www-authenticate"].lower()
        assert r.headers["content-type"].startswith("application/problem+json")
        r = await http.get("/.well-known/jmap", auth=("alice@example.test", "wrong"))
        assert r.status_code == 401
        _, dav_only = await ctx.accounts.add_app_password("alice@example.test", "dav", ["dav"])
        assert (await http.get("/.well-known/jmap", auth=("alice@example.test", dav_only))).status_code == 401
        _, secret = await ctx.accounts.add_app_password("alice@example.test", "mail app", ["jmap"])
        assert (await http.get("/.well-known/jmap", auth=("alice@example.test", secret))).status_code == 200


async def test_web_session_needs_csrf(base_url):
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await http.post("/api/login", json={"address": "alice@example.test", "password": PW})
        csrf = r.json()["csrf_token"]
        assert (await http.get("/.well-known/jmap")).status_code == 200
        body = {"using": [CORE], "methodCalls": [["Core/echo", {"a": 1}, "0"]]}
        r = await http.post("/jmap/api", json=body)
        assert r.status_code == 403
        r = await http.post("/jmap/api", json=body, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["methodResponses"] == [["Core/echo", {"a": 1}, "0"]]


async def test_echo(jmap):
    # RFC 8620 §4
    out = await jmap.request([["Core/echo", {"hello": True, "high": 5}, "b3ff"]])
    assert out["methodResponses"] == [["Core/echo", {"hello": True, "high": 5}, "b3ff"]]
    assert out["sessionState"] == jmap.session["state"]


async def test_request_level_errors(jmap):
    # RFC 8620 §3.6.1: problem documents
    http = jmap.http
    r = await http.post("/jmap/api", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
    r = await http.post("/jmap/api", content=b"{}", headers={"content-type": "text/plain"})
    assert r.json()["type"] == "urn:ietf:params:jmap:error:notJSON"
    r = await http.post("/jmap/api", json={"using": [CORE], "methodCalls": {}})
    assert r.json()["type"] == "urn:ietf:params:jmap:error:notRequest"
    r = await http.post("/jmap/api", json={"using": ["urn:example:nope"], "methodCalls": []})
    assert r.json()["type"] == "urn:ietf:params:jmap:error:unknownCapability"
    calls = [["Core/echo", {}, str(i)] for i in range(jmap.session["capabilities"][CORE]["maxCallsInRequest"] + 1)]
    r = await http.post("/jmap/api", json={"using": [CORE], "methodCalls": calls})
    assert r.json()["type"] == "urn:ietf:params:jmap:error:limit" and r.json()["limit"] == "maxCallsInRequest"


async def test_max_size_request_checked_before_body(jmap, gateway):
    # RFC 8620 §3.6.1 limit / maxSizeRequest: refused from Content-Length, before the body is sent
    import asyncio
    import base64

    limit = jmap.session["capabilities"][CORE]["maxSizeRequest"]
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    token = base64.b64encode(f"alice@example.test:{PW}".encode()).decode()
    writer.write(
        (
            f"POST /jmap/api HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {limit + 1}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 413")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    assert b'"limit":"maxSizeRequest"' in body
    writer.close()


async def test_method_errors(jmap, bob_jmap):
    # RFC 8620 §3.6.2
    out = await jmap.request([["Foo/bar", {}, "0"], ["Mailbox/get", {"accountId": bob_jmap.account_id}, "1"]])
    assert out["methodResponses"][0] == [
        "error",
        {"type": "unknownMethod", "description": "unknown method 'Foo/bar'"},
        "0",
    ]
    assert out["methodResponses"][1][1]["type"] == "accountNotFound"
    # a method of a capability not in "using"
    out = await jmap.request([["Mailbox/get", {"accountId": jmap.account_id}, "0"]], using=[CORE])
    assert out["methodResponses"][0][1]["type"] == "unknownMethod"
    name, body = await jmap.call("Mailbox/get", {"bogus": 1})
    assert name == "error" and body["type"] == "invalidArguments"


async def test_result_references(jmap):
    # RFC 8620 §3.7: JSON Pointer with "*", invalidResultReference
    out = await jmap.request(
        [
            ["Mailbox/query", {"accountId": jmap.account_id}, "0"],
            [
                "Mailbox/get",
                {"accountId": jmap.account_id, "#ids": {"resultOf": "0", "name": "Mailbox/query", "path": "/ids"}},
                "1",
            ],
            ["Core/echo", {"#names": {"resultOf": "1", "name": "Mailbox/get", "path": "/list/*/name"}}, "2"],
            [
                "Mailbox/get",
                {"accountId": jmap.account_id, "#ids": {"resultOf": "9", "name": "Mailbox/query", "path": "/ids"}},
                "3",
            ],
            [
                "Mailbox/get",
                {"accountId": jmap.account_id, "#ids": {"resultOf": "0", "name": "Mailbox/get", "path": "/ids"}},
                "4",
            ],
            [
                "Mailbox/get",
                {"accountId": jmap.account_id, "#ids": {"resultOf": "0", "name": "Mailbox/query", "path": "/nope"}},
                "5",
            ],
        ]
    )
    r = out["methodResponses"]
    assert len(r[1][1]["list"]) == len(r[0][1]["ids"]) == 6
    assert sorted(r[2][1]["names"]) == sorted(["INBOX", "Drafts", "Sent", "Junk", "Trash", "Archive"])
    assert [x[1]["type"] for x in r[3:]] == ["invalidResultReference"] * 3


async def test_concurrent_request_limit(jmap, gateway):
    # RFC 8620 §3.6.1 limit maxConcurrentRequests: the next request is refused while others run
    app_state = gateway.app.state.jmap
    account = int(jmap.account_id[1:])
    app_state.inflight[account] = jmap.session["capabilities"][CORE]["maxConcurrentRequests"]
    try:
        r = await jmap.http.post("/jmap/api", json={"using": USING, "methodCalls": []})
        assert r.status_code == 400 and r.json()["limit"] == "maxConcurrentRequests"
    finally:
        app_state.inflight[account] = 0
