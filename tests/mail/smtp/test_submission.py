"""Submission (RFC 6409): STARTTLS before AUTH on 587, implicit TLS on 465, AUTH PLAIN/LOGIN,
sender checks (553 5.7.1), Message-ID/Date added, relaying for the authenticated account."""

from __future__ import annotations

import base64
import email
import email.policy

import aiosmtplib
import pytest

PLAIN_OK = base64.b64encode(b"\0alice\0s3cret-pw").decode()


async def _tls_session(c, client_tls, hostname) -> None:
    await c.cmd("EHLO c.test")
    assert (await c.cmd("STARTTLS")).startswith("220")
    await c.writer.start_tls(client_tls, server_hostname=hostname)
    await c.send(b"EHLO c.test\r\n")
    lines = await c.reply()
    assert "AUTH PLAIN LOGIN" in [ln[4:] for ln in lines]


async def test_auth_before_starttls_refused(smtp_server, raw_client) -> None:
    async with smtp_server(submission=True) as h:
        c = await raw_client(h.port)
        await c.send(b"EHLO c.test\r\n")
        ehlo = await c.reply()
        assert "STARTTLS" in [ln[4:] for ln in ehlo] and not any("AUTH" in ln for ln in ehlo)
        assert await c.cmd(f"AUTH PLAIN {PLAIN_OK}") == "530 5.7.0 Must issue a STARTTLS command first"
        assert await c.cmd("MAIL FROM:<alice@example.test>") == "530 5.7.0 Must issue a STARTTLS command first"
    assert h.authenticator.calls == [], "credentials sent in plaintext never reach the Authenticator"


async def test_mail_without_auth_refused(smtp_server, raw_client, client_tls, hostname) -> None:
    async with smtp_server(submission=True) as h:
        c = await raw_client(h.port)
        await _tls_session(c, client_tls, hostname)
        assert await c.cmd("MAIL FROM:<alice@example.test>") == "530 5.7.0 Authentication required"


@pytest.mark.parametrize(
    "password, expected",
    [("s3cret-pw", "235 2.7.0"), ("wrong", "535 5.7.8")],
)
async def test_auth_plain(smtp_server, raw_client, client_tls, hostname, password, expected) -> None:
    async with smtp_server(submission=True) as h:
        c = await raw_client(h.port)
        await _tls_session(c, client_tls, hostname)
        blob = base64.b64encode(f"\0alice\0{password}".encode()).decode()
        assert (await c.cmd(f"AUTH PLAIN {blob}")).startswith(expected)
    assert h.authenticator.calls == [("alice", "smtp-submission", "127.0.0.1")]


async def test_auth_login_and_plain_challenge(smtp_server, raw_client, client_tls, hostname) -> None:
    async with smtp_server(submission=True) as h:
        c = await raw_client(h.port)
        await _tls_session(c, client_tls, hostname)
        assert await c.cmd("AUTH LOGIN") == "334 " + base64.b64encode(b"Username:").decode()
        assert await c.cmd(base64.b64encode(b"alice").decode()) == "334 " + base64.b64encode(b"Password:").decode()
        assert (await c.cmd(base64.b64encode(b"s3cret-pw").decode())).startswith("235 2.7.0")
        assert (await c.cmd(f"AUTH PLAIN {PLAIN_OK}")).startswith("503 5.5.1")
    async with smtp_server(submission=True) as h:
        c = await raw_client(h.port)
        await _tls_session(c, client_tls, hostname)
        assert await c.cmd("AUTH PLAIN") == "334 "
        assert (await c.cmd("*")).startswith("501 5.7.0"), "RFC 4954 §4 cancel"
        assert (await c.cmd("AUTH PLAIN !!!notbase64")).startswith("501 5.5.2")
        assert (await c.cmd("AUTH CRAM-MD5")).startswith("504 5.5.4")


async def test_locked_account_gets_454_and_failures_disconnect(smtp_server, raw_client, client_tls, hostname) -> None:
    async with smtp_server(submission=True) as h:
        h.authenticator.max_failures = 2
        c = await raw_client(h.port)
        await _tls_session(c, client_tls, hostname)
        bad = base64.b64encode(b"\0alice\0nope").decode()
        assert (await c.cmd(f"AUTH PLAIN {bad}")).startswith("535 5.7.8")
        assert (await c.cmd(f"AUTH PLAIN {bad}")).startswith("535 5.7.8")
        # Now even the right password is refused while the account is locked.
        await c.send(f"AUTH PLAIN {PLAIN_OK}\r\n".encode())
        assert (await c.reply())[0].startswith("454 4.7.0")
        assert (await c.reply())[0].startswith("421 4.7.0"), "third failure in one session closes it"


