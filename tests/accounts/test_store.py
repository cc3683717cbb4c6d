"""Account store flows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from suite.accounts.store import AccountError, Exists, NotFound, normalize_address

PW = "correct horse battery"


async def _alice(ctx, **kw):
    await ctx.accounts.add_domain("example.test")
    return await ctx.accounts.add_account("Alice@Example.TEST", PW, display_name="Alice", **kw)


async def test_domain_and_account_lifecycle(ctx):
    a = await _alice(ctx, quota_bytes=1000)
    assert a.address == "alice@example.test" and a.quota_bytes == 1000 and not a.is_admin
    assert [d.name for d in await ctx.accounts.list_domains()] == ["example.test"]
    assert (await ctx.accounts.list_domains())[0].accounts == 1
    with pytest.raises(Exists):
        await ctx.accounts.add_account("alice@example.test", PW)
    with pytest.raises(Exists):
        await ctx.accounts.add_domain("EXAMPLE.test.")
    with pytest.raises(NotFound):
        await ctx.accounts.add_account("bob@unknown.test", PW)
    with pytest.raises(AccountError, match="still has 1 account"):
        await ctx.accounts.remove_domain("example.test")
    await ctx.accounts.remove_account("alice@example.test")
    assert await ctx.accounts.get("alice@example.test") is None
    await ctx.accounts.remove_domain("example.test")
    assert await ctx.accounts.list_domains() == []


@pytest.mark.parametrize("bad", ["", "short", "aaaaaaaaaaaa", "password1", "alice-secret-1"])
async def test_weak_passwords_refused(ctx, bad):
    await ctx.accounts.add_domain("example.test")
    with pytest.raises(AccountError):
        await ctx.accounts.add_account("alice@example.test", bad)


@pytest.mark.parametrize(
    "addr", ["no-at-sign", "@example.test", "a b@example.test", "x@-bad-.test", "a..b@example.test"]
)
def test_bad_addresses(addr):
    with pytest.raises(AccountError):
        normalize_address(addr)


async def test_password_login_and_rehash_free_path(ctx):
    await _alice(ctx)
    ok = await ctx.accounts.authenticate("ALICE@example.test", PW, scope="web", ip="127.0.0.1")
    assert ok.ok and ok.account.address == "alice@example.test" and not ok.via_app_password
    bad = await ctx.accounts.authenticate("alice@example.test", PW + "x", scope="web", ip="127.0.0.1")
    assert not bad.ok and bad.outcome == "bad-credentials"
    nobody = await ctx.accounts.authenticate("nobody@example.test", PW, scope="imap", ip="127.0.0.1")
    assert not nobody.ok and nobody.outcome == "bad-credentials"
    await ctx.accounts.set_password("alice@example.test", "another good phrase")
    assert not (await ctx.accounts.authenticate("alice@example.test", PW, scope="web")).ok
    assert (await ctx.accounts.authenticate("alice@example.test", "another good phrase", scope="web")).ok


async def test_app_password_use_is_written_once_a_minute(ctx, monkeypatch):
    """A DAV or tus client sends its app password with every request: "last used" is written on
    the first use and then at most once per APP_PASSWORD_USE_SECONDS, not a commit per request."""
    from suite.accounts import store

    await _alice(ctx)
    _, secret = await ctx.accounts.add_app_password("alice@example.test", "sync", ["dav"])

    async def last_used() -> float | None:
        return (await ctx.accounts.list_app_passwords("alice@example.test"))[0].last_used_at

    assert (await ctx.accounts.authenticate("alice@example.test", secret, scope="dav")).ok
    first = await last_used()
    assert first is not None
    assert (await ctx.accounts.authenticate("alice@example.test", secret, scope="dav")).ok
    assert await last_used() == first
    monkeypatch.setattr(store, "APP_PASSWORD_USE_SECONDS", 0.0)
    assert (await ctx.accounts.authenticate("alice@example.test", secret, scope="dav")).ok
    assert (await last_used() or 0) > first


async def test_disabled_account_cannot_log_in(ctx):
    await _alice(ctx)
    await ctx.accounts.set_disabled("alice@example.test", True)
    res = await ctx.accounts.authenticate("alice@example.test", PW, scope="imap")
    assert not res.ok and res.outcome == "disabled"


async def test_app_passwords(ctx):
    await _alice(ctx)
    info, secret = await ctx.accounts.add_app_password("alice@example.test", "phone", ["imap", "smtp"])
    assert info.scopes == ("imap", "smtp") and len(secret) >= 30
    # never valid for the web login, nor for a scope it lacks
    assert not (await ctx.accounts.authenticate("alice@example.test", secret, scope="web")).ok
    assert not (await ctx.accounts.authenticate("alice@example.test", secret, scope="dav")).ok
    res = await ctx.accounts.authenticate("alice@example.test", secret, scope="imap")
    assert res.ok and res.via_app_password
    listed = await ctx.accounts.list_app_passwords("alice@example.test")
    assert [a.label for a in listed] == ["phone"] and listed[0].last_used_at is not None
    # the secret itself is not stored
    from sqlalchemy import select

    from suite.accounts.models import AppPassword

    async with ctx.sessions() as s:
        stored = list(await s.scalars(select(AppPassword.secret_hash)))
    assert secret not in stored and stored[0] != secret
    await ctx.accounts.revoke_app_password("alice@example.test", info.id)
    assert not (await ctx.accounts.authenticate("alice@example.test", secret, scope="imap")).ok
    with pytest.raises(AccountError, match="unknown scope"):
        await ctx.accounts.add_app_password("alice@example.test", "x", ["ftp"])


async def test_at_most_20_app_passwords(ctx):
    await _alice(ctx)
    for i in range(20):
        await ctx.accounts.add_app_password("alice@example.test", f"d{i}", ["dav"])
    with pytest.raises(AccountError, match="20 app passwords"):
        await ctx.accounts.add_app_password("alice@example.test", "one more", ["dav"])


async def test_aliases_catch_all_and_detail(ctx):
    a = await _alice(ctx)
    await ctx.accounts.add_domain("other.test")
    await ctx.accounts.add_account("bob@other.test", PW)
    await ctx.accounts.add_alias("sales@example.test", "alice@example.test")
    with pytest.raises(Exists):
        await ctx.accounts.add_alias("alice@example.test", "bob@other.test")
    resolve = ctx.accounts.resolve_recipient
    assert (await resolve("sales@example.test")).id == a.id
    assert (await resolve("alice+news@example.test")).id == a.id
    assert await resolve("nobody@example.test") is None
    assert await resolve("alice@nowhere.test") is None
    await ctx.accounts.add_alias("*@other.test", "bob@other.test")
    assert (await resolve("anything@other.test")).address == "bob@other.test"
    assert [x.address for x in await ctx.accounts.list_aliases()] == ["*@other.test", "sales@example.test"]
    # sending: own address, aliases and +detail, never someone else's or the catch-all pattern
    assert await ctx.accounts.may_send_as(a.id, "alice@example.test")
    assert await ctx.accounts.may_send_as(a.id, "Sales@Example.test")
    assert await ctx.accounts.may_send_as(a.id, "alice+x@example.test")
    assert not await ctx.accounts.may_send_as(a.id, "bob@other.test")
    await ctx.accounts.remove_alias("sales@example.test")
    assert await resolve("sales@example.test") is None


async def test_quota_charge_is_bounded(ctx):
    a = await _alice(ctx, quota_bytes=100)
    async with ctx.sessions.begin() as s:
        assert await ctx.accounts.charge(s, a.id, 60)
        assert not await ctx.accounts.charge(s, a.id, 41)
        assert await ctx.accounts.charge(s, a.id, 40)
        assert await ctx.accounts.charge(s, a.id, -30)
    assert (await ctx.accounts.get_by_id(a.id)).used_bytes == 70


async def test_login_rate_limit_per_address_and_ip(ctx):
    ctx.accounts._settings.login_max_failures_per_address = 3
    ctx.accounts._settings.login_max_failures_per_ip = 5
    await _alice(ctx)
    await ctx.accounts.add_account("carol@example.test", PW)
    for _ in range(3):
        assert (
            await ctx.accounts.authenticate("alice@example.test", "wrong-wrong", scope="web", ip="10.9.9.9")
        ).outcome == "bad-credentials"
    # locked now, even with the right password, from any IP
    locked = await ctx.accounts.authenticate("alice@example.test", PW, scope="web", ip="127.0.0.2")
    assert locked.outcome == "locked" and locked.retry_after > 0
    # carol is fine from a fresh IP, but after two more failures from 10.9.9.9 that IP is locked
    assert (await ctx.accounts.authenticate("carol@example.test", PW, scope="web", ip="127.0.0.3")).ok
    for _ in range(2):
        await ctx.accounts.authenticate("carol@example.test", "nope-nope", scope="web", ip="10.9.9.9")
    assert (await ctx.accounts.authenticate("carol@example.test", PW, scope="web", ip="10.9.9.9")).outcome == "locked"


async def test_web_sessions(ctx):
    a = await _alice(ctx)
    token, csrf = await ctx.accounts.create_web_session(a.id)
    assert len(token) >= 40 and len(csrf) >= 40
    ws = await ctx.accounts.web_session(token)
    assert ws.account.id == a.id and ws.csrf_token == csrf
    assert await ctx.accounts.web_session(token + "x") is None
    # a password change ends sessions
    await ctx.accounts.set_password("alice@example.test", "another good phrase")
    assert await ctx.accounts.web_session(token) is None
