"""The delivery log (issue 16 item 4): the SMTP service writes one row per recipient of each
transaction — in at the end of DATA (accepted), out per queue attempt (deferred, then sent) —
and admins read it at /api/admin/delivery-log."""

# ruff: noqa: F811  (pytest fixtures imported from smtp_service_helpers are used as parameters)

from __future__ import annotations

import asyncio
import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from smtp_service_helpers import (  # noqa: F401
    ALICE,
    BOB,
    PASSWORD,
    REMOTE_DOMAIN,
    RemoteHandler,
    client_context,
    remote_mx,
    remote_port,
    settings,
    suite_smtp,
    tls_files,
)

from suite.gateway.service import GatewayService
from suite.mail.smtp import translog
from suite.testing import async_wait_until


def _send(port: int, ca, to: list[str]) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = ALICE, ", ".join(to), "log me"
    m.set_content("hello\n")
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    try:
        s.starttls(context=client_context(ca))
        s.login(ALICE, PASSWORD)
        s.send_message(m)
    finally:
        s.quit()


async def test_delivery_log_in_and_out(suite_smtp, ca, dns_stub, remote_port):
    ctx = suite_smtp.ctx
    handler = RemoteHandler(script=["451 4.3.0 try again", "250 2.0.0 OK"])
    carol = f"carol@{REMOTE_DOMAIN}"
    with remote_mx(remote_port, handler, dns_stub):
        await asyncio.to_thread(_send, suite_smtp.port("submission"), ca, [BOB, carol])

        async def sent():
            rows = await translog.recent(ctx.sessions, direction="out")
            return rows if any(r.status == "sent" for r in rows) else None

        out = await async_wait_until(sent, 20, what="the remote delivery logged")
    assert [(r.status, r.recipient) for r in reversed(out)] == [("deferred", carol), ("sent", carol)]
    assert "try again" in out[-1].reply and out[0].account_id == suite_smtp.alice_id
    inbound = await translog.recent(ctx.sessions, direction="in")
    assert {(r.status, r.recipient, r.mail_from) for r in inbound} == {
        ("accepted", BOB, ALICE),
        ("accepted", carol, ALICE),
    }
    assert all(r.reply.startswith("250") and r.remote == "127.0.0.1" for r in inbound)

    await ctx.accounts.set_admin(ALICE, True)
    ctx.settings.http_port = 0
    gw = GatewayService(ctx)
    await gw.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", timeout=20) as c:
            assert (await c.post("/api/login", json={"address": ALICE, "password": PASSWORD})).status_code == 200
            entries = (await c.get("/api/admin/delivery-log")).json()["entries"]
            assert len(entries) == 4 and {e["direction"] for e in entries} == {"in", "out"}
            assert (await c.get("/api/admin/delivery-log?direction=sideways")).status_code == 400
    finally:
        await gw.stop()
