"""`suite serve --only smtp` as a subprocess: SIGKILL right after the 250 loses nothing."""

# ruff: noqa: F811  (pytest fixtures imported from smtp_service_helpers are used as parameters)

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from smtp_service_helpers import BOB, parse, provision, remote_port, settings, tls_files  # noqa: F401

from suite.testing import free_port

MESSAGE = b"From: eve@sender.test\r\nTo: bob@example.test\r\nSubject: before the kill\r\n\r\nstill here?\r\n"


async def test_sigkill_after_250_keeps_the_message(ctx, settings, dns_stub):
    await provision(ctx)
    ports = {name: free_port() for name in ("smtp", "submission", "submissions")}
    env = {
        **os.environ,
        "SUITE_DATA_DIR": str(settings.data_dir),
        "SUITE_DATABASE_URL": settings.db_url,
        "SUITE_HOSTNAME": settings.hostname,
        "SUITE_TLS_CERT": str(settings.tls_cert),
        "SUITE_TLS_KEY": str(settings.tls_key),
        "SUITE_DNS_NAMESERVERS": '["127.0.0.1"]',
        "SUITE_DNS_PORT": str(dns_stub.port),
        "SUITE_BUS_BACKEND": "memory",
        "SUITE_SMTP_PORT": str(ports["smtp"]),
        "SUITE_SUBMISSION_PORT": str(ports["submission"]),
        "SUITE_SUBMISSIONS_PORT": str(ports["submissions"]),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "suite.cli",
        "serve",
        "--only",
        "smtp",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out = b""
        while b"ready" not in out:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"suite serve exited: {out.decode(errors='replace')}"
            out += line

        def send_then_kill() -> None:
            s = smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=20)
            s.sendmail("eve@sender.test", [BOB], MESSAGE)  # returns on the 250
            os.kill(proc.pid, signal.SIGKILL)
            s.close()

        await asyncio.to_thread(send_then_kill)
        assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    from suite.mail.store.store import MailStore

    bob = await ctx.accounts.require(BOB)
    store = MailStore(ctx)
    inbox = await store.require_mailbox(bob.id, "INBOX")
    [msg] = await store.messages(inbox.id)
    raw = await store.raw(msg.blob)
    assert raw.endswith(MESSAGE)
    assert parse(raw)["Subject"] == "before the kill"
