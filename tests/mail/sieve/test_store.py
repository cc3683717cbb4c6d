"""The Sieve store on SQLite and PostgreSQL: one active script, names, quota, the compiled-script cache
following changes, and the vacation memory per period."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import update

from suite.mail.sieve.models import SieveVacation
from suite.mail.sieve.parser import SieveError
from suite.mail.sieve.store import (
    MAX_SCRIPTS,
    BadName,
    NoSuchScript,
    QuotaError,
    ScriptActive,
    ScriptExists,
    SieveStore,
)


@pytest.fixture
async def acct(ctx):
    await ctx.accounts.add_domain("example.test")
    a = await ctx.accounts.add_account("alice@example.test", "a long enough password")
    b = await ctx.accounts.add_account("bob@example.test", "a long enough password")
    return a.id, b.id


async def test_one_active_script_per_account(ctx, acct):
    alice, bob = acct
    st = SieveStore(ctx)
    await st.put_script(alice, "a", "keep;", activate=True)
    await st.put_script(alice, "b", "discard;", activate=True)
    await st.put_script(bob, "a", "stop;")
    assert [(s.name, s.active) for s in await st.list_scripts(alice)] == [("a", False), ("b", True)]
    assert [(s.name, s.active) for s in await st.list_scripts(bob)] == [("a", False)]  # isolated
    await st.set_active(alice, "a")
    assert await st.active_name(alice) == "a"
    await st.set_active(alice, "")
    assert await st.active_name(alice) is None and await st.active_script(alice) is None
    with pytest.raises(NoSuchScript):
        await st.set_active(alice, "zzz")
    await st.set_active(alice, "a")
    with pytest.raises(ScriptActive):
        await st.delete_script(alice, "a")
    await st.rename_script(alice, "a", "main")
    assert await st.active_name(alice) == "main"
    with pytest.raises(ScriptExists):
        await st.rename_script(alice, "main", "b")
    with pytest.raises(BadName):
        await st.put_script(alice, "bad\nname", "keep;")
    with pytest.raises(SieveError):
        await st.put_script(alice, "c", "frob;")
    assert await st.get_script(alice, "b") == "discard;"
    with pytest.raises(NoSuchScript):
        await st.get_script(bob, "b")


async def test_quota_on_scripts(ctx, acct):
    alice, _ = acct
    st = SieveStore(ctx)
    with pytest.raises(QuotaError) as err:
        await st.have_space(alice, "x", 70_000)
    assert err.value.code == "QUOTA/MAXSIZE"
    for i in range(MAX_SCRIPTS):
        await st.put_script(alice, f"s{i}", "keep;")
    with pytest.raises(QuotaError):
        await st.put_script(alice, "one-more", "keep;")
    await st.put_script(alice, "s0", "stop;")  # replacing one still fits


async def test_compiled_cache_follows_changes_made_elsewhere(ctx, acct):
    alice, _ = acct
    deliverer_side, manager_side = SieveStore(ctx), SieveStore(ctx)  # e.g. two processes
    await manager_side.put_script(alice, "main", "keep;", activate=True)
    first = await deliverer_side.active_script(alice)
    assert first is not None and first.commands[0].name == "keep"
    assert await deliverer_side.active_script(alice) is first  # cached: compiled once
    await manager_side.put_script(alice, "main", "discard;")
    second = await deliverer_side.active_script(alice)
    assert second is not None and second.commands[0].name == "discard"
    await manager_side.set_active(alice, "")
    assert await deliverer_side.active_script(alice) is None


async def test_vacation_once_per_period(ctx, acct):
    alice, bob = acct
    st = SieveStore(ctx)
    assert await st.vacation_due(alice, "k1", 7) is True
    assert await st.vacation_due(alice, "k1", 7) is False
    assert await st.vacation_due(alice, "k2", 7) is True  # another sender/handle
    assert await st.vacation_due(bob, "k1", 7) is True  # another account
    # eight days later
    async with ctx.sessions.begin() as s:
        await s.execute(update(SieveVacation).values(sent_at=SieveVacation.sent_at - 8 * 86400))
    assert await st.vacation_due(alice, "k1", 7) is True
    assert await st.vacation_due(alice, "k1", 7) is False
    # two deliveries at once: one reply
    results = await asyncio.gather(*(st.vacation_due(alice, "k3", 7) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
