"""Fixtures for the SMTP server tests: TLS material, in-memory interface implementations, servers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from suite.mail.smtp.address import Mailbox
from suite.mail.smtp.interfaces import (
    AuthOutcome,
    AuthStatus,
    MessageEnvelope,
    RecipientDecision,
    RecipientStatus,
    SpooledMessage,
)
from suite.mail.smtp.limits import ConnectionLimiter
from suite.mail.smtp.server import SmtpConfig, SmtpPolicies, SmtpServer
from suite.testing import require_tool

HOSTNAME = "mx.example.test"


# --- TLS ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOSTNAME, "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture(scope="session")
def ca_pem(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


# --- In-memory implementations of the SMTP interfaces ------------------------------------------
@dataclass
class MemoryRecipients:
    domains: set[str] = field(default_factory=lambda: {"example.test"})
    users: set[str] = field(
        default_factory=lambda: {
            "alice@example.test",
            "bob@example.test",
            "postmaster@example.test",
            "δοκιμή@example.test",
        }
    )
    aliases: dict[str, str] = field(default_factory=lambda: {"info@example.test": "alice@example.test"})
    seen: list[str] = field(default_factory=list)

    async def check_recipient(self, mailbox: Mailbox) -> RecipientDecision:
        self.seen.append(str(mailbox))
        if mailbox.domain == "" and mailbox.local_part.lower() == "postmaster":
            return RecipientDecision(RecipientStatus.LOCAL, ("postmaster@example.test",))
        if mailbox.is_literal or mailbox.domain not in self.domains:
            return RecipientDecision(RecipientStatus.NOT_LOCAL)
        address = f"{mailbox.local_part.lower()}@{mailbox.domain}"
        if address in self.users:
            return RecipientDecision(RecipientStatus.LOCAL, (address,))
        if address in self.aliases:
            return RecipientDecision(RecipientStatus.LOCAL, (self.aliases[address],))
        return RecipientDecision(RecipientStatus.UNKNOWN_USER)


@dataclass
class MemoryAuthenticator:
    accounts: dict[str, tuple[str, str]] = field(default_factory=lambda: {"alice": ("s3cret-pw", "acct-alice")})
    max_failures: int = 5
    failures: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    async def authenticate(self, username: str, password: str, *, scope: str, client_ip: str) -> AuthOutcome:
        self.calls.append((username, scope, client_ip))
        if self.failures.get(username, 0) >= self.max_failures:
            return AuthOutcome(AuthStatus.LOCKED)
        entry = self.accounts.get(username)
        if entry is not None and entry[0] == password:
            return AuthOutcome(AuthStatus.OK, entry[1])
        self.failures[username] = self.failures.get(username, 0) + 1
        return AuthOutcome(AuthStatus.INVALID)


@dataclass
class MemorySenders:
    allowed: dict[str, set[str]] = field(
        default_factory=lambda: {"acct-alice": {"alice@example.test", "info@example.test"}}
    )

    async def may_send_as(self, account_id: str, address: str) -> bool:
        return address.lower() in self.allowed.get(account_id, set())


@dataclass
class Delivered:
    envelope: MessageEnvelope
    message: SpooledMessage
    content: bytes | None
    file_sha256: str


@dataclass
class MemoryDeliverer:
    """Keeps delivered messages in a list; verifies the size/hash the server claims."""

    keep_content: bool = True
    delivered: list[Delivered] = field(default_factory=list)

    async def deliver(self, envelope: MessageEnvelope, message: SpooledMessage) -> None:
        size, digest, content = await asyncio.to_thread(self._read, message.path)
        assert size == message.size
        await asyncio.to_thread(lambda: message.sha256)  # computed from the file while it exists
        self.delivered.append(Delivered(envelope, message, content, digest))

    def _read(self, path: Path) -> tuple[int, str, bytes | None]:
        h = hashlib.sha256()
        size = 0
        content = bytearray() if self.keep_content else None
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
                if content is not None:
                    content += chunk
        return size, h.hexdigest(), bytes(content) if content is not None else None


@dataclass
class Harness:
    server: SmtpServer
    recipients: MemoryRecipients
    authenticator: MemoryAuthenticator
    senders: MemorySenders
    deliverer: MemoryDeliverer
    spool_dir: Path

    @property
    def port(self) -> int:
        return self.server.port


ServerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def smtp_server(tmp_path: Path, server_tls: ssl.SSLContext) -> ServerFactory:
    @contextlib.asynccontextmanager
    async def factory(
        *,
        submission: bool = False,
        implicit_tls: bool = False,
        tls: bool = True,
        limiter: ConnectionLimiter | None = None,
        inbound_checker=None,
        keep_content: bool = True,
        **config_kw,
    ) -> AsyncIterator[Harness]:
        spool_dir = tmp_path / "spool"
        config = SmtpConfig(
            hostname=HOSTNAME,
            spool_dir=spool_dir,
            submission=submission,
            implicit_tls=implicit_tls,
            tls_context=server_tls if tls else None,
            **config_kw,
        )
        h = Harness(
            server=None,  # type: ignore[arg-type]
            recipients=MemoryRecipients(),
            authenticator=MemoryAuthenticator(),
            senders=MemorySenders(),
            deliverer=MemoryDeliverer(keep_content=keep_content),
            spool_dir=spool_dir,
        )
        policies = SmtpPolicies(
            recipients=h.recipients,
            deliverer=h.deliverer,
            authenticator=h.authenticator,
            senders=h.senders,
            inbound_checker=inbound_checker,
        )
        h.server = SmtpServer(config, policies, limiter=limiter)
        await h.server.start()
        try:
            yield h
        finally:
            await h.server.stop()

    return factory


# --- Raw socket client ----------------------------------------------------------------------------
class RawClient:
    """A line-oriented raw SMTP client for byte-exact tests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        return client

    async def reply(self, timeout: float = 10) -> list[str]:
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                raise ConnectionError(f"connection closed; got {lines!r}")
            text = line.decode("utf-8").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return lines

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def cmd(self, line: str | bytes) -> str:
        data = line.encode() if isinstance(line, str) else line
        await self.send(data + b"\r\n")
        return (await self.reply())[-1]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


