"""Outbound transports: how the queue hands one message for one domain to the next hop.

``OutboundTransport`` is the interface (as httpx's transports): ``send(envelope, message)`` returns one
``Outcome`` per recipient and never raises for remote or network trouble. ``MxTransport`` is the real one:
MX lookup, aiosmtplib with opportunistic STARTTLS (RFC 3207; RFC 7435 — certificates are not verified
towards MX hosts, like Postfix's ``smtp_tls_security_level = may``), or a smarthost with AUTH.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import aiosmtplib
import dns.asyncresolver

from suite.mail.queue.mx import RouteError, resolve_route

log = logging.getLogger("suite.mail.queue")


@dataclass(frozen=True, slots=True)
class OutboundEnvelope:
    mail_from: str  # "" = null reverse-path
    recipients: tuple[str, ...]  # all in ``domain``
    domain: str
    smtputf8: bool = False
    body_8bit: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    recipient: str
    code: int  # SMTP reply code; 0 when no server answered (connection/DNS trouble)
    text: str  # "550 5.1.1 no such user" as the server said it, or our own explanation
    remote_mta: str = ""

    @property
    def delivered(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    @property
    def status(self) -> str:
        """RFC 3463 status for a DSN: the enhanced code when the reply has one."""
        parts = self.text.split()
        if len(parts) > 1 and parts[1].count(".") == 2 and parts[1][0] in "245":
            return parts[1]
        return f"{self.code // 100 if self.code else 4}.0.0"


@runtime_checkable
class OutboundTransport(Protocol):
    async def send(self, envelope: OutboundEnvelope, message: bytes) -> list[Outcome]: ...


class _Retry(Exception):
    """This host did not take the message; try the next one."""

    def __init__(self, text: str, code: int = 0) -> None:
        super().__init__(text)
        self.text = text
        self.code = code


def _reply(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def _no_verify_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # opportunistic TLS (RFC 7435 §1.3): encrypt, do not authenticate
    return ctx


class MxTransport:
    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        helo: str,
        port: int = 25,
        timeout: float = 60.0,
        smarthost: str = "",
        smarthost_user: str = "",
        smarthost_password: str = "",
        smarthost_tls_verify: bool = True,
    ) -> None:
        self.resolver = resolver
        self.helo = helo
        self.port = port
        self.timeout = timeout
        self.smarthost = smarthost
        self.smarthost_user = smarthost_user
        self.smarthost_password = smarthost_password
        self.smarthost_tls_verify = smarthost_tls_verify

    @classmethod
    def from_settings(cls, settings, resolver: dns.asyncresolver.Resolver) -> MxTransport:
        return cls(
            resolver,
            helo=settings.hostname,
            port=settings.smtp_outbound_port,
            smarthost=settings.smarthost,
            smarthost_user=settings.smarthost_user,
            smarthost_password=settings.smarthost_password,
            smarthost_tls_verify=settings.smarthost_tls_verify,
        )

    async def send(self, envelope: OutboundEnvelope, message: bytes) -> list[Outcome]:
        if self.smarthost:
            host, _, sport = self.smarthost.rpartition(":") if ":" in self.smarthost else (self.smarthost, "", "587")
            targets = [(host, [host], int(sport), True)]
        else:
            route = await resolve_route(self.resolver, envelope.domain)
            if route.error is not None:
                if route.error is RouteError.TEMPORARY:
                    return self._all(envelope, 0, f"451 4.4.3 {route.detail}")
                if route.error is RouteError.NULL_MX:
                    return self._all(envelope, 556, f"556 5.1.10 {route.detail}")  # RFC 7505 §4.2
                return self._all(envelope, 550, f"550 5.1.2 {route.detail}")  # RFC 3463: bad destination system
            targets = [(h.name, list(h.addresses), self.port, False) for h in route.hosts]
        last = "451 4.4.1 no answer from any mail host"  # RFC 3463 §3.5
        for name, addresses, port, is_smarthost in targets:
            for address in addresses:
                try:
                    return await self._session(name, address, port, is_smarthost, envelope, message)
                except _Retry as e:
                    last = e.text
                    log.info("outbound %s via %s[%s]: %s", envelope.domain, name, address, e.text)
        return self._all(envelope, 0, last)

    @staticmethod
    def _all(envelope: OutboundEnvelope, code: int, text: str) -> list[Outcome]:
        return [Outcome(r, code, text) for r in envelope.recipients]

    async def _session(
        self,
        name: str,
        address: str,
        port: int,
        smarthost: bool,
        envelope: OutboundEnvelope,
        message: bytes,
        *,
        tls: bool = True,
    ) -> list[Outcome]:
        client = aiosmtplib.SMTP(
            hostname=address,
            port=port,
            local_hostname=self.helo,
            timeout=self.timeout,
            start_tls=False,
            use_tls=False,
        )
        remote = f"{name}[{address}]" if name != address else address
        try:
            try:
                await client.connect()
                await client.ehlo()
            except aiosmtplib.SMTPResponseException as e:
                raise _Retry(_reply(e.code, e.message), e.code) from None
            if tls and client.supports_extension("starttls"):
                tls_context = (
                    ssl.create_default_context() if smarthost and self.smarthost_tls_verify else _no_verify_context()
                )
                try:
                    await client.starttls(server_hostname=name, tls_context=tls_context)
                except (ssl.SSLError, aiosmtplib.SMTPException, OSError) as exc:
                    client.close()
                    if smarthost:
                        raise _Retry(f"451 4.7.5 STARTTLS with {remote} failed: {exc}") from None
                    # Opportunistic TLS: a failed handshake falls back to plaintext (RFC 7435 §1.3).
                    return await self._session(name, address, port, smarthost, envelope, message, tls=False)
            elif smarthost:
                raise _Retry(f"451 4.7.4 smarthost {remote} offers no STARTTLS")  # never send credentials in clear
            if smarthost and self.smarthost_user:
                try:
                    await client.login(self.smarthost_user, self.smarthost_password)
                except aiosmtplib.SMTPAuthenticationError as e:
                    raise _Retry(_reply(e.code, e.message), e.code) from None
            return await self._transaction(client, remote, envelope, message)
        except (
            aiosmtplib.SMTPServerDisconnected,
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPTimeoutError,
            OSError,
        ) as exc:
            raise _Retry(f"451 4.4.2 connection to {remote} failed: {exc.__class__.__name__}") from None
        finally:
            if client.is_connected:
                try:
                    await client.quit()
                except Exception:
                    client.close()

    async def _transaction(
        self, client: aiosmtplib.SMTP, remote: str, envelope: OutboundEnvelope, message: bytes
    ) -> list[Outcome]:
        options: list[str] = []
        encoding = "ascii"
        if envelope.smtputf8 and client.supports_extension("smtputf8"):
            options.append("SMTPUTF8")  # RFC 6531 §3.4
            encoding = "utf-8"
        elif envelope.smtputf8 and not _ascii_only(envelope):
            # RFC 6531 §3.2: UTF-8 addresses cannot be downgraded; this server cannot take the message.
            return [
                Outcome(r, 553, "553 5.6.7 the remote server does not support SMTPUTF8", remote)
                for r in envelope.recipients
            ]
        if envelope.body_8bit and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6152 §3
        if client.supports_extension("size"):
            options.append(f"SIZE={len(message)}")  # RFC 1870 §6
        try:
            await client.mail(envelope.mail_from, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as e:
            if e.code >= 500:
                return [Outcome(r, e.code, _reply(e.code, e.message), remote) for r in envelope.recipients]
            raise _Retry(_reply(e.code, e.message), e.code) from None
        outcomes: dict[str, Outcome] = {}
        accepted: list[str] = []
        for rcpt in envelope.recipients:
            try:
                await client.rcpt(rcpt, encoding=encoding)
                accepted.append(rcpt)
            except aiosmtplib.SMTPResponseException as e:
                outcomes[rcpt] = Outcome(rcpt, e.code, _reply(e.code, e.message), remote)
        if accepted:
            try:
                resp = await client.data(message)
                final = Outcome("", resp.code, _reply(resp.code, resp.message), remote)
            except aiosmtplib.SMTPResponseException as e:
                final = Outcome("", e.code, _reply(e.code, e.message), remote)
            for rcpt in accepted:
                outcomes[rcpt] = Outcome(rcpt, final.code, final.text, remote)
        else:
            try:
                await client.rset()
            except aiosmtplib.SMTPException:
                pass
        return [outcomes[r] for r in envelope.recipients]


def _ascii_only(envelope: OutboundEnvelope) -> bool:
    return all(a.isascii() for a in (envelope.mail_from, *envelope.recipients))
