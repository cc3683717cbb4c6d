"""/api/settings over a real socket (issue 16 item 1): change password, TOTP with recovery codes
and the two-step web login, app passwords shown once, sessions and live connections with "End",
sign out everywhere, the audit log, rate limits on every step."""

from __future__ import annotations

import asyncio
import imaplib
import time

import httpx
import pyotp
import pytest

from suite.gateway.service import GatewayService
from suite.mail.imap.server import ImapService
from suite.testing import async_wait_until

PW = "correct horse battery"
ALICE = "alice@example.test"


@pytest.fixture
async def gw(ctx):
    ctx.settings.http_port = 0
    await ctx.accounts.add_domain("example.test")
    await ctx.accounts.add_account(ALICE, PW)
    await ctx.accounts.add_account("bob@example.test", PW)
    svc = GatewayService(ctx)
    await svc.start()
    yield svc
    await svc.stop()


def client(gw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=20)


async def signed_in(gw, address=ALICE, password=PW) -> tuple[httpx.AsyncClient, str]:
    c = client(gw)
    r = await c.post("/api/login", json={"address": address, "password": password})
    assert r.status_code == 200 and "csrf_token" in r.json(), r.text
    return c, r.json()["csrf_token"]


async def enrol_totp(c: httpx.AsyncClient, csrf: str) -> tuple[pyotp.TOTP, list[str], str]:
    r = await c.post("/api/settings/totp", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["uri"].startswith("otpauth://totp/Suite:alice%40example.test?") and "issuer=Suite" in body["uri"]
    assert body["qr_svg"].lstrip().startswith("<svg") and "<path" in body["qr_svg"]
    totp = pyotp.TOTP(body["secret"])
    r = await c.post("/api/settings/totp/confirm", json={"code": "000000"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 400 or totp.now() == "000000"
    first = totp.now()
    r = await c.post("/api/settings/totp/confirm", json={"code": first}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    codes = r.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return totp, codes, first


async def test_totp_two_step_login_refuses_replay_and_takes_recovery_codes_once(gw, ctx):
    c, csrf = await signed_in(gw)
    totp, codes, first = await enrol_totp(c, csrf)
    assert (await c.get("/api/settings")).json()["totp"] is True
    async with client(gw) as other:
        r = await other.post("/api/login", json={"address": ALICE, "password": PW})
        assert r.status_code == 200 and r.json()["second_factor"] == ["totp", "recovery"]
        assert "suite_session" not in other.cookies  # no session before the second step
        challenge = r.json()["challenge"]
        # the code of the step used to confirm the enrolment cannot be used again (replay)
        r = await other.post("/api/login/second-factor", json={"challenge": challenge, "code": first})
        assert r.status_code == 401 and r.json()["error"] == "bad-code"
        nxt = totp.at(time.time() + 30)  # the next step's code (within the allowed drift)
        r = await other.post("/api/login/second-factor", json={"challenge": challenge, "code": nxt})
        assert r.status_code == 200, r.text
        assert (await other.get("/api/me")).json()["address"] == ALICE
    async with client(gw) as third:
        challenge = (await third.post("/api/login", json={"address": ALICE, "password": PW})).json()["challenge"]
        r = await third.post("/api/login/second-factor", json={"challenge": challenge, "code": nxt})
        assert r.status_code == 401  # that code was used
        r = await third.post("/api/login/second-factor", json={"challenge": challenge, "code": codes[0].upper()})
        assert r.status_code == 200, r.text
    async with client(gw) as fourth:
        challenge = (await fourth.post("/api/login", json={"address": ALICE, "password": PW})).json()["challenge"]
        r = await fourth.post("/api/login/second-factor", json={"challenge": challenge, "code": codes[0]})
        assert r.status_code == 401  # a recovery code is single-use
    assert (await c.get("/api/settings")).json()["recovery_codes_left"] == 9
    actions = [e["action"] for e in (await c.get("/api/settings/audit")).json()["entries"]]
    assert "2fa.totp.enabled" in actions and "login.second_factor_failed" in actions and actions.count("login") >= 3
    await c.aclose()


async def test_second_factor_attempts_are_limited(gw, ctx):
    c, csrf = await signed_in(gw)
    await enrol_totp(c, csrf)
    async with client(gw) as other:
        challenge = (await other.post("/api/login", json={"address": ALICE, "password": PW})).json()["challenge"]
        statuses = []
        for _ in range(6):
            r = await other.post("/api/login/second-factor", json={"challenge": challenge, "code": "12345x"})
            statuses.append((r.status_code, r.json()["error"]))
        assert statuses[:5] == [(401, "bad-code")] * 5
        assert statuses[5] == (401, "challenge")  # five attempts per challenge, then start again
        # the failures count with the password failures: past the limit even a new login is refused
        for _ in range(6):
            challenge = (
                (await other.post("/api/login", json={"address": ALICE, "password": PW})).json().get("challenge")
            )
            if challenge is None:
                break
            await other.post("/api/login/second-factor", json={"challenge": challenge, "code": "999999"})
        r = await other.post("/api/login", json={"address": ALICE, "password": PW})
        assert r.status_code == 429
    await c.aclose()


async def test_with_a_second_factor_mail_clients_need_app_passwords(gw, ctx):
    c, csrf = await signed_in(gw)
    await enrol_totp(c, csrf)
    res = await ctx.accounts.authenticate(ALICE, PW, scope="imap")
    assert not res.ok and res.outcome == "app-password-required"
    r = await c.post(
        "/api/settings/app-passwords",
        json={"label": "Thunderbird", "scopes": ["imap", "smtp", "jmap"]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert (await ctx.accounts.authenticate(ALICE, secret, scope="jmap")).ok
    assert not (await ctx.accounts.authenticate(ALICE, secret, scope="dav")).ok  # not in its scopes
    listed = (await c.get("/api/settings/app-passwords")).json()["app_passwords"]
    assert [a["label"] for a in listed] == ["Thunderbird"] and "secret" not in listed[0]
    assert listed[0]["last_used_at"] is not None
    # an app password cannot manage the account
    r = await client(gw).get("/api/settings", auth=(ALICE, secret))
    assert r.status_code == 401
    r = await c.delete(f"/api/settings/app-passwords/{listed[0]['id']}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert not (await ctx.accounts.authenticate(ALICE, secret, scope="imap")).ok
    # turning TOTP off needs the password
    r = await c.post("/api/settings/totp/disable", json={"password": "nope nope"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    r = await c.post("/api/settings/totp/disable", json={"password": PW}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200
    assert (await ctx.accounts.authenticate(ALICE, PW, scope="imap")).ok
    await c.aclose()


async def test_change_password_needs_the_current_one_and_ends_sessions(gw, ctx):
    c, csrf = await signed_in(gw)
    other, _ = await signed_in(gw)
    r = await c.post(
        "/api/settings/password",
        json={"current": "wrong one", "new": "a new long passphrase"},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 403 and r.json()["error"] == "wrong-password"
    r = await c.post("/api/settings/password", json={"current": PW, "new": "a new long passphrase"})
    assert r.status_code == 403 and r.json()["error"] == "csrf"
    r = await c.post(
        "/api/settings/password", json={"current": PW, "new": "a new long passphrase"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200
    assert (await other.get("/api/me")).status_code == 401
    assert (await ctx.accounts.authenticate(ALICE, "a new long passphrase", scope="web")).ok
    await c.aclose()
    await other.aclose()


async def test_sessions_list_and_end_web_sessions_and_imap_connections(gw, ctx):
    ctx.settings.imap_port = ctx.settings.imaps_port = 0
    ctx.settings.allow_plaintext_loopback = True
    imap = ImapService(ctx, auth_delay=0.01)
    await imap.start()
    try:
        c, csrf = await signed_in(gw)
        other, _ = await signed_in(gw)
        bob, _ = await signed_in(gw, "bob@example.test")
        m = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", imap.port)
        await asyncio.to_thread(m.login, ALICE, PW)

        async def listed():
            r = (await c.get("/api/settings/sessions")).json()
            return r if r["connections"] else None

        r = await async_wait_until(listed, what="the IMAP connection listed")
        assert len(r["web"]) == 2 and sum(w["current"] for w in r["web"]) == 1
        (conn,) = r["connections"]
        assert conn["kind"] == "imap" and conn["ip"] == "127.0.0.1" and conn["credential"] == "password"
        # bob sees none of it and cannot end it
        assert (await bob.get("/api/settings/sessions")).json()["connections"] == []
        assert (
            await bob.delete(f"/api/settings/connections/{conn['id']}", headers={"X-CSRF-Token": _})
        ).status_code in (
            403,
            404,
        )
        r = await c.delete(f"/api/settings/connections/{conn['id']}", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200
        m.sock.settimeout(5)
        assert m.readline().startswith(b"* BYE")
        # end the other web session
        (w,) = [w for w in (await c.get("/api/settings/sessions")).json()["web"] if not w["current"]]
        assert (await c.delete(f"/api/settings/sessions/{w['id']}", headers={"X-CSRF-Token": csrf})).status_code == 200
        assert (await other.get("/api/me")).status_code == 401
        assert (await c.delete("/api/settings/sessions/" + "0" * 24, headers={"X-CSRF-Token": csrf})).status_code == 404
        # sign out everywhere: this session too
        assert (await c.post("/api/settings/sign-out-everywhere", headers={"X-CSRF-Token": csrf})).status_code == 200
        assert (await c.get("/api/me")).status_code == 401
        for x in (c, other, bob):
            await x.aclose()
    finally:
        await imap.stop()
