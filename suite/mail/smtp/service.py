"""``suite serve --only smtp``: the MX (port 25), submission with STARTTLS (587, RFC 6409) and with
implicit TLS (465, RFC 8314 §3.3), wired to the account store, the mail store and the outbound queue,
plus the queue's delivery worker.
"""

from __future__ import annotations

import logging
import ssl

from suite.accounts.revocation import LiveConnections
from suite.mail.queue.mx import make_resolver
from suite.mail.queue.queue import QueueWorker
from suite.mail.queue.transport import MxTransport, OutboundTransport
from suite.mail.smtp.delivery import (
    AccountAuthenticator,
    AccountLinks,
    AccountRecipients,
    AccountSenders,
    DirectoryCache,
    LocalFirstTransport,
    StoreDeliverer,
)
from suite.mail.smtp.inbound_auth import make_inbound_checker
from suite.mail.smtp.interfaces import AttachmentLinker
from suite.mail.smtp.limits import ConnectionLimiter
from suite.mail.smtp.server import SmtpConfig, SmtpPolicies, SmtpServer
from suite.mail.smtp.translog import SqlTransactionLog
from suite.service import Service
from suite.tls import make_self_signed, server_context

log = logging.getLogger("suite.mail.smtp")

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>


def fixed_mmap_threshold(size: int = 1 << 20) -> bool:
    """Serve every allocation of ``size`` bytes or more by mmap, given back to the OS when freed.

    glibc raises its mmap threshold to the largest block freed so far (up to 32 MiB), after which a 25 MB
    message read in a worker thread lands in that thread's malloc arena and stays there: with a handful of
    executor threads the process kept ~400 MB after 50 concurrent 25 MB messages (bench/smtp), ~200 MB
    with a fixed threshold. Setting it once per process turns the dynamic adjustment off (mallopt(3)).
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, size))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


class SmtpService(Service):
    name = "smtp"

    def __init__(
        self,
        ctx,
        *,
        transport: OutboundTransport | None = None,
        run_queue: bool = True,
        linker: AttachmentLinker | None = None,
    ) -> None:
        super().__init__(ctx)
        self.resolver = make_resolver(ctx.settings)
        self.transport = transport or MxTransport.from_settings(ctx.settings, self.resolver)
        # One cache of account-store answers for RCPT (both servers) and delivery.
        self.directory = DirectoryCache(ctx.accounts)
        # ``linker``: the files service's share links, wired in by the runner (suite/wiring.py)
        self.deliverer = StoreDeliverer(
            ctx, parse_budget=ctx.settings.smtp_delivery_memory, directory=self.directory, linker=linker
        )
        # held (RFC 4865) messages reach the queue with local recipients too: those go to the store
        queue_transport = LocalFirstTransport(self.deliverer, self.transport)
        self.worker = QueueWorker(ctx, queue_transport) if run_queue else None
        self.servers: dict[str, SmtpServer] = {}
        self.tls_context: ssl.SSLContext | None = None
        # signed-in submission sessions, closed with 421 when their credentials are revoked
        self.live = LiveConnections(ctx.bus, ctx.accounts.security)

    def _tls(self) -> ssl.SSLContext:
        st = self.ctx.settings
        if not (st.cert_path.exists() and st.key_path.exists()):
            make_self_signed(st.cert_path, st.key_path, st.hostname)
        return server_context(st.cert_path, st.key_path)

    def _config(self, *, submission: bool, implicit_tls: bool = False) -> SmtpConfig:
        st = self.ctx.settings
        return SmtpConfig(
            hostname=st.hostname,
            spool_dir=st.spool_dir / "smtp",
            submission=submission,
            implicit_tls=implicit_tls,
            tls_context=self.tls_context,
            max_message_size=st.smtp_max_message_size,
            # the larger limit only where big attachments can become links (files wired in)
            max_submission_size=st.smtp_max_submission_size if submission and self.deliverer.linker else None,
            max_recipients=st.smtp_max_recipients,
        )

    async def start(self) -> None:
        st = self.ctx.settings
        fixed_mmap_threshold()
        self.tls_context = self._tls()
        self.live.start()
        checker = make_inbound_checker(self.resolver, authserv_id=st.hostname) if st.smtp_inbound_auth else None
        translog = SqlTransactionLog(self.ctx.engine)
        mx_policies = SmtpPolicies(
            recipients=AccountRecipients(self.ctx, self.directory),
            deliverer=self.deliverer,
            inbound_checker=checker,
            translog=translog,
        )
        sub_policies = SmtpPolicies(
            recipients=AccountRecipients(self.ctx, self.directory),
            deliverer=self.deliverer,
            authenticator=AccountAuthenticator(self.ctx),
            senders=AccountSenders(self.ctx),
            links=AccountLinks(self.ctx),
            translog=translog,
        )
        plan = [
            ("smtp", self._config(submission=False), mx_policies, st.smtp_port),
            ("submission", self._config(submission=True), sub_policies, st.submission_port),
            ("submissions", self._config(submission=True, implicit_tls=True), sub_policies, st.submissions_port),
        ]
        try:
            for name, config, policies, port in plan:
                server = SmtpServer(
                    config,
                    policies,
                    host=st.listen_host,
                    port=port,
                    limiter=ConnectionLimiter(
                        max_concurrent_per_ip=st.smtp_max_connections_per_ip,
                        max_connections_per_window=st.smtp_max_connections_per_minute,
                    ),
                    live=self.live if config.submission else None,
                    reuse_port=st.reuse_port,
                )
                await server.start()
                self.servers[name] = server
        except OSError as exc:
            await self.stop()
            raise OSError(f"smtp cannot listen on {st.listen_host}: {exc.strerror or exc}") from None
        if self.worker is not None:
            await self.worker.start()
        self.ctx.metrics.watch_connections("smtp", lambda: sum(len(s.sessions) for s in self.servers.values()))
        self.running = True
        log.info("smtp listening on %s", self.addresses())

    async def stop(self) -> None:
        # Stop accepting first; sessions in DATA finish their delivery before the 250 (or are cut before it).
        for server in self.servers.values():
            await server.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.live.stop()
        self.running = False

    def bound_ports(self) -> dict[str, int]:
        return {f"{name}_port": srv.port for name, srv in self.servers.items()}

    def port(self, name: str) -> int:
        return self.servers[name].port

    def addresses(self) -> list[str]:
        host = self.ctx.settings.listen_host
        return [f"{name}={host}:{srv.port}" for name, srv in self.servers.items()]

    def health(self) -> dict:
        h = super().health()
        h["sessions"] = sum(len(s.sessions) for s in self.servers.values())
        if self.worker is not None:
            h["queue"] = self.worker.health()
        return h
