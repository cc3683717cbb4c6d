"""Immediate revocation: which live connection a ``CredentialsRevoked`` event ends.

Every service that keeps a connection open after sign-in (IMAP, SMTP submission, the gateway's
WebSocket and EventSource streams) records the :class:`Credential` it authenticated with and
registers the connection in its process's :class:`LiveConnections`. One bus subscription per
registry hears the events of every process (Redis pub/sub or PostgreSQL NOTIFY carry them across
processes) and calls the matching connections' ``end`` callbacks, which close them their own way.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from suite.accounts.security import HEARTBEAT_SECONDS, ConnectionInfo
from suite.storage.events import CredentialsRevoked

log = structlog.get_logger("suite.revocation")

PASSWORD, APP_PASSWORD, WEB_SESSION = "password", "app_password", "web_session"


@dataclass(frozen=True, slots=True)
class Credential:
    """What a connection signed in with: the account password, one app password or one web session."""

    account_id: int
    kind: str  # PASSWORD | APP_PASSWORD | WEB_SESSION
    app_password_id: int | None = None
    session_id: str | None = None

    def ended_by(self, ev: CredentialsRevoked, connection_id: str | None = None) -> bool:
        if ev.account_id != self.account_id:
            return False
        if ev.scope == "account":
            return True
        if ev.scope == "password":
            # a new password ends what the old one opened, and every web session (set_password
            # deletes them); app passwords are separate credentials and stay valid
            return self.kind in (PASSWORD, WEB_SESSION)
        if ev.scope == "app_password":
            return self.kind == APP_PASSWORD and self.app_password_id == ev.app_password_id
        if ev.scope == "web_session":
            return self.kind == WEB_SESSION and self.session_id == ev.session_id
        if ev.scope == "connection":
            return connection_id is not None and connection_id == ev.connection_id
        return False


@dataclass(eq=False)
class LiveConnection:
    """One open, signed-in connection of this process."""

    credential: Credential
    service: str  # imap, smtp, calls, eventsource …
    end: Callable[[str], None]  # called once with the reason; must not block
    ip: str | None = None
    client: str = ""
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    since: float = field(default_factory=time.time)
    ended: bool = False


class LiveConnections:
    """The signed-in connections of one service in one process, and the bus task that ends them.

    With the account store's ``security`` given, each connection is also a row of the
    ``live_connections`` table (the Sessions screen lists them from any process): inserted when it
    registers, deleted when it ends, its ``seen_at`` refreshed every ``HEARTBEAT_SECONDS`` by this
    registry so that the rows of a process that died age out. A table rather than a question over
    the bus: the bus has no replies and does not redeliver, so a listing would have to wait out
    every process that might answer; the table answers at once and costs a write per sign-in."""

    def __init__(self, bus, security=None) -> None:
        self._bus = bus
        self._security = security
        self._conns: dict[str, LiveConnection] = {}
        self._task: asyncio.Task | None = None
        self._beat: asyncio.Task | None = None
        self._writes: set[asyncio.Task] = set()

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self):
        return iter(list(self._conns.values()))

    def add(self, conn: LiveConnection) -> LiveConnection:
        self._conns[conn.id] = conn
        self.start()
        if self._security is not None:
            c = conn.credential
            row = ConnectionInfo(conn.id, conn.service, conn.client, conn.ip, c.kind, c.app_password_id, conn.since)
            self._write(self._security.connection_opened(row, c.account_id))
        return conn

    def discard(self, conn: LiveConnection | None) -> None:
        if conn is not None and self._conns.pop(conn.id, None) is not None and self._security is not None:
            self._write(self._security.connection_closed(conn.id))

    def _write(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(self._logged(coro))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    @staticmethod
    async def _logged(coro) -> None:
        try:
            await coro
        except Exception:  # the registry is for display; a failed write must not end a connection
            log.warning("revocation.registry_write_failed", exc_info=True)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            await self._logged(self._security.connections_alive(list(self._conns)))

    def start(self) -> None:
        """Subscribe now (idempotent; needs a running loop). Called by the service's start, and by
        ``add`` for registries of apps run without their service (tests)."""
        if self._task is None or self._task.done():
            sub = self._bus.subscribe(CredentialsRevoked)
            self._task = asyncio.get_running_loop().create_task(self._run(sub))
        if self._security is not None and (self._beat is None or self._beat.done()):
            self._beat = asyncio.get_running_loop().create_task(self._heartbeat())

    async def stop(self) -> None:
        for task in (self._task, self._beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        self._task = self._beat = None
        if self._writes:
            await asyncio.wait(list(self._writes), timeout=5)

    def dispatch(self, ev: CredentialsRevoked) -> int:
        n = 0
        for conn in list(self._conns.values()):
            if not conn.ended and conn.credential.ended_by(ev, conn.id):
                conn.ended = True
                n += 1
                try:
                    conn.end(ev.reason or "credentials revoked")
                except Exception:  # one broken connection must not keep the others open
                    log.exception("revocation.end_failed", service=conn.service)
        if n:
            log.info("revocation.ended", account_id=ev.account_id, scope=ev.scope, connections=n)
        return n

    async def _run(self, sub) -> None:
        try:
            while True:
                ev = await sub.get()
                if isinstance(ev, CredentialsRevoked):
                    self.dispatch(ev)
        finally:
            sub.close()
