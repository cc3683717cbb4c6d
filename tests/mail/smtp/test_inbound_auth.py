"""SPF / DKIM / DMARC with a real DNS stub on 127.0.0.1, and their effect on inbound delivery."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from suite.mail.smtp.inbound_auth import (
    ThreadDns,
    authenticate_message,
    make_inbound_checker,
    parse_dmarc_record,
)


@pytest.fixture(scope="module")
def dkim_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der).decode()


MESSAGE = (
    b"From: Sender <sender@remote.test>\r\nTo: alice@example.test\r\nSubject: signed\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@remote.test>\r\n\r\nHello, signed world.\r\n"
)


def sign(message: bytes, private_pem: bytes, domain: bytes = b"remote.test") -> bytes:
    sig = dkim.sign(
        message,
        b"sel",
        domain,
        private_pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return sig + message


def write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "msg.eml"
    p.write_bytes(data)
    return p


def publish_key(dns_stub, public_b64: str, domain: str = "remote.test") -> None:
    dns_stub.add_txt(f"sel._domainkey.{domain}", f"v=DKIM1; k=rsa; p={public_b64}")


@pytest.mark.parametrize(
    "spf_record, expected",
    [
        ("v=spf1 ip4:127.0.0.1 -all", "pass"),
        ("v=spf1 ip4:192.0.2.1 -all", "fail"),
        (None, "none"),
    ],
)
async def test_spf(dns_stub, resolver, tmp_path, spf_record, expected) -> None:
    if spf_record:
        dns_stub.add_txt("remote.test", spf_record)
    auth = await authenticate_message(
        write(tmp_path, MESSAGE),
        "127.0.0.1",
        "mta.remote.test",
        "sender@remote.test",
        resolver,
        authserv_id="mx.example.test",
    )
    assert auth.spf == expected
    assert auth.header_value.startswith(f"mx.example.test; spf={expected} smtp.mailfrom=sender@remote.test")
    assert ("remote.test", "TXT") in dns_stub.queries, "SPF went through the stub"


async def test_dkim_pass_and_dmarc_pass(dns_stub, resolver, tmp_path, dkim_key) -> None:
    private_pem, public_b64 = dkim_key
    publish_key(dns_stub, public_b64)
    dns_stub.add_txt("_dmarc.remote.test", "v=DMARC1; p=reject")
    # SPF fails: DMARC passes through the aligned DKIM signature alone.
    dns_stub.add_txt("remote.test", "v=spf1 -all")
    auth = await authenticate_message(
        write(tmp_path, sign(MESSAGE, private_pem)),
        "127.0.0.1",
        "h.test",
        "sender@remote.test",
        resolver,
        authserv_id="mx.example.test",
    )
    assert [r.result for r in auth.dkim] == ["pass"]
    assert auth.dkim[0].domain == "remote.test" and auth.dkim[0].selector == "sel"
    assert auth.dmarc.result == "pass"
    dkim_part = next(p for p in auth.header_value.split("; ") if p.startswith("dkim="))
    assert set(dkim_part.replace('"', "").split()) == {  # header.b may be a quoted-string (RFC 8601 §2.2)
        "dkim=pass",
        f"header.b={auth.dkim[0].b}",
        "header.d=remote.test",
        "header.s=sel",
    }
    assert "dmarc=pass header.from=remote.test" in auth.header_value


async def test_dkim_tampered_body_fails(dns_stub, resolver, tmp_path, dkim_key) -> None:
    private_pem, public_b64 = dkim_key
    publish_key(dns_stub, public_b64)
    tampered = sign(MESSAGE, private_pem).replace(b"Hello, signed world.", b"Hello, forged world.")
    auth = await authenticate_message(
        write(tmp_path, tampered),
        "127.0.0.1",
        "h.test",
        "sender@remote.test",
        resolver,
        authserv_id="mx",
    )
    assert [r.result for r in auth.dkim] == ["fail"]
    assert 'dkim=fail reason="body hash mismatch"' in auth.header_value


async def test_dkim_missing_key_is_permerror(dns_stub, resolver, tmp_path, dkim_key) -> None:
    auth = await authenticate_message(
        write(tmp_path, sign(MESSAGE, dkim_key[0])),
        "127.0.0.1",
        "h.test",
        "sender@remote.test",
        resolver,
    )
    assert [r.result for r in auth.dkim] == ["permerror"]


async def test_dmarc_relaxed_alignment_with_subdomain(dns_stub, resolver, tmp_path) -> None:
    dns_stub.add_txt("bounces.remote.test", "v=spf1 ip4:127.0.0.1 -all")
    dns_stub.add_txt("_dmarc.remote.test", "v=DMARC1; p=reject; aspf=r")
    auth = await authenticate_message(
        write(tmp_path, MESSAGE),
        "127.0.0.1",
        "h.test",
        "b@bounces.remote.test",
        resolver,
    )
    assert auth.spf == "pass" and auth.dmarc.result == "pass"
    dns_stub.records[("_dmarc.remote.test", "TXT")] = ['"v=DMARC1; p=reject; aspf=s"']
    auth = await authenticate_message(
        write(tmp_path, MESSAGE),
        "127.0.0.1",
        "h.test",
        "b@bounces.remote.test",
        resolver,
    )
    assert auth.dmarc.result == "fail", "strict SPF alignment needs the exact domain"


async def test_dkim_runs_off_the_event_loop(dns_stub, resolver) -> None:
    lookup = ThreadDns(resolver, asyncio.get_running_loop())
    with pytest.raises(RuntimeError):
        lookup.dkim_txt("sel._domainkey.remote.test")
    dns_stub.add_txt("sel._domainkey.remote.test", "v=DKIM1; p=abc")
    seen: list[str] = []

    def in_thread() -> bytes | None:
        seen.append(threading.current_thread().name)
        return lookup.dkim_txt("sel._domainkey.remote.test")

    assert await asyncio.to_thread(in_thread) == b"v=DKIM1; p=abc"
    assert seen and seen[0] != threading.main_thread().name


def test_parse_dmarc_record() -> None:
    assert parse_dmarc_record("v=DMARC1; p=quarantine; pct=50")["pct"] == "50"  # type: ignore[index]
    assert parse_dmarc_record("v=DMARC1; p=bogus") is None
    assert parse_dmarc_record("v=spf1 -all") is None


# --- through the MX ------------------------------------------------------------------------------
async def _send(c, data: bytes, mail_from: str = "sender@remote.test") -> str:
    await c.cmd("EHLO mta.remote.test")
    await c.cmd(f"MAIL FROM:<{mail_from}>")
    await c.cmd("RCPT TO:<alice@example.test>")
    await c.cmd("DATA")
    return await c.cmd(data + b".")


async def test_dmarc_reject_refuses_at_data(smtp_server, raw_client, dns_stub, resolver) -> None:
    dns_stub.add_txt("remote.test", "v=spf1 ip4:192.0.2.1 -all")
    dns_stub.add_txt("_dmarc.remote.test", "v=DMARC1; p=reject")
    checker = make_inbound_checker(resolver, authserv_id="mx.example.test")
    async with smtp_server(inbound_checker=checker) as h:
        c = await raw_client(h.port)
        assert await _send(c, MESSAGE) == "550 5.7.1 Rejected by DMARC policy of the sender domain"
    assert h.deliverer.delivered == []
    assert list(h.spool_dir.iterdir()) == []


async def test_dmarc_quarantine_delivers_to_junk(smtp_server, raw_client, dns_stub, resolver) -> None:
    dns_stub.add_txt("remote.test", "v=spf1 ip4:192.0.2.1 -all")
    dns_stub.add_txt("_dmarc.remote.test", "v=DMARC1; p=quarantine")
    checker = make_inbound_checker(resolver, authserv_id="mx.example.test")
    async with smtp_server(inbound_checker=checker) as h:
        c = await raw_client(h.port)
        assert (await _send(c, MESSAGE)).startswith("250 2.0.0")
    [d] = h.deliverer.delivered
    assert d.envelope.junk
    assert d.content is not None
    assert d.content.startswith(b"Authentication-Results: mx.example.test; spf=fail smtp.mailfrom=sender@remote.test")
    assert b"dmarc=fail header.from=remote.test policy.dmarc=quarantine" in d.content
    assert d.content.endswith(MESSAGE) and b"\r\nReceived: from mta.remote.test" in d.content
    assert d.message.sha256 == d.file_sha256


async def test_signed_message_passes_through_mx(smtp_server, raw_client, dns_stub, resolver, dkim_key) -> None:
    private_pem, public_b64 = dkim_key
    publish_key(dns_stub, public_b64)
    dns_stub.add_txt("remote.test", "v=spf1 ip4:127.0.0.1 -all")
    dns_stub.add_txt("_dmarc.remote.test", "v=DMARC1; p=reject")
    checker = make_inbound_checker(resolver, authserv_id="mx.example.test")
    async with smtp_server(inbound_checker=checker) as h:
        c = await raw_client(h.port)
        assert (await _send(c, sign(MESSAGE, private_pem))).startswith("250 2.0.0")
    [d] = h.deliverer.delivered
    assert not d.envelope.junk
    assert d.envelope.authentication_results is not None
    assert "spf=pass" in d.envelope.authentication_results and "dkim=pass" in d.envelope.authentication_results
    assert "dmarc=pass" in d.envelope.authentication_results


async def test_dkim_size_cap_reports_policy(dns_stub, resolver, tmp_path, dkim_key) -> None:
    private_pem, public_b64 = dkim_key
    publish_key(dns_stub, public_b64)
    path = write(tmp_path, sign(MESSAGE, private_pem))
    auth = await authenticate_message(path, "127.0.0.1", "h.test", "sender@remote.test", resolver, max_dkim_bytes=100)
    assert [r.result for r in auth.dkim] == ["policy"]
    assert 'dkim=policy reason="message too large to verify"' in auth.header_value
    assert ("sel._domainkey.remote.test", "TXT") not in dns_stub.queries
