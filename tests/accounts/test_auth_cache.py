"""The login cache (AccountStore.authenticate): it spares argon2 for a password verified a moment
ago, and changes nothing else — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from suite.accounts import passwords

PW = "correct horse battery"
PW2 = "another horse battery"


@pytest.fixture
def argon2_calls(monkeypatch):
    """Count real argon2 verifications (the real function runs)."""
    calls = []
    real = passwords.verify_password

    async def counting(stored, password):
        calls.append(password)
        return await real(stored, password)

    monkeypatch.setattr(passwords, "verify_password", counting)
    return calls  # each test's ctx has its own AccountStore, hence an empty login cache


async def _alice(ctx):
    await ctx.accounts.add_domain("example.test")
    return await ctx.accounts.add_account("alice@example.test", PW)


async def test_second_login_skips_argon2(ctx, argon2_calls):
    a = await _alice(ctx)
    first = await ctx.accounts.authenticate("alice@example.test", PW, scope="imap", ip="127.0.0.1")
    second = await ctx.accounts.authenticate("Alice@Example.TEST", PW, scope="imap", ip="127.0.0.1")
    assert first.ok and second.ok and second.account.id == a.id
    assert argon2_calls == [PW]  # the second login was answered from the cache
    # a wrong password is never answered from the cache, and is never cached
    for _ in range(2):
        bad = await ctx.accounts.authenticate("alice@example.test", "wrong password!", scope="imap")
        assert not bad.ok and bad.outcome == "bad-credentials"
    assert argon2_calls == [PW, "wrong password!", "wrong password!"]


async def test_password_change_and_disable_beat_the_cache(ctx, argon2_calls):
    await _alice(ctx)
    assert (await ctx.accounts.authenticate("alice@example.test", PW, scope="imap")).ok
    await ctx.accounts.set_password("alice@example.test", PW2)
    old = await ctx.accounts.authenticate("alice@example.test", PW, scope="imap")
    assert not old.ok and old.outcome == "bad-credentials"
    assert (await ctx.accounts.authenticate("alice@example.test", PW2, scope="imap")).ok
    await ctx.accounts.set_disabled("alice@example.test", True)
    res = await ctx.accounts.authenticate("alice@example.test", PW2, scope="imap")
    assert not res.ok and res.outcome == "disabled"


async def test_rate_limit_applies_to_a_cached_password(ctx, argon2_calls):
    await _alice(ctx)
    assert (await ctx.accounts.authenticate("alice@example.test", PW, scope="imap", ip="127.0.0.9")).ok
    for _ in range(ctx.settings.login_max_failures_per_address):
        await ctx.accounts.authenticate("alice@example.test", "wrong password!", scope="imap", ip="127.0.0.9")
    res = await ctx.accounts.authenticate("alice@example.test", PW, scope="imap", ip="127.0.0.9")
    assert not res.ok and res.outcome == "locked"


async def test_app_password_scope_is_checked_every_time(ctx, argon2_calls):
    await _alice(ctx)
    _, secret = await ctx.accounts.add_app_password("alice@example.test", "phone", ["smtp"])
    assert (await ctx.accounts.authenticate("alice@example.test", secret, scope="smtp")).ok
    for _ in range(2):
        res = await ctx.accounts.authenticate("alice@example.test", secret, scope="imap")
        assert not res.ok and res.outcome == "bad-credentials"


def test_cache_keys_hold_no_password():
    key = passwords.cache_key("alice@example.test", PW)
    assert PW.encode() not in key and len(key) == 32
    assert key == passwords.cache_key("alice@example.test", PW)
    assert key != passwords.cache_key("alice@example.test", PW2)
    assert key != passwords.cache_key("bob@example.test", PW)
