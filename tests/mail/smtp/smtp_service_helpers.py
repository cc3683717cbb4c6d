"""Fixtures for the SmtpService tests: a real Suite context (SQLite and PostgreSQL), the service on
port 0 with a trustme certificate, the DNS stub of conftest.py as the resolver, and a second SMTP server
(aiosmtpd Controller) on loopback acting as a remote MX.

Test modules import the fixtures they use from here (``sys.path`` has this folder)."""

from __future__ import annotations

import contextlib
import email
import ssl
import threading
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from suite.config import Settings
from suite.testing import async_wait_until, free_port

DOMAIN = "example.test"
MX_HOST = "mx.example.test"
REMOTE_DOMAIN = "remote.test"
REMOTE_MX = "mx1.remote.test"
PASSWORD = "Tr0ub4dor&3-horse-staple"
ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    cert = ca.issue_cert(MX_HOST, "127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_path), append=True)
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


@pytest.fixture
def remote_port() -> int:
    return free_port()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, dns_stub, tls_files, remote_port: int) -> Settings:
    import suite.models  # noqa: F401

    return Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        bus_backend="memory",
        hostname=MX_HOST,
        smtp_port=0,
        submission_port=0,
        submissions_port=0,
        tls_cert=tls_files[0],
        tls_key=tls_files[1],
        dns_nameservers=["127.0.0.1"],
        dns_port=dns_stub.port,
        smtp_outbound_port=remote_port,
        queue_retry_schedule=[0.3],
        queue_poll_seconds=0.2,
    )


@dataclass
class SuiteSmtp:
    ctx: object
    service: object
    alice_id: int
    bob_id: int

    def port(self, name: str) -> int:
        return self.service.port(name)

    async def inbox(self, account_id: int, mailbox: str = "INBOX") -> list[bytes]:
        from suite.mail.store.store import MailStore

        store = MailStore(self.ctx)
        await store.ensure_defaults(account_id)
        mb = await store.require_mailbox(account_id, mailbox)
        return [await store.raw(m.blob) for m in await store.messages(mb.id)]

    async def wait_inbox(self, account_id: int, n: int = 1, mailbox: str = "INBOX", timeout: float = 15) -> list[bytes]:
        """The mailbox's messages once there are at least ``n`` (fails after ``timeout`` seconds)."""

        async def enough() -> list[bytes] | None:
            msgs = await self.inbox(account_id, mailbox)
            return msgs if len(msgs) >= n else None

        return await async_wait_until(enough, timeout, what=f"{n} message(s) in {mailbox}")


async def provision(ctx) -> tuple[int, int]:
    from suite.mail.queue import dkim

    await ctx.accounts.add_domain(DOMAIN)
    await dkim.ensure_keys(ctx, DOMAIN)
    alice = await ctx.accounts.add_account(ALICE, PASSWORD)
    bob = await ctx.accounts.add_account(BOB, PASSWORD)
    await ctx.accounts.add_alias(f"info@{DOMAIN}", ALICE)
    return alice.id, bob.id


@pytest.fixture
async def suite_smtp(ctx):
    from suite.mail.smtp.service import SmtpService

    alice_id, bob_id = await provision(ctx)
    service = SmtpService(ctx)
    await service.start()
    try:
        yield SuiteSmtp(ctx, service, alice_id, bob_id)
    finally:
        await service.stop()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    c = ssl.create_default_context()
    ca.configure_trust(c)
    return c


# --- the remote MX ---------------------------------------------------------------------------
@dataclass
class RemoteHandler:
    """aiosmtpd handler whose DATA replies follow a script ("451 ..." then "250 ..." ...)."""

    script: list[str] = field(default_factory=list)
    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    attempts: int = 0
    rcpt_reply: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_reply.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.attempts += 1
            reply = self.script.pop(0) if self.script else "250 2.0.0 OK queued"
            if reply.startswith("250"):
                self.received.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return reply


def publish_remote(dns_stub) -> None:
    if (REMOTE_DOMAIN, "MX") not in dns_stub.records:
        dns_stub.add(REMOTE_DOMAIN, "MX", f"10 {REMOTE_MX}.")
        dns_stub.add(REMOTE_MX, "A", "127.0.0.1")


@contextlib.contextmanager
def remote_mx(port: int, handler: RemoteHandler, dns_stub):
    """Publish MX + A records for REMOTE_DOMAIN in the stub and run the remote server on ``port``."""
    publish_remote(dns_stub)
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)
