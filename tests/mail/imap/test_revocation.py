"""Revocation is immediate (issue 16 item 2): a live IMAP session signed in with credentials that
are revoked gets ``* BYE`` and is closed within 2 s — in this process, and in another
``suite serve --only imap`` process that hears the revocation over the bus (Redis or PostgreSQL
NOTIFY). The deadline is the test: each wait reads until BYE or fails when 2 s have passed."""

from __future__ import annotations

import asyncio
import imaplib
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import PASSWORD, Cluster, reset_postgres

from suite.config import Settings
from suite.context import open_context
from suite.testing import async_wait_until

HOST = "127.0.0.1"
DEADLINE = 2.0


def _idle(port: int, user: str, password: str) -> imaplib.IMAP4:
    """imaplib signed in, INBOX selected, in IDLE (RFC 2177) waiting for the continuation."""
    m = imaplib.IMAP4(HOST, port)
    m.login(user, password)
    m.select("INBOX")
    m.send(b"i1 IDLE\r\n")
    line = m.readline()
    assert line.startswith(b"+"), line
    return m


def _bye_within(m: imaplib.IMAP4, seconds: float = DEADLINE) -> bytes:
    """Read until ``* BYE`` then end of stream; AssertionError when the deadline passes first."""
    deadline = time.monotonic() + seconds
    bye = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no BYE and close within {seconds} s (got {bye!r})")
        m.sock.settimeout(left)
        try:
            line = m.readline()
        except TimeoutError:
            raise AssertionError(f"no BYE and close within {seconds} s (got {bye!r})") from None
        if not line:
            assert bye, "closed without BYE"
            return bye
        if line.startswith(b"* BYE"):
            bye = line


def _still_open(m: imaplib.IMAP4) -> None:
    """The session still answers: end IDLE and NOOP."""
    m.sock.settimeout(5)
    m.send(b"DONE\r\n")
    while not (line := m.readline()).startswith(b"i1 "):
        assert line, "closed"
    assert line.startswith(b"i1 OK"), line
    assert m.noop()[0] == "OK"
    m.logout()


async def test_revoked_app_password_ends_its_idle_session_only(server, ctx, accounts):
    _, phone = await ctx.accounts.add_app_password("alice@example.test", "phone", ["imap"])
    _, laptop = await ctx.accounts.add_app_password("alice@example.test", "laptop", ["imap"])
    apps = {a.label: a.id for a in await ctx.accounts.list_app_passwords("alice@example.test")}
    m_phone = await asyncio.to_thread(_idle, server.port, "alice@example.test", phone)
    m_laptop = await asyncio.to_thread(_idle, server.port, "alice@example.test", laptop)
    m_pw = await asyncio.to_thread(_idle, server.port, "alice@example.test", PASSWORD)
    await ctx.accounts.revoke_app_password("alice@example.test", apps["phone"])
    bye = await asyncio.to_thread(_bye_within, m_phone)
    assert b"Signed out" in bye
    # the other app password and the account password keep their sessions
    await asyncio.to_thread(_still_open, m_laptop)
    await asyncio.to_thread(_still_open, m_pw)
    # and the revoked secret no longer signs in
    with pytest.raises(imaplib.IMAP4.error):
        await asyncio.to_thread(lambda: imaplib.IMAP4(HOST, server.port).login("alice@example.test", phone))


async def test_password_change_ends_password_sessions_not_app_passwords(server, ctx, accounts):
    _, phone = await ctx.accounts.add_app_password("alice@example.test", "phone", ["imap"])
    m_pw = await asyncio.to_thread(_idle, server.port, "alice@example.test", PASSWORD)
    m_app = await asyncio.to_thread(_idle, server.port, "alice@example.test", phone)
    m_bob = await asyncio.to_thread(_idle, server.port, "bob@example.test", PASSWORD)
    await ctx.accounts.set_password("alice@example.test", "a brand new passphrase")
    await asyncio.to_thread(_bye_within, m_pw)
    await asyncio.to_thread(_still_open, m_app)
    await asyncio.to_thread(_still_open, m_bob)  # another account is not touched


