"""IDLE re-reads its mailbox every ``imap_idle_check_interval`` seconds (Dovecot's
``mailbox_idle_check_interval``): a change whose bus event never reached the server is reported
anyway. Here the delivery is made through a store whose bus nobody in the server hears."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import MSG, Client, observer

from suite.mail.imap.server import ImapService
from suite.mail.store import MailStore
from suite.storage.bus import MemoryBus


@asynccontextmanager
async def idling(ctx, alice, check_interval: float) -> AsyncIterator[Client]:
    """A session idling on INBOX, and a delivery into it whose event reaches no one."""
    ctx.settings.imap_port = ctx.settings.imaps_port = 0
    ctx.settings.allow_plaintext_loopback = True
    ctx.settings.imap_idle_check_interval = check_interval
    svc = ImapService(ctx, auth_delay=0.01)
    await svc.start()
    try:
        c = await observer(svc.port)
        await MailStore(dataclasses.replace(ctx, bus=MemoryBus())).deliver(alice.id, "INBOX", MSG)
        yield c
        await c.close()
    finally:
        await svc.stop()


async def test_idle_check_interval_reports_a_change_whose_event_never_came(ctx, accounts):
    async with idling(ctx, accounts[0], check_interval=0.5) as c:
        assert (await c.response_line(timeout=15)).strip() == b"* 1 EXISTS"


async def test_without_the_check_the_unheard_change_waits(ctx, accounts):
    """The control: with the check far away the session is never told of the same delivery while it
    idles (so the test above proves the check, not some event); CHECK re-reads and finds it."""
    async with idling(ctx, accounts[0], check_interval=3600) as c:
        await c.send(b"DONE\r\n")
        lines = await c.until_tagged(b"oi")
        assert len(lines) == 1 and lines[0].startswith(b"oi OK"), lines
        lines = await c.cmd("oc CHECK")
        assert lines[0] == b"* 1 EXISTS\r\n" and lines[-1].startswith(b"oc OK"), lines