@pytest.fixture
async def raw_client() -> AsyncIterator[Callable[[int], asyncio.Future[RawClient]]]:
    clients: list[RawClient] = []

    async def connect(port: int) -> RawClient:
        c = await RawClient.connect(port)
        clients.append(c)
        greeting = await c.reply()
        assert greeting[0].startswith("220 "), greeting
        return c

    yield connect
    for c in clients:
        await c.close()


@pytest.fixture
def tool() -> Callable[[str], str]:
    return require_tool


@pytest.fixture
def hostname() -> str:
    return HOSTNAME


# --- DNS stub: a real UDP DNS server on 127.0.0.1 answering from a dict -----------------------
class DnsStub(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    def add(self, name: str, rdtype: str, *values: str) -> None:
        self.records.setdefault((name.lower().rstrip("."), rdtype.upper()), []).extend(values)

    def add_txt(self, name: str, text: str) -> None:
        # TXT character-strings are at most 255 octets (RFC 1035 §3.3.14): split long ones.
        chunks = [text[i : i + 250] for i in range(0, len(text), 250)] or [""]
        self.add(name, "TXT", " ".join(f'"{c}"' for c in chunks))

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdataclass
        import dns.rdatatype
        import dns.rrset

        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text().rstrip(".").lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append((name, rdtype))
        values = self.records.get((name, rdtype))
        if values:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, question.rdtype, values)
            )
        elif not any(key[0] == name for key in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def dns_stub() -> AsyncIterator[DnsStub]:
    loop = asyncio.get_running_loop()
    transport, stub = await loop.create_datagram_endpoint(DnsStub, local_addr=("127.0.0.1", 0))
    stub.port = transport.get_extra_info("sockname")[1]
    yield stub
    transport.close()


@pytest.fixture
def resolver(dns_stub: DnsStub):
    import dns.asyncresolver

    r = dns.asyncresolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = dns_stub.port
    r.use_edns(0, 0, 4096)
    r.lifetime = 5
    return r
