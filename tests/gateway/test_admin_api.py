"""/api/admin over a real socket (issue 16 item 4): every route refuses non-admins with 403 (and
anonymous callers with 401); domains with their DNS records and a Check through the configured
resolver against a DNS server on loopback; users, aliases and catch-all, storage, the outbound
queue, health and the audit log."""

from __future__ import annotations

import asyncio
import re

import dns.flags
import dns.message
import dns.rcode
import dns.zone
import httpx
import pytest
from starlette.routing import Route

from suite.gateway import admin_routes
from suite.gateway.service import GatewayService
from suite.mail.queue.queue import enqueue

PW = "correct horse battery"
ADMIN = "root@example.test"
USER = "alice@example.test"


class ZoneServer(asyncio.DatagramProtocol):
    """Answers from a dnspython zone (authoritative, UDP): the records an admin published."""

    def __init__(self, zone: dns.zone.Zone) -> None:
        self.zone = zone
        self.transport = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        q = dns.message.from_wire(data)
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        question = q.question[0]
        node = self.zone.get_node(question.name)
        if node is None:
            r.set_rcode(dns.rcode.NXDOMAIN)
        else:
            rds = node.get_rdataset(question.rdclass, question.rdtype)
            if rds is not None:
                r.answer.append(dns.rrset.from_rdata_list(question.name, rds.ttl, list(rds)))
        self.transport.sendto(r.to_wire(), addr)


@pytest.fixture
async def gw(ctx):
    ctx.settings.http_port = 0
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account(ADMIN, PW, is_admin=True)
    await ctx.accounts.add_account(USER, PW)
    svc = GatewayService(ctx)
    await svc.start()
    yield svc
    await svc.stop()


async def session(gw, address: str, password: str = PW) -> tuple[httpx.AsyncClient, dict]:
    c = httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=20)
    r = await c.post("/api/login", json={"address": address, "password": password})
    assert r.status_code == 200
    return c, {"X-CSRF-Token": r.json()["csrf_token"]}


def every_admin_route() -> list[tuple[str, str]]:
    out = []
    for route in admin_routes.ROUTES:
        assert isinstance(route, Route)
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        out += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return out


async def test_non_admins_get_403_on_every_admin_route(gw):
    routes = every_admin_route()
    assert len(routes) >= 18
    user, csrf = await session(gw, USER)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=20) as anon:
        for method, path in routes:
            r = await user.request(method, path, headers=csrf, json={})
            assert r.status_code == 403 and r.json()["error"] == "forbidden", (method, path, r.text)
            assert (await anon.request(method, path, json={})).status_code == 401, (method, path)
    await user.aclose()


async def test_domains_records_and_check_against_a_dns_server(gw, ctx):
    admin, csrf = await session(gw, ADMIN)
    r = await admin.post("/api/admin/domains", json={"name": "shop.test"}, headers=csrf)
    assert r.status_code == 201, r.text
    records = r.json()["records"]
    kinds = {(x["type"], x["name"]) for x in records}
    assert ("MX", "shop.test.") in kinds and ("SRV", "_submission._tcp.shop.test.") in kinds
    assert (await admin.post("/api/admin/domains", json={"name": "shop.test"}, headers=csrf)).status_code == 409
    # publish all but the DMARC record, and a wrong SPF
    lines = [x["zone_line"] for x in records if not x["name"].startswith("_dmarc.")]
    lines = [ln.replace("v=spf1 mx -all", "v=spf1 -all") for ln in lines]
    zone = dns.zone.from_text(
        "@ 3600 IN SOA ns.shop.test. host.shop.test. 1 3600 600 86400 300\n@ 3600 IN NS ns.shop.test.\n"
        + "\n".join(lines),
        origin="shop.test.",
        relativize=False,
        check_origin=False,
    )
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: ZoneServer(zone), local_addr=("127.0.0.1", 0))
    ctx.settings.dns_nameservers = ["127.0.0.1"]
    ctx.settings.dns_port = transport.get_extra_info("sockname")[1]
    try:
        r = await admin.post("/api/admin/domains/shop.test/check", headers=csrf)
    finally:
        transport.close()
    assert r.status_code == 200, r.text
    by = {(x["type"], x["name"]): x for x in r.json()["records"]}
    assert r.json()["ok"] is False
    assert by[("MX", "shop.test.")]["status"] == "ok"
    assert by[("TXT", "shop.test.")]["status"] == "different" and by[("TXT", "shop.test.")]["found"] == ["v=spf1 -all"]
    assert by[("TXT", "_dmarc.shop.test.")]["status"] == "missing"
    dkim = [x for x in r.json()["records"] if "._domainkey." in x["name"]]
    assert dkim and all(x["status"] == "ok" for x in dkim)  # long TXT values split and joined back
    assert (await admin.delete("/api/admin/domains/shop.test", headers=csrf)).status_code == 200
    assert (await admin.get("/api/admin/domains/shop.test")).status_code == 404
    await admin.aclose()


