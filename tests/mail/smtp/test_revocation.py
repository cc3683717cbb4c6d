"""Revocation is immediate for SMTP submission (issue 16 item 2): a session signed in with a revoked
app password, or with a password that was changed, is closed with ``421 4.7.0`` within 2 s
(RFC 5321 §3.8); other sessions keep going."""

# ruff: noqa: F811  (pytest fixtures imported from smtp_service_helpers are used as parameters)

from __future__ import annotations

import asyncio
import smtplib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from smtp_service_helpers import (  # noqa: F401
    ALICE,
    PASSWORD,
    client_context,
    remote_port,
    settings,
    suite_smtp,
    tls_files,
)

from suite.testing import async_wait_until

DEADLINE = 2.0


def _signed_in(port: int, ca, user: str, password: str) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", port, timeout=20)
    s.starttls(context=client_context(ca))
    s.login(user, password)
    return s


def _closed_with_421(s: smtplib.SMTP, seconds: float = DEADLINE) -> bytes:
    """Read what the server sends unprompted: a 421 line, then the end of the stream."""
    deadline = time.monotonic() + seconds
    got = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no 421 and close within {seconds} s (got {got!r})")
        s.sock.settimeout(left)
        try:
            chunk = s.sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"no 421 and close within {seconds} s (got {got!r})") from None
        if not chunk:
            assert got.startswith(b"421 4.7.0"), got
            s.close()  # as a client does after a 421 (the server's TLS shutdown waits for it)
            return got
        got += chunk


async def test_revoked_app_password_closes_its_submission_session(suite_smtp, ca):
    ctx = suite_smtp.ctx
    info, secret = await ctx.accounts.add_app_password(ALICE, "phone", ["smtp"])
    port = suite_smtp.port("submission")
    s_app = await asyncio.to_thread(_signed_in, port, ca, ALICE, secret)
    s_pw = await asyncio.to_thread(_signed_in, port, ca, ALICE, PASSWORD)
    await ctx.accounts.revoke_app_password(ALICE, info.id)
    line = await asyncio.to_thread(_closed_with_421, s_app)
    assert b"Signed out" in line
    assert (await asyncio.to_thread(s_pw.noop))[0] == 250  # the password session goes on
    await asyncio.to_thread(s_pw.quit)


async def test_password_change_closes_password_sessions(suite_smtp, ca):
    ctx = suite_smtp.ctx
    port = suite_smtp.port("submission")
    s_pw = await asyncio.to_thread(_signed_in, port, ca, ALICE, PASSWORD)
    await ctx.accounts.set_password(ALICE, "an entirely new passphrase")
    await asyncio.to_thread(_closed_with_421, s_pw)
    await async_wait_until(lambda: len(suite_smtp.service.live) == 0, what="the session unregistered")
