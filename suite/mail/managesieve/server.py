"""The asyncio ManageSieve service (``managesieve``, port ``managesieve_port``, 4190 by default,
STARTTLS, RFC 5804 §1.8). Each connection runs one :class:`~.session.ManageSieveSession`."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import structlog

from suite.accounts.revocation import LiveConnection, LiveConnections
from suite.service import Service
from suite.tls import make_self_signed, server_context

from .session import ManageSieveSession, Shared

log = structlog.get_logger("suite.managesieve")
READ_SIZE = 65536


class ManageSieveService(Service):
    name = "managesieve"

    def __init__(self, ctx, *, auth_delay: float = 1.0) -> None:
        super().__init__(ctx)
        self.shared = Shared(ctx, auth_delay=auth_delay)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._sessions: set[ManageSieveSession] = set()
        self.ssl_context: ssl.SSLContext | None = None
        self.port: int | None = None
        # signed-in connections, ended (BYE) when their credentials are revoked (issue 16)
        self.live = LiveConnections(ctx.bus, ctx.accounts.security)

    async def start(self) -> None:
        st = self.ctx.settings
        if not (st.cert_path.exists() and st.key_path.exists()):
            make_self_signed(st.cert_path, st.key_path, st.hostname)
        self.ssl_context = server_context(st.cert_path, st.key_path)
        try:
            self._server = await asyncio.start_server(
                self._accept,
                st.listen_host,
                st.managesieve_port,
                reuse_address=True,
                reuse_port=st.reuse_port or None,
                limit=READ_SIZE,
            )
        except OSError as exc:
            raise OSError(f"managesieve cannot listen on {st.listen_host}: {exc.strerror}") from None
        self.port = self._server.sockets[0].getsockname()[1]
        self.live.start()
        self.running = True
        log.info("managesieve.listening", port=self.port)

    def bound_ports(self) -> dict[str, int]:
        return {"managesieve_port": self.port} if self.port is not None else {}

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions):
            if not s.closed:
                await s.bye("Server shutting down.")
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        await self.live.stop()
        self.running = False

    def addresses(self) -> list[str]:
        return [f"sieve://{self.ctx.settings.listen_host}:{self.port}"]

    def health(self) -> dict:
        return {"running": self.running, "connections": len(self._sessions)}

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        ip = peer[0] if peer else None

        async def write(chunks: list[bytes]) -> None:
            writer.writelines(chunks)
            await writer.drain()

        s = ManageSieveSession(self.shared, write, peer=ip, tls=False)
        self._sessions.add(s)
        started = time.monotonic()
        revoked = asyncio.Event()
        reason = ["credentials revoked"]

        def end(why: str) -> None:
            reason[0] = why
            revoked.set()

        registered: LiveConnection | None = None
        read: asyncio.Task | None = None
        ended = asyncio.ensure_future(revoked.wait())
        try:
            await s.start()
            while not s.closed:
                if revoked.is_set():
                    # RFC 5804 §1.3: BYE, then the server closes the connection
                    await s.bye(f"Signed out: {reason[0]}.", "")
                    s.outcome = "revoked"
                    break
                read = asyncio.ensure_future(reader.read(READ_SIZE))
                done, _ = await asyncio.wait({read, ended}, timeout=s.timeout, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    if ended in done:
                        continue
                    await s.bye("Disconnected for inactivity.")
                    s.outcome = "timeout"
                    break
                data = read.result()
                if not data:
                    break
                mark = self.live.mark()
                await s.feed(data)
                if s.credential is not None and registered is None:
                    registered = self.live.add(LiveConnection(s.credential, "managesieve", end, ip=ip), mark)
                if s.starttls_requested and not s.closed:
                    await writer.drain()
                    buffered = getattr(reader, "_buffer", None)
                    if buffered:
                        buffered.clear()  # plaintext pipelined after STARTTLS is dropped
                    await writer.start_tls(self.ssl_context, ssl_handshake_timeout=30)  # type: ignore[arg-type]
                    s.tls_started()
                    await s.after_starttls()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            s.outcome = f"error:{type(exc).__name__}"
        except asyncio.CancelledError:
            s.outcome = "shutdown"
        except Exception:
            log.exception("managesieve.connection_failed", peer=ip)
            s.outcome = "internal-error"
        finally:
            for t in (read, ended):
                if t is not None and not t.done():
                    t.cancel()
            self.live.discard(registered)
            self._sessions.discard(s)
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 2)
            log.info(
                "managesieve.connection",
                peer=ip,
                account=s.account.address if s.account else None,
                tls=s.tls,
                auth_failures=s.auth_failures,
                outcome=s.outcome,
                seconds=round(time.monotonic() - started, 3),
            )