async def test_users_aliases_storage_queue_health_audit(gw, ctx):
    admin, csrf = await session(gw, ADMIN)
    r = await admin.post(
        "/api/admin/users", json={"address": "bob@example.test", "password": PW, "quota_bytes": 1000}, headers=csrf
    )
    assert r.status_code == 201 and r.json()["quota_bytes"] == 1000
    assert (
        await admin.post("/api/admin/users", json={"address": "x@nowhere.test", "password": PW}, headers=csrf)
    ).status_code == 404
    r = await admin.patch(
        "/api/admin/users/bob@example.test",
        json={"quota_bytes": 5000, "is_admin": True, "disabled": True},
        headers=csrf,
    )
    assert r.status_code == 200
    assert (r.json()["quota_bytes"], r.json()["is_admin"], r.json()["disabled"]) == (5000, True, True)
    assert not (await ctx.accounts.authenticate("bob@example.test", PW, scope="web")).ok
    r = await admin.patch(
        "/api/admin/users/bob@example.test", json={"disabled": False, "password": "reset passphrase 1"}, headers=csrf
    )
    assert r.status_code == 200
    assert (await ctx.accounts.authenticate("bob@example.test", "reset passphrase 1", scope="web")).ok
    # big attachments as links (`suite user big-attachments`), also what the login sees
    assert r.json()["big_attachment_links"] is False
    r = await admin.patch("/api/admin/users/bob@example.test", json={"big_attachment_links": True}, headers=csrf)
    assert r.status_code == 200 and r.json()["big_attachment_links"] is True
    bob = await ctx.accounts.get(r.json()["address"])
    assert bob is not None and await ctx.accounts.big_attachment_links(bob.id)
    auth = await ctx.accounts.authenticate("bob@example.test", "reset passphrase 1", scope="web")
    assert auth.account is not None and auth.account.big_attachment_links
    r = await admin.patch("/api/admin/users/bob@example.test", json={"big_attachment_links": "yes"}, headers=csrf)
    assert r.status_code == 400
    # no self-lockout
    assert (await admin.patch(f"/api/admin/users/{ADMIN}", json={"disabled": True}, headers=csrf)).status_code == 400
    assert (await admin.delete(f"/api/admin/users/{ADMIN}", headers=csrf)).status_code == 409
    users = {u["address"]: u for u in (await admin.get("/api/admin/users")).json()["users"]}
    assert set(users) == {ADMIN, USER, "bob@example.test"} and "used_bytes" in users[USER]
    # aliases and the catch-all
    assert (
        await admin.post("/api/admin/aliases", json={"alias": "sales@example.test", "target": USER}, headers=csrf)
    ).status_code == 201
    assert (
        await admin.post("/api/admin/aliases", json={"alias": "*@example.test", "target": USER}, headers=csrf)
    ).status_code == 201
    listed = (await admin.get("/api/admin/aliases")).json()["aliases"]
    assert {(a["alias"], a["catch_all"]) for a in listed} == {("sales@example.test", False), ("*@example.test", True)}
    assert (await ctx.accounts.resolve_recipient("anything@example.test")).address == USER
    assert (await admin.delete("/api/admin/aliases/*@example.test", headers=csrf)).status_code == 200
    assert await ctx.accounts.resolve_recipient("anything@example.test") is None
    # outbound queue
    ref = await ctx.blobs.put(b"Subject: queued\r\n\r\nx\r\n")
    mid = await enqueue(ctx, mail_from=USER, recipients=["a@far.test"], blob=ref)
    q = (await admin.get("/api/admin/queue")).json()["messages"]
    assert [m["id"] for m in q] == [mid] and q[0]["recipients"][0]["address"] == "a@far.test"
    assert (await admin.post(f"/api/admin/queue/{mid}/retry", headers=csrf)).json() == {"recipients": 1}
    assert (await admin.delete(f"/api/admin/queue/{mid}", headers=csrf)).status_code == 200
    assert (await admin.delete(f"/api/admin/queue/{mid}", headers=csrf)).status_code == 404
    assert (await admin.get("/api/admin/queue")).json()["messages"] == []
    h = (await admin.get("/api/admin/health")).json()
    assert h["database"]["status"] == "ok" and h["accounts"] == 3
    # the audit log: admins see everything, a user their own
    actions = [e["action"] for e in (await admin.get("/api/admin/audit")).json()["entries"]]
    for a in (
        "admin.user.created",
        "admin.user.disabled",
        "admin.user.password_reset",
        "admin.alias.added",
        "admin.queue.deleted",
    ):
        assert a in actions
    bob, _ = await session(gw, "bob@example.test", "reset passphrase 1")
    own = [e["action"] for e in (await bob.get("/api/settings/audit")).json()["entries"]]
    assert "admin.user.password_reset" in own and "admin.alias.added" not in own
    await bob.aclose()
    await admin.aclose()


