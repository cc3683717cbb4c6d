"""Immediate revocation: which live connection a ``CredentialsRevoked`` event ends.

Every service that keeps a connection open after sign-in (IMAP, SMTP submission, the gateway's
WebSocket and EventSource streams) records the :class:`Credential` it authenticated with and
registers the connection in its process's :class:`LiveConnections`. One bus subscription per
registry hears the events of every process (Redis pub/sub or PostgreSQL NOTIFY carry them across
processes) and calls the matching connections' ``end`` callbacks, which close them their own way.

The race between a sign-in and a revocation: a connection takes :meth:`LiveConnections.mark`
*before* its credential is checked and passes it to :meth:`~LiveConnections.add`. The registry
keeps the revocations it heard recently, numbered; ``add`` replays those heard after the mark
against the new connection. A revocation heard before the mark was committed before the check
began (events are published after the commit, and heard after they are published), so the check
itself refused the credential; one heard after the mark either finds the connection registered
(``dispatch``) or is replayed by ``add`` — none is missed. The price: a sign-in whose check
overlapped a revocation of the same credential class (e.g. a password change during the login)
is ended too, and the client signs in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from suite.accounts.security import HEARTBEAT_SECONDS, ConnectionInfo
from suite.storage.events import CredentialsRevoked

log = structlog.get_logger("suite.revocation")

PASSWORD, APP_PASSWORD, WEB_SESSION = "password", "app_password", "web_session"
# how long a heard revocation is kept for sign-ins whose check was under way (``mark``/``add``):
# far longer than a credential check takes (a failed one sleeps, but a failed one registers nothing)
RECENT_SECONDS = 300.0
RECENT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Credential:
    """What a connection signed in with: the account password, one app password or one web session."""

    account_id: int
    kind: str  # PASSWORD | APP_PASSWORD | WEB_SESSION
    app_password_id: int | None = None
    session_id: str | None = None

    @classmethod
    def of_login(cls, account_id: int, app_password_id: int | None) -> Credential:
        """What a protocol login (IMAP, ManageSieve, SMTP AUTH, Basic) used: one app password or the password."""
        if app_password_id is not None:
            return cls(account_id, APP_PASSWORD, app_password_id=app_password_id)
        return cls(account_id, PASSWORD)

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
    row: asyncio.Task | None = field(default=None, repr=False)  # the write of its live_connections row


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
        self._heard = 0  # revocations heard so far (their sequence numbers)
        self._recent: deque[tuple[int, float, CredentialsRevoked]] = deque(maxlen=RECENT_MAX)

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self):
        return iter(list(self._conns.values()))

    def mark(self) -> int:
        """Take before checking the credentials of a connection that will be added; pass to ``add``."""
        self.start()
        return self._heard

    def add(self, conn: LiveConnection, mark: int | None = None) -> LiveConnection:
        """Register a signed-in connection. With ``mark`` (from :meth:`mark`, taken before the
        credential check), a revocation heard since that ends it ends it now — ``conn.end`` is
        called before ``add`` returns."""
        self._conns[conn.id] = conn
        self.start()
        if self._security is not None:
            c = conn.credential
            row = ConnectionInfo(conn.id, conn.service, conn.client, conn.ip, c.kind, c.app_password_id, conn.since)
            conn.row = self._write(self._security.connection_opened(row, c.account_id))
        if mark is not None:
            for seq, _, ev in self._recent:
                if seq > mark and not conn.ended and conn.credential.ended_by(ev):
                    self._end(conn, ev)
                    log.info("revocation.ended_on_register", account_id=ev.account_id, scope=ev.scope)
        return conn

    def discard(self, conn: LiveConnection | None) -> None:
        if conn is not None and self._conns.pop(conn.id, None) is not None and self._security is not None:
            self._write(self._closed(conn))

    async def _closed(self, conn: LiveConnection) -> None:
        if conn.row is not None:
            await asyncio.wait([conn.row])  # the delete after the insert, or the row would stay
        await self._security.connection_closed(conn.id)

    def _write(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(self._logged(coro))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return task

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

    @staticmethod
    def _end(conn: LiveConnection, ev: CredentialsRevoked) -> None:
        conn.ended = True
        try:
            conn.end(ev.reason or "credentials revoked")
        except Exception:  # one broken connection must not keep the others open
            log.exception("revocation.end_failed", service=conn.service)

    def _remember(self, ev: CredentialsRevoked) -> None:
        now = time.monotonic()
        while self._recent and self._recent[0][1] < now - RECENT_SECONDS:
            self._recent.popleft()
        self._heard += 1
        self._recent.append((self._heard, now, ev))

    def dispatch(self, ev: CredentialsRevoked) -> int:
        self._remember(ev)
        n = 0
        for conn in list(self._conns.values()):
            if not conn.ended and conn.credential.ended_by(ev, conn.id):
                n += 1
                self._end(conn, ev)
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
