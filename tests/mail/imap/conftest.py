"""Fixtures for the IMAP server tests: a real ImapService on ephemeral ports and two accounts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import PASSWORD, Client

from suite.mail.imap.server import ImapService
from suite.mail.store import MailStore


@pytest.fixture
async def accounts(ctx):
    await ctx.accounts.add_domain("example.test")
    alice = await ctx.accounts.add_account("alice@example.test", PASSWORD, quota_bytes=50_000_000)
    bob = await ctx.accounts.add_account("bob@example.test", PASSWORD, quota_bytes=50_000_000)
    return alice, bob


@pytest.fixture
def store(ctx):
    return MailStore(ctx)


@pytest.fixture
async def server(ctx, accounts):
    ctx.settings.imap_port = 0
    ctx.settings.imaps_port = 0
    ctx.settings.allow_plaintext_loopback = True
    svc = ImapService(ctx, auth_delay=0.01)
    await svc.start()
    yield svc
    await svc.stop()


@pytest.fixture
async def client(server):
    c = await Client.connect(server.port)
    yield c
    await c.close()


@pytest.fixture
async def alice_client(server):
    c = await Client.connect(server.port)
    await c.login()
    yield c
    await c.close()