async def _submit(
    port: int,
    client_tls,
    *,
    sender: str,
    rcpts: list[str],
    message: bytes,
    implicit: bool = False,
):
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=port,
        tls_context=client_tls,
        use_tls=implicit,
        start_tls=not implicit,
        local_hostname="c.test",
    )
    await client.connect()
    try:
        await client.login("alice", "s3cret-pw")
        return await client.sendmail(sender, rcpts, message)
    finally:
        await client.quit()


@pytest.fixture
def ip_tls(client_tls):
    client_tls.check_hostname = False  # aiosmtplib connects to the IP; the cert is checked against the CA
    return client_tls


async def test_submission_adds_message_id_and_date_and_relays(smtp_server, ip_tls) -> None:
    msg = b"From: Alice <alice@example.test>\r\nTo: x@remote.test\r\nSubject: hi\r\n\r\nbody\r\n"
    async with smtp_server(submission=True) as h:
        errors, reply = await _submit(
            h.port,
            ip_tls,
            sender="alice@example.test",
            rcpts=["x@remote.test", "bob@example.test"],
            message=msg,
        )
        assert errors == {}
        assert reply.startswith("2.0.0")
    [d] = h.deliverer.delivered
    env = d.envelope
    assert env.submission and env.account_id == "acct-alice" and env.tls
    assert [(r.address, r.local) for r in env.recipients] == [
        ("x@remote.test", False),
        ("bob@example.test", True),
    ]
    assert d.content is not None
    parsed = email.message_from_bytes(d.content, policy=email.policy.default)
    assert parsed["Message-ID"].endswith("@mx.example.test>")
    assert parsed["Date"] is not None
    assert parsed.get_content().strip() == "body"
    assert b" with ESMTPSA id " in d.content
    assert d.content.endswith(b"\r\n\r\nbody\r\n")
    assert d.message.sha256 == d.file_sha256
    assert list(h.spool_dir.iterdir()) == []


async def test_existing_headers_kept(smtp_server, ip_tls) -> None:
    msg = b"From: alice@example.test\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <keep@example.test>\r\n\r\nb\r\n"
    async with smtp_server(submission=True) as h:
        await _submit(
            h.port,
            ip_tls,
            sender="alice@example.test",
            rcpts=["bob@example.test"],
            message=msg,
        )
    [d] = h.deliverer.delivered
    assert d.content is not None and d.content.endswith(msg) and d.content.count(b"Message-ID") == 1


async def test_spoofed_envelope_sender_refused(smtp_server, ip_tls) -> None:
    async with smtp_server(submission=True) as h:
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as exc:
            await _submit(
                h.port,
                ip_tls,
                sender="bob@example.test",
                rcpts=["x@remote.test"],
                message=b"From: bob@example.test\r\n\r\nx\r\n",
            )
        assert exc.value.code == 553 and exc.value.message.startswith("5.7.1")
    assert h.deliverer.delivered == []


async def test_spoofed_from_header_refused(smtp_server, ip_tls) -> None:
    async with smtp_server(submission=True) as h:
        with pytest.raises(aiosmtplib.SMTPDataError) as exc:
            await _submit(
                h.port,
                ip_tls,
                sender="alice@example.test",
                rcpts=["x@remote.test"],
                message=b"From: CEO <bob@example.test>\r\n\r\nx\r\n",
            )
        assert exc.value.code == 553 and "bob@example.test" in exc.value.message
        with pytest.raises(aiosmtplib.SMTPDataError) as exc:
            await _submit(
                h.port,
                ip_tls,
                sender="alice@example.test",
                rcpts=["x@remote.test"],
                message=b"Subject: no from\r\n\r\nx\r\n",
            )
        assert exc.value.code == 550
    assert h.deliverer.delivered == []
    assert list(h.spool_dir.iterdir()) == []


async def test_unknown_local_user_on_submission(smtp_server, ip_tls) -> None:
    async with smtp_server(submission=True) as h:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as exc:
            await _submit(
                h.port,
                ip_tls,
                sender="alice@example.test",
                rcpts=["ghost@example.test"],
                message=b"From: alice@example.test\r\n\r\nx\r\n",
            )
        assert exc.value.recipients[0].code == 550


async def test_implicit_tls_465(smtp_server, ip_tls) -> None:
    async with smtp_server(submission=True, implicit_tls=True) as h:
        errors, _ = await _submit(
            h.port,
            ip_tls,
            sender="alice@example.test",
            rcpts=["x@remote.test"],
            message=b"From: alice@example.test\r\n\r\nx\r\n",
            implicit=True,
        )
        assert errors == {}
    [d] = h.deliverer.delivered
    assert d.envelope.tls and d.envelope.account_id == "acct-alice"
