"""No open relay on the MX: remote domains, address literals, percent hack, source routes → 550 5.7.1."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "rcpt",
    [
        "<victim@remote.test>",
        "<alice@[127.0.0.1]>",
        "<alice@[IPv6:::1]>",
        "<victim%remote.test@example.test>",
        "<remote.test!victim@example.test>",
        '<"victim@remote.test"@example.test>',
        "<@example.test:victim@remote.test>",
        "<@relay.test,@example.test:alice@example.test>",
    ],
)
async def test_relay_attempts_denied(smtp_server, raw_client, rcpt: str) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        assert await c.cmd(f"RCPT TO:{rcpt}") == "550 5.7.1 Relaying denied"
        assert (await c.cmd("DATA")).startswith("554 5.5.1"), "no recipient was accepted"


async def test_unknown_user(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        assert await c.cmd("RCPT TO:<nobody@example.test>") == "550 5.1.1 No such user here"
        assert (await c.cmd("RCPT TO:<INFO@Example.TEST>")).startswith("250 2.1.5"), "alias, case-insensitive domain"
        assert (await c.cmd("RCPT TO:<Postmaster>")).startswith("250 2.1.5"), "RFC 5321 §4.1.1.3"
    assert "nobody@example.test" in h.recipients.seen


@pytest.mark.parametrize(
    "arg, code",
    [
        ("TO:<alice@example.test", "501 5.5.4"),
        ("TO:<>", "501 5.5.4"),
        ("TO:<alice@@example.test>", "553 5.1.3"),
        ("TO:<alice@example.test> NOTIFY=NEVER", "555 5.5.4"),
        ("TO:<al ice@example.test>", "553 5.1.3"),
        ("TO:<" + "a" * 65 + "@example.test>", "553 5.1.3"),
    ],
)
async def test_bad_recipient_syntax(smtp_server, raw_client, arg: str, code: str) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        await c.cmd("EHLO c.test")
        await c.cmd("MAIL FROM:<a@remote.test>")
        assert (await c.cmd(f"RCPT {arg}")).startswith(code)


async def test_rcpt_before_mail_and_nested_mail(smtp_server, raw_client) -> None:
    async with smtp_server() as h:
        c = await raw_client(h.port)
        assert (await c.cmd("MAIL FROM:<a@remote.test>")).startswith("503 5.5.1"), "EHLO first"
        await c.cmd("EHLO c.test")
        assert (await c.cmd("RCPT TO:<alice@example.test>")).startswith("503 5.5.1")
        await c.cmd("MAIL FROM:<a@remote.test>")
        assert (await c.cmd("MAIL FROM:<a@remote.test>")).startswith("503 5.5.1")
