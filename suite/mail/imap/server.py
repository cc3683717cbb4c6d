"""The asyncio IMAP (STARTTLS, port ``imap_port``) and IMAPS (implicit TLS, ``imaps_port``) server.

Each connection runs one :class:`~suite.mail.imap.session.ImapSession`: read, feed, write.  The
session answers APPEND's tagged OK only after the store's ``deliver`` returned (fsynced and
committed).  One bus subscription per server feeds the :class:`~suite.mail.imap.session.Hub`, which
wakes the sessions that have the changed mailbox selected (IDLE gets its updates at once).

Stop is graceful: listeners close, idle connections get ``* BYE Server shutting down``, a
connection in the middle of a command finishes it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import structlog

from suite.accounts.revocation import LiveConnection, LiveConnections
from suite.mail.store import MailStore
from suite.service import Service
from suite.tls import make_self_signed, server_context

from .limits import ImapLimits
from .ports import MailStorePort
from .session import ImapSession, Shared

log = structlog.get_logger("suite.imap")

READ_SIZE = 65536


class ImapService(Service):
    name = "imap"

    def __init__(
        self,
        ctx,
        *,
        store: MailStorePort | None = None,
        limits: ImapLimits | None = None,
        auth_delay: float = 1.0,
    ) -> None:
        super().__init__(ctx)
        # the IMAP session sees the mail store only through its port; the concrete store is wired here
        self.shared = Shared(ctx, store or MailStore(ctx), limits=limits, auth_delay=auth_delay)
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: set[_Connection] = set()
        self._hub_task: asyncio.Task | None = None
        # signed-in connections, ended with * BYE when their credentials are revoked (any process)
        self.live = LiveConnections(ctx.bus, ctx.accounts.security)
        self.ssl_context: ssl.SSLContext | None = None
        self.port: int | None = None
        self.tls_port: int | None = None
        self.stopping = False

    def _ssl(self) -> ssl.SSLContext:
        st = self.ctx.settings
        if not (st.cert_path.exists() and st.key_path.exists()):
            make_self_signed(st.cert_path, st.key_path, st.hostname)
        return server_context(st.cert_path, st.key_path)

    async def start(self) -> None:
        st = self.ctx.settings
        self.ssl_context = self._ssl()
        self._hub_task = asyncio.get_running_loop().create_task(self.shared.hub.run(self.ctx.bus))
        self.live.start()
        try:
            plain = await asyncio.start_server(
                lambda r, w: self._accept(r, w, tls=False),
                st.listen_host,
                st.imap_port,
                reuse_address=True,
                reuse_port=st.reuse_port or None,
                limit=READ_SIZE,
            )
            self._servers.append(plain)
            implicit = await asyncio.start_server(
                lambda r, w: self._accept(r, w, tls=True),
                st.listen_host,
                st.imaps_port,
                ssl=self.ssl_context,
                reuse_address=True,
                reuse_port=st.reuse_port or None,
                limit=READ_SIZE,
                ssl_handshake_timeout=30,
            )
            self._servers.append(implicit)
        except OSError as exc:
            await self.stop()
            raise OSError(f"imap cannot listen on {st.listen_host}: {exc.strerror}") from None
        self.port = plain.sockets[0].getsockname()[1]
        self.tls_port = implicit.sockets[0].getsockname()[1]
        self.ctx.metrics.watch_connections("imap", lambda: len(self._conns))
        self.running = True
        log.info("imap.listening", port=self.port, tls_port=self.tls_port)

    def bound_ports(self) -> dict[str, int]:
        assert self.port is not None and self.tls_port is not None, "not started"
        return {"imap_port": self.port, "imaps_port": self.tls_port}

    async def stop(self) -> None:
        self.stopping = True
        for srv in self._servers:
            srv.close()
        for c in list(self._conns):
            c.shutdown()
        if self._conns:
            await asyncio.wait([c.task for c in self._conns if c.task], timeout=25)
        for srv in self._servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self._servers.clear()
        if self._hub_task is not None:
            self._hub_task.cancel()
            with contextlib.suppress(BaseException):
                await self._hub_task
            self._hub_task = None
        await self.live.stop()
        self.running = False

    def addresses(self) -> list[str]:
        host = self.ctx.settings.listen_host
        return [f"imap://{host}:{self.port}", f"imaps://{host}:{self.tls_port}"]

    def health(self) -> dict:
        return {"running": self.running, "connections": len(self._conns)}

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool) -> None:
        if self.stopping:
            writer.close()
            return
        conn = _Connection(self, reader, writer, tls)
        conn.task = asyncio.current_task()
        self._conns.add(conn)
        try:
            await conn.run()
        finally:
            self._conns.discard(conn)


class _Connection:
    def __init__(self, service: ImapService, reader, writer, tls: bool) -> None:
        self.service = service
        self.reader: asyncio.StreamReader = reader
        self.writer: asyncio.StreamWriter = writer
        peer = writer.get_extra_info("peername")
        self.peer = peer[0] if peer else None
        self.session = ImapSession(service.shared, self._write, peer=self.peer, tls=tls)
        self.stop_event = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.revoked = asyncio.Event()
        self.revoked_reason = ""
        self.live: LiveConnection | None = None
        # waiting for input outside IDLE: a plain read of the stream, which stop, revocation and
        # the inactivity timer interrupt (cancel) — no tasks or asyncio.wait per command
        self._waiting = False
        self._interrupted = False
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def _write(self, chunks: list) -> None:
        self.writer.writelines(chunks)
        await self.writer.drain()

    def shutdown(self) -> None:
        self.stop_event.set()
        self._interrupt()

    def _revoke(self, reason: str) -> None:
        self.revoked_reason = reason
        self.revoked.set()
        self._interrupt()

    def _interrupt(self) -> None:
        """End a wait in :meth:`_read_input` (never a running command)."""
        if self._waiting and not self._interrupted and self.task is not None:
            self._interrupted = True
            self.task.cancel()

    def _on_timer(self) -> None:
        self._timer = None
        if not self._waiting:
            return  # the next wait arms it again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            self._interrupt()
        else:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    async def _read_input(self, timeout: float) -> bytes | None:
        """The client's next bytes, or None when stop, revocation or ``timeout`` seconds without
        input ended the wait."""
        if self.stop_event.is_set() or self.revoked.is_set():
            return None
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + timeout
        timer = self._timer
        if timer is not None and timer.when() > self._deadline:
            timer.cancel()
            timer = self._timer = None
        if timer is None:
            self._timer = loop.call_at(self._deadline, self._on_timer)
        self._waiting = True
        try:
            return await self.reader.read(READ_SIZE)
        except asyncio.CancelledError:
            task = self.task
            if not self._interrupted or task is None or task.uncancel() > 0:
                raise  # cancelled from outside as well
            return None
        finally:
            self._waiting = False
            self._interrupted = False

    def _register(self, mark: int) -> None:
        """Once signed in, the connection is registered under its credential for revocation (with the
        registry's mark from before the command that signed in: a revocation in between ends it)."""
        cred = self.session.credential
        if cred is not None and self.live is None:
            self.live = self.service.live.add(LiveConnection(cred, "imap", self._revoke, ip=self.peer), mark)

    async def run(self) -> None:
        s = self.session
        started = time.monotonic()
        hub = self.service.shared.hub
        hub.sessions.add(s)
        read: asyncio.Task | None = None
        stop = asyncio.ensure_future(self.stop_event.wait())
        revoked = asyncio.ensure_future(self.revoked.wait())
        check = self.service.ctx.settings.imap_idle_check_interval
        active = time.monotonic()  # the inactivity timeout counts from here
        try:
            await s.start()
            while not s.closed:
                if read is None and not s.idling:
                    # RFC 9051 §5.4: the inactivity timeout (the old path below while IDLE)
                    data = await self._read_input(s.timeout)
                    if data is None:
                        if self.stop_event.is_set():
                            await s.bye("Server shutting down.")
                            s.outcome = "shutdown"
                        elif self.revoked.is_set():
                            await self._bye_revoked()
                        else:
                            await s.bye("Disconnected for inactivity.")
                            s.outcome = "timeout"
                        break
                    if not data:
                        s.outcome = s.outcome if s.outcome != "authenticated" else "client-closed"
                        break
                    if await self._input(data):
                        break
                    continue
                if read is None:
                    read = asyncio.ensure_future(self.reader.read(READ_SIZE))
                waits = {read, stop, revoked}
                wake = None
                timeout = s.timeout
                if s.idling:
                    wake = asyncio.ensure_future(s.wakeup.wait())
                    waits.add(wake)
                    # the periodic re-check of an idling session (Dovecot's mailbox_idle_check_interval):
                    # a change whose bus event was lost is still reported within `check` seconds
                    timeout = min(check, max(0.0, s.timeout - (time.monotonic() - active)))
                done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if wake is not None and wake not in done:
                    wake.cancel()
                if not done and s.idling and time.monotonic() - active < s.timeout:
                    s.notify()
                    await s.on_wakeup()
                    continue
                active = time.monotonic()
                if stop in done:
                    await s.bye("Server shutting down.")
                    s.outcome = "shutdown"
                    break
                if revoked in done:
                    await self._bye_revoked()
                    break
                if not done:
                    await s.bye("Disconnected for inactivity.")
                    s.outcome = "timeout"
                    break
                if wake is not None and wake in done:
                    await s.on_wakeup()
                if read in done:
                    data = read.result()
                    read = None
                    if not data:
                        s.outcome = s.outcome if s.outcome != "authenticated" else "client-closed"
                        break
                    if await self._input(data):
                        break
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            s.outcome = f"error:{type(exc).__name__}"
        except Exception:
            log.exception("imap.connection_failed", peer=self.peer)
            s.outcome = "internal-error"
        finally:
            if self._timer is not None:
                self._timer.cancel()
            for t in (read, stop, revoked):
                if t is not None and not t.done():
                    t.cancel()
            s.close()
            hub.sessions.discard(s)
            self.service.live.discard(self.live)
            with contextlib.suppress(Exception):
                self.writer.close()
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            # one line per connection, never a password (RFC-agnostic house rule)
            log.info(
                "imap.connection",
                peer=self.peer,
                account=s.account.address if s.account else None,
                tls=s.tls,
                commands=s.stats.commands,
                bad=s.stats.bad,
                auth_failures=s.stats.auth_failures,
                outcome=s.outcome,
                seconds=round(time.monotonic() - started, 3),
            )

    async def _input(self, data: bytes) -> bool:
        """Run the client's commands in ``data``; True when the connection ends."""
        s = self.session
        mark = self.service.live.mark()
        await s.feed(data)
        self._register(mark)
        if self.revoked.is_set() and not s.closed:
            await self._bye_revoked()
            return True
        if s.starttls_requested:
            await self._starttls()
        if self.stop_event.is_set() and not s.closed:
            await s.bye("Server shutting down.")
            s.outcome = "shutdown"
        return False

    async def _bye_revoked(self) -> None:
        # RFC 9051 §7.1.5: BYE, then the server closes the connection
        await self.session.bye(f"Signed out: {self.revoked_reason}.")
        self.session.outcome = "revoked"

    async def _starttls(self) -> None:
        await self.writer.drain()
        # RFC 9051 §11.1: plaintext the client pipelined after STARTTLS is never honoured; drop what
        # the stream reader already buffered as well (the session dropped its own buffer).
        buffered = getattr(self.reader, "_buffer", None)
        if buffered:
            buffered.clear()
        assert self.service.ssl_context is not None  # set by start() before any connection
        await self.writer.start_tls(self.service.ssl_context, ssl_handshake_timeout=30)
        self.session.tls_started()
