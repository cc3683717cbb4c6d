"""DKIM signing with both keys (verified by dkimpy against published records) and DSN structure."""

from __future__ import annotations

import asyncio
import email
import time
from email import policy

import dkim as dkimpy
import pytest

from suite.mail.queue import dkim
from suite.mail.queue.dsn import FailedRecipient, build_dsn, header_block

MSG = (
    b"From: Alice <alice@example.org>\r\nTo: bob@far.test\r\nSubject: signed\r\n"
    b"Date: Mon, 02 Jun 2025 10:00:00 +0000\r\nMessage-ID: <s1@example.org>\r\n\r\nHello\r\n"
)


async def test_sign_with_both_keys_and_verify(ctx):
    await ctx.accounts.add_domain("example.org")
    keys = await dkim.ensure_keys(ctx, "example.org")
    assert await dkim.ensure_keys(ctx, "example.org") == keys  # idempotent
    published = {k.dns_name().encode() + b".": k.dns_txt().encode() for k in keys}
    headers = await asyncio.to_thread(dkim.sign, MSG, keys)
    signed = headers + MSG

    def dnsfunc(name, timeout=5):
        return published.get(name, b"")

    d = dkimpy.DKIM(signed)
    assert [d.verify(idx=i, dnsfunc=dnsfunc) for i in range(2)] == [True, True]
    # A changed body breaks both.
    tampered = dkimpy.DKIM(signed.replace(b"Hello", b"Hullo"))

    def check(i: int) -> bool:
        try:
            return tampered.verify(idx=i, dnsfunc=dnsfunc)
        except dkimpy.ValidationError:
            return False

    assert [check(i) for i in range(2)] == [False, False]
    rsa = next(k for k in keys if k.algorithm == "rsa")
    assert rsa._private().key_size == 2048


@pytest.mark.parametrize("status,action", [("5.1.1", "failed"), ("4.4.7", "failed")])
def test_dsn_is_a_delivery_status_report(status, action):
    now = time.time()
    raw = build_dsn(
        reporting_mta="mail.example.org",
        sender="alice@example.org",
        recipients=[
            FailedRecipient("bob@far.test", status, f"550 {status} nope", "mx.far.test", now),
            FailedRecipient("ζωή@far.test", status, "no answer"),
        ],
        original_headers=header_block(MSG),
        arrival=now - 60,
        queue_id="42",
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    m = email.message_from_bytes(raw, policy=policy.default)
    assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status"
    human, ds, hdrs = list(m.iter_parts())
    assert human.get_content_type() == "text/plain"
    assert ds.get_content_type() == "message/delivery-status"
    blocks = ds.get_payload()
    assert blocks[0]["Reporting-MTA"] == "dns; mail.example.org"
    assert blocks[1]["Final-Recipient"] == "rfc822; bob@far.test"
    assert blocks[1]["Action"] == action and blocks[1]["Status"] == status
    assert blocks[1]["Remote-MTA"] == "dns; mx.far.test"
    assert blocks[2]["Final-Recipient"] == "utf-8; ζωή@far.test"  # RFC 6533 §3
    assert hdrs.get_content_type() == "text/rfc822-headers"
    assert "Subject: signed" in hdrs.get_content() and "Hello" not in hdrs.get_content()