async def test_one_export_at_a_time_per_account(gw):
    """While an export of an account streams (its slot taken), a second one is refused with 409."""
    admin, admin_csrf = await session(gw, ADMIN)
    user, csrf = await session(gw, USER)
    url = (await user.post("/api/settings/export", headers=csrf)).json()["url"]
    gw.app.state.exports_running = {USER}
    for client, headers, path in (
        (user, csrf, "/api/settings/export"),
        (admin, admin_csrf, f"/api/admin/users/{USER}/export"),
    ):
        r = await client.post(path, headers=headers)
        assert r.status_code == 409 and r.json()["error"] == "busy", r.text
    r = await user.get(url)
    assert r.status_code == 409 and r.json()["error"] == "busy"
    gw.app.state.exports_running = set()
    r = await user.get(url)
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment;")
    assert USER not in gw.app.state.exports_running  # the slot is free again once the answer ended
    await user.aclose()
    await admin.aclose()


async def test_export_slot_is_free_when_the_zip_has_ended(gw):
    """The slot is freed before the answer's last body message goes out: a client that has the whole
    zip and at once asks for the next export is not told 409 (CI once saw that race)."""
    app = gw.app
    at_end: list[bool] = []

    async def watched(scope, receive, send):
        async def spy(message):
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                if scope["path"].endswith("/export/download"):
                    at_end.append(USER in app.state.exports_running)
            await send(message)

        await app(scope, receive, spy)

    transport = httpx.ASGITransport(app=watched, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{gw.port}") as c:
        r = await c.post("/api/login", json={"address": USER, "password": PW})
        assert r.status_code == 200, r.text
        csrf = {"X-CSRF-Token": r.json()["csrf_token"]}
        for _ in range(2):
            r = await c.post("/api/settings/export", headers=csrf)
            assert r.status_code == 200, r.text
            got = await c.get(r.json()["url"])
            assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    assert at_end == [False, False]
