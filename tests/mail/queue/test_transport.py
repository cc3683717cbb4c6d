"""MxTransport (aiosmtplib) against aiosmtpd servers on loopback: MX fallback, opportunistic STARTTLS,
smarthost with AUTH, per-recipient replies, SMTPUTF8 without downgrade."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from suite.mail.queue.transport import MxTransport, OutboundEnvelope
from suite.testing import free_port

MSG = b"From: a@example.org\r\nTo: x@dest.test\r\nSubject: t\r\n\r\nbody\r\n"


@dataclass
class Recorder:
    refuse: dict[str, str] = field(default_factory=dict)
    got: list[tuple[str, list[str], bytes, bool, str | None]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        login = session.auth_data.login.decode() if session.authenticated and session.auth_data else None
        self.got.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, session.ssl is not None, login)
        )
        return "250 2.0.0 stored"


@pytest.fixture
def tls_context() -> ssl.SSLContext:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mx.dest.test", "127.0.0.1").configure_cert(ctx)
    return ctx


def _controller(handler, port, **kw) -> Controller:
    c = Controller(handler, hostname="127.0.0.1", port=port, **kw)
    c.start()
    return c


async def test_falls_back_to_the_next_mx_and_uses_starttls(zone, resolver, tls_context):
    port = free_port()
    zone.add("dest.test", "MX", "10 down.dest.test.", "20 up.dest.test.")
    zone.add("down.dest.test", "A", "127.0.0.2")  # nothing listens there
    zone.add("up.dest.test", "A", "127.0.0.1")
    rec = Recorder(refuse={"nobody@dest.test": "550 5.1.1 no such user"})
    c = _controller(rec, port, tls_context=tls_context)
    try:
        t = MxTransport(resolver, helo="mail.example.org", port=port, timeout=5)
        env = OutboundEnvelope("a@example.org", ("x@dest.test", "nobody@dest.test"), "dest.test")
        outcomes = await t.send(env, MSG)
    finally:
        c.stop()
    assert [(o.recipient, o.code, o.delivered, o.permanent) for o in outcomes] == [
        ("x@dest.test", 250, True, False),
        ("nobody@dest.test", 550, False, True),
    ]
    assert outcomes[1].status == "5.1.1" and outcomes[0].remote_mta == "up.dest.test[127.0.0.1]"
    [(mail_from, rcpts, data, tls, _)] = rec.got
    assert (mail_from, rcpts, data, tls) == ("a@example.org", ["x@dest.test"], MSG, True)


async def test_nobody_answers_is_temporary(zone, resolver):
    zone.add("dest.test", "MX", "10 down.dest.test.")
    zone.add("down.dest.test", "A", "127.0.0.2")
    t = MxTransport(resolver, helo="mail.example.org", port=free_port(), timeout=5)
    [o] = await t.send(OutboundEnvelope("a@example.org", ("x@dest.test",), "dest.test"), MSG)
    assert o.code == 0 and not o.permanent and not o.delivered and "4.4.2" in o.text


async def test_smtputf8_recipient_is_not_downgraded(zone, resolver):
    port = free_port()
    zone.add("dest.test", "A", "127.0.0.1")
    c = _controller(Recorder(), port, enable_SMTPUTF8=False)
    try:
        t = MxTransport(resolver, helo="mail.example.org", port=port, timeout=5)
        env = OutboundEnvelope("a@example.org", ("ζωή@dest.test",), "dest.test", smtputf8=True)
        [o] = await t.send(env, MSG)
    finally:
        c.stop()
    assert o.permanent and o.status == "5.6.7"  # RFC 6531 §3.2


async def test_smarthost_with_auth_over_starttls(resolver, tls_context):
    port = free_port()
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"relay-secret", auth_data=auth_data)

    rec = Recorder()
    c = _controller(
        rec, port, tls_context=tls_context, require_starttls=True, authenticator=authenticator, auth_require_tls=True
    )
    try:
        t = MxTransport(
            resolver,
            helo="mail.example.org",
            smarthost=f"127.0.0.1:{port}",
            smarthost_user="relay",
            smarthost_password="relay-secret",
            smarthost_tls_verify=False,
            timeout=5,
        )
        # No DNS for the destination: everything goes to the smarthost.
        [o] = await t.send(OutboundEnvelope("a@example.org", ("x@unresolvable.test",), "unresolvable.test"), MSG)
    finally:
        c.stop()
    assert o.delivered, o.text
    assert seen == [(b"relay", b"relay-secret")]
    assert rec.got[0][3:] == (True, "relay")
