"""``imap_flag_durability``: "fsync" (the default) and "batched" keep the same IMAP behaviour — a flag
change is committed before the tagged OK, seen by every other session and by a fresh read of the
store; only the moment of the fsync differs (tests/storage/test_rawdb.py counts the fsyncs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from imap_helpers import Client

from suite.mail.imap.server import ImapService

MSG = b"From: a@example.test\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.mark.parametrize("mode", ["fsync", "batched"])
async def test_flag_change_is_committed_and_seen_by_other_sessions(ctx, accounts, store, mode):
    alice, _ = accounts
    await store.deliver(alice.id, "INBOX", MSG)
    await store.deliver(alice.id, "INBOX", MSG)
    ctx.settings.imap_port = ctx.settings.imaps_port = 0
    ctx.settings.allow_plaintext_loopback = True
    ctx.settings.imap_flag_durability = mode
    svc = ImapService(ctx, auth_delay=0.01)
    await svc.start()
    a, b = await Client.connect(svc.port), await Client.connect(svc.port)
    try:
        for c in (a, b):
            await c.login()
            await c.cmd("s SELECT INBOX")
        assert (await a.cmd("t STORE 1 +FLAGS (\\Flagged)"))[-1].startswith(b"t OK")
        assert (await a.cmd("f FETCH 2 BODY[TEXT]"))[-1].startswith(b"f OK")  # sets \Seen (RFC 9051 §6.4.5)
        lines = await b.cmd("g FETCH 1:2 FLAGS")
        assert any(ln.startswith(b"* 1 FETCH") and b"FLAGS (\\Flagged)" in ln for ln in lines), lines
        assert any(ln.startswith(b"* 2 FETCH") and b"FLAGS (\\Seen)" in ln for ln in lines), lines
        mb = await store.get_mailbox(alice.id, "INBOX")
        assert mb is not None
        flags = {m.uid: tuple(m.flags) for m in await store.messages(mb.id)}
        assert flags == {1: ("\\Flagged",), 2: ("\\Seen",)}
    finally:
        for c in (a, b):
            await c.close()
        await svc.stop()
