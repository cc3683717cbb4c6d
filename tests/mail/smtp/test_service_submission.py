"""SmtpService submission (587 STARTTLS, 465 implicit TLS) against the real account and mail stores."""

# ruff: noqa: F811  (pytest fixtures imported from smtp_service_helpers are used as parameters)

from __future__ import annotations

import asyncio
import smtplib
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from smtp_service_helpers import (  # noqa: F401
    ALICE,
    BOB,
    DOMAIN,
    PASSWORD,
    client_context,
    parse,
    remote_port,
    settings,
    suite_smtp,
    tls_files,
)


def _message(sender: str, to: str, subject: str = "hello", body: str = "Hi there.\n") -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m.set_content(body)
    return m


def _submit(port: int, ca, user: str, password: str, msg: EmailMessage, *, implicit: bool = False, **kw):
    if implicit:
        s = smtplib.SMTP_SSL("127.0.0.1", port, context=client_context(ca), timeout=20)
    else:
        s = smtplib.SMTP("127.0.0.1", port, timeout=20)
        s.starttls(context=client_context(ca))
    try:
        s.login(user, password)
        return s.send_message(msg, **kw)
    finally:
        s.quit()


async def test_starttls_auth_delivers_locally_with_message_id_and_date(suite_smtp, ca):
    msg = _message(ALICE, BOB)
    refused = await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, ALICE, PASSWORD, msg)
    assert refused == {}
    # The 250 came after the commit: the message is there now, no waiting.
    stored = await suite_smtp.inbox(suite_smtp.bob_id)
    assert len(stored) == 1
    got = parse(stored[0])
    assert got["Subject"] == "hello"
    assert got["Message-ID"] and got["Message-ID"].endswith("@mx.example.test>")  # RFC 6409 §8.3
    assert got["Date"]  # RFC 6409 §8.2
    assert "Received" in got
    # Nothing into the sender's Sent: clients APPEND it themselves (as with Postfix + Dovecot).
    assert await suite_smtp.inbox(suite_smtp.alice_id, "Sent") == []


async def test_app_password_with_smtp_scope(suite_smtp, ca):
    _, secret = await suite_smtp.ctx.accounts.add_app_password(ALICE, "phone", ["smtp"])
    await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, ALICE, secret, _message(ALICE, BOB, "app"))
    assert [parse(m)["Subject"] for m in await suite_smtp.inbox(suite_smtp.bob_id)] == ["app"]


async def test_app_password_without_smtp_scope_is_refused(suite_smtp, ca):
    _, secret = await suite_smtp.ctx.accounts.add_app_password(ALICE, "mail reader", ["imap"])
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, ALICE, secret, _message(ALICE, BOB))
    assert e.value.smtp_code == 535


async def test_wrong_password_refused(suite_smtp, ca):
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await asyncio.to_thread(
            _submit, suite_smtp.port("submission"), ca, ALICE, "not-the-password-x", _message(ALICE, BOB)
        )


async def test_auth_before_starttls_refused(suite_smtp):
    def run():
        s = smtplib.SMTP("127.0.0.1", suite_smtp.port("submission"), timeout=20)
        try:
            s.ehlo()
            assert "auth" not in s.esmtp_features  # RFC 8314 §3: not offered in clear
            code, text = s.docmd("AUTH", "PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABwYXNz")
            mail_code, _ = s.docmd("MAIL", f"FROM:<{ALICE}>")
            return code, text, mail_code
        finally:
            s.close()

    code, text, mail_code = await asyncio.to_thread(run)
    assert code == 530 and b"5.7.0" in text  # RFC 3207 §4
    assert mail_code == 530


async def test_implicit_tls_465(suite_smtp, ca):
    await asyncio.to_thread(
        _submit, suite_smtp.port("submissions"), ca, ALICE, PASSWORD, _message(ALICE, BOB, "via 465"), implicit=True
    )
    assert [parse(m)["Subject"] for m in await suite_smtp.inbox(suite_smtp.bob_id)] == ["via 465"]


async def test_spoofed_envelope_sender_refused(suite_smtp, ca):
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        await asyncio.to_thread(
            _submit, suite_smtp.port("submission"), ca, ALICE, PASSWORD, _message(ALICE, BOB), from_addr=BOB
        )
    assert e.value.smtp_code == 553
    assert await suite_smtp.inbox(suite_smtp.bob_id) == []


async def test_spoofed_from_header_refused(suite_smtp, ca):
    with pytest.raises(smtplib.SMTPDataError) as e:
        await asyncio.to_thread(
            _submit, suite_smtp.port("submission"), ca, ALICE, PASSWORD, _message(BOB, BOB), from_addr=ALICE
        )
    assert e.value.smtp_code == 553 and b"5.7.1" in e.value.smtp_error
    assert await suite_smtp.inbox(suite_smtp.bob_id) == []


async def test_alias_and_plus_detail_may_be_used_as_sender(suite_smtp, ca):
    for sender in (f"info@{DOMAIN}", f"alice+lists@{DOMAIN}"):
        await asyncio.to_thread(
            _submit, suite_smtp.port("submission"), ca, ALICE, PASSWORD, _message(sender, BOB, sender)
        )
    assert sorted(parse(m)["Subject"] for m in await suite_smtp.inbox(suite_smtp.bob_id)) == [
        f"alice+lists@{DOMAIN}",
        f"info@{DOMAIN}",
    ]


async def test_alias_and_address_get_one_copy(suite_smtp, ca):
    msg = _message(BOB, f"{ALICE}, info@{DOMAIN}")
    await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, BOB, PASSWORD, msg)
    assert len(await suite_smtp.inbox(suite_smtp.alice_id)) == 1


async def test_over_quota_single_recipient_gets_552(suite_smtp, ca):
    await suite_smtp.ctx.accounts.set_quota(BOB, 10)
    with pytest.raises(smtplib.SMTPDataError) as e:
        await asyncio.to_thread(_submit, suite_smtp.port("submission"), ca, ALICE, PASSWORD, _message(ALICE, BOB))
    assert e.value.smtp_code == 552 and b"5.2.2" in e.value.smtp_error
