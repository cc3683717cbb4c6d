"""Gateway over a real socket: health, login → cookie, /api/me, CSRF, logout, JSON errors, rate limit."""

from __future__ import annotations

import re

import httpx
import pytest

from suite.gateway.service import GatewayService
from suite.testing import missing

PW = "correct horse battery"


@pytest.fixture
async def gw(ctx):
    ctx.settings.http_port = 0
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account("alice@example.test", PW, display_name="Alice")
    svc = GatewayService(ctx)
    await svc.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{svc.port}", timeout=20) as client:
        yield client
    await svc.stop()


async def login(client, password=PW, address="alice@example.test"):
    return await client.post("/api/login", json={"address": address, "password": password})


async def test_healthz(gw):
    r = await gw.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


async def test_login_me_logout(gw):
    assert (await gw.get("/api/me")).status_code == 401
    r = await login(gw)
    assert r.status_code == 200
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    csrf = r.json()["csrf_token"]
    me = (await gw.get("/api/me")).json()
    assert me["address"] == "alice@example.test" and me["display_name"] == "Alice" and me["csrf_token"] == csrf
    # a cookie-authenticated write without the CSRF token is refused
    r = await gw.post("/api/logout")
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    assert (await gw.post("/api/logout", headers={"X-CSRF-Token": "wrong"})).status_code == 403
    assert (await gw.post("/api/logout", headers={"X-CSRF-Token": csrf})).status_code == 200
    assert (await gw.get("/api/me")).status_code == 401


async def test_bad_logins_get_json_errors(gw):
    r = await login(gw, password="wrong password")
    assert r.status_code == 401 and r.json() == {"error": "unauthorized", "message": "wrong address or password"}
    assert (await gw.post("/api/login", content=b"{", headers={"content-type": "application/json"})).status_code == 400
    assert (await gw.post("/api/login", data={"address": "a", "password": "b"})).status_code == 415
    big = {"address": "a@b.c", "password": "x" * 70_000}
    assert (await gw.post("/api/login", json=big)).status_code == 413
    r = await gw.post(
        "/api/login", json={"address": "alice@example.test", "password": PW}, headers={"Origin": "https://evil.example"}
    )
    assert r.status_code == 403
    r = await gw.get("/no/such/page")
    assert r.status_code == 404 and r.json()["error"] == "not_found"


async def test_app_password_is_not_a_web_password(gw, ctx):
    _, secret = await ctx.accounts.add_app_password("alice@example.test", "mail app", ["imap", "smtp", "dav"])
    assert (await login(gw, password=secret)).status_code == 401


async def test_login_rate_limited(gw, ctx):
    ctx.settings.login_max_failures_per_address = 3
    for _ in range(3):
        assert (await login(gw, password="wrong password")).status_code == 401
    r = await login(gw)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0


async def test_index_page(gw):
    r = await gw.get("/")
    if r.status_code == 503:  # web/dist missing: the page says how to build it
        assert "make web" in r.text
        missing("the web app is not built (make web)")
    assert r.status_code == 200 and "<title>Suite</title>" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    js = re.search(r'src="(/assets/app-[A-Z0-9]+\.js)"', r.text)
    assert js is not None and (await gw.get(js.group(1))).status_code == 200