async def test_disabling_the_account_ends_every_session(server, ctx, accounts):
    _, phone = await ctx.accounts.add_app_password("alice@example.test", "phone", ["imap"])
    sessions = [
        await asyncio.to_thread(_idle, server.port, "alice@example.test", PASSWORD),
        await asyncio.to_thread(_idle, server.port, "alice@example.test", phone),
    ]
    await ctx.accounts.set_disabled("alice@example.test", True)
    for m in sessions:
        await asyncio.to_thread(_bye_within, m)
    await async_wait_until(lambda: len(server.live) == 0, what="the sessions unregistered")


async def test_revocation_between_the_password_check_and_the_registration_is_not_missed(
    server, ctx, accounts, monkeypatch
):
    """The race of issue 16: the app password is revoked after the login's check passed and before
    the connection registered. The interleaving is forced: the check returns only once the
    revocation was heard by this process's registry (which then had no connection to end)."""
    app, secret = await ctx.accounts.add_app_password("alice@example.test", "phone", ["imap"])
    real = ctx.accounts.authenticate

    async def check_then_revoke(user, password, **kw):
        res = await real(user, password, **kw)
        if password == secret:
            heard = server.live.mark()
            await ctx.accounts.revoke_app_password("alice@example.test", app.id)
            await async_wait_until(lambda: server.live.mark() > heard, what="the registry heard it")
            assert len(server.live) == 0  # nothing to end yet: the login is still under way
        return res

    monkeypatch.setattr(ctx.accounts, "authenticate", check_then_revoke)

    def login_then_wait_for_bye() -> bytes:
        m = imaplib.IMAP4(HOST, server.port)
        assert m.login("alice@example.test", secret)[0] == "OK"  # the check had passed
        return _bye_within(m)

    assert b"Signed out" in await asyncio.to_thread(login_then_wait_for_bye)
    await async_wait_until(lambda: len(server.live) == 0, what="the session unregistered")


# --------------------------------------------------------------------------- another process
@pytest.mark.parametrize("bus", ["redis", "postgres"])
def test_revocation_reaches_imap_in_another_process(tmp_path, pg_url, bus):
    """The IMAP session lives in ``suite serve --only imap``; the revocation is made here."""
    reset_postgres(pg_url)
    cluster = Cluster.make(tmp_path, database_url=pg_url, bus_backend=bus)
    cluster.bootstrap(password=PASSWORD)
    secret = cluster.app_password("alice@example.test", "imap")
    settings = Settings(data_dir=tmp_path / "here", database_url=pg_url, bus_backend=bus)
    try:
        port = cluster.serve("imap", "imap").ports["imap_port"]
        m = _idle(port, "alice@example.test", secret)

        async def revoke() -> None:
            ctx = await open_context(settings)
            try:
                (app,) = await ctx.accounts.list_app_passwords("alice@example.test")
                await ctx.accounts.revoke_app_password("alice@example.test", app.id)
            finally:
                await ctx.close()

        asyncio.run(revoke())
        assert b"Signed out" in _bye_within(m)
    finally:
        assert cluster.stop_all() == []


def _waiting(port: int, user: str, password: str) -> imaplib.IMAP4:
    """imaplib signed in, INBOX selected, waiting for its next command (not in IDLE)."""
    m = imaplib.IMAP4(HOST, port)
    m.login(user, password)
    m.select("INBOX")
    return m


async def test_revocation_ends_a_session_waiting_for_its_next_command(server, ctx, accounts):
    m = await asyncio.to_thread(_waiting, server.port, "alice@example.test", PASSWORD)
    other = await asyncio.to_thread(_waiting, server.port, "bob@example.test", PASSWORD)
    await ctx.accounts.set_password("alice@example.test", "a brand new passphrase")
    assert b"Signed out" in await asyncio.to_thread(_bye_within, m)
    assert (await asyncio.to_thread(other.noop))[0] == "OK"  # the wait of another session goes on
    await asyncio.to_thread(other.logout)
