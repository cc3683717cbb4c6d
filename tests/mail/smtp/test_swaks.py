"""Submission with swaks (an independent SMTP client): STARTTLS, AUTH PLAIN/LOGIN, spoof refusal."""

from __future__ import annotations

import asyncio

import pytest


async def _swaks(swaks: str, port: int, ca_pem, *extra: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        swaks,
        "--server", "127.0.0.1", "--port", str(port),
        "--tls", "--tls-verify", "--tls-ca-path", str(ca_pem),
        "--auth-user", "alice", "--auth-password", "s3cret-pw",
        "--helo", "swaks.test", "--timeout", "20",
        *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode("utf-8", "replace")


@pytest.mark.slow
@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN"])
async def test_swaks_submission(smtp_server, tool, ca_pem, mech: str) -> None:
    swaks = tool("swaks")
    async with smtp_server(submission=True) as h:
        rc, out = await _swaks(
            swaks, h.port, ca_pem, "--auth", mech,
            "--from", "alice@example.test", "--to", "x@remote.test,bob@example.test",
            "--header", "Subject: via swaks", "--body", "hello from swaks",
        )  # fmt: skip
        assert rc == 0, out
        assert "<~  235 2.7.0" in out and "<~  250 2.0.0 Message accepted" in out
    [d] = h.deliverer.delivered
    assert d.envelope.account_id == "acct-alice" and d.envelope.tls
    assert {r.address for r in d.envelope.recipients} == {
        "x@remote.test",
        "bob@example.test",
    }
    assert d.content is not None and b"hello from swaks" in d.content and b"Subject: via swaks" in d.content


@pytest.mark.slow
async def test_swaks_spoofed_sender(smtp_server, tool, ca_pem) -> None:
    swaks = tool("swaks")
    async with smtp_server(submission=True) as h:
        rc, out = await _swaks(
            swaks,
            h.port,
            ca_pem,
            "--auth",
            "PLAIN",
            "--from",
            "ceo@example.test",
            "--to",
            "x@remote.test",
        )
        assert rc != 0
        assert "<~* 553 5.7.1" in out, out
    assert h.deliverer.delivered == []
