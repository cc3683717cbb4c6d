"""Event bus: publish/subscribe of small typed events.

Backends: in-process (one ``suite serve`` process), the supervisor's broker for the workers of
``suite serve --workers`` (a socket pair per worker, no Redis needed: ``suite/workers.py``),
PostgreSQL LISTEN/NOTIFY and Redis pub/sub (several processes sharing one database). With the
networked backends a process hears its own events back from the server, so local and remote
subscribers take one path.

Delivery is best effort, and what is lost is made up: a subscription whose bus reconnected, or whose
process heard a peer's ``Resync`` (published by a process whose own publish failed), yields a
:class:`Resync` marker and has ``missed`` set; its reader re-reads state from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import structlog

from suite.storage.events import Event, event_class

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

log = structlog.get_logger("suite.bus")

CHANNEL = "suite_events"
QUEUE_SIZE = 10_000


class Resync(Event):
    """Events may have been lost: the marker a :class:`Subscription` yields when its bus reconnected
    (events published while it was down never reached it), and what a process publishes once it can
    again after a publish of its own was lost (every process's subscriptions then get the marker).
    The reader re-reads state from the store (as Dovecot does on ``mailbox_idle_check_interval``);
    ``Subscription.missed`` tells the same to a reader that is busy with other events."""

    topic: ClassVar[str] = "bus.resync"


_RESYNC = Resync()


class Subscription:
    """An async iterator of events of the subscribed topics. ``missed`` is set when events may have
    been lost — a slow reader's queue was full, or the bus reconnected (then a :class:`Resync` is also
    queued, to wake a reader that waits); the reader should then clear it and re-read state from the
    store."""

    def __init__(self, bus: _BaseBus, topics: frozenset[str]) -> None:
        self._bus = bus
        self.topics = topics
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self.missed = False

    def _offer(self, event: Event) -> None:
        if self.topics and event.topic not in self.topics:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.missed = True

    def _resync(self) -> None:
        self.missed = True
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes its reader anyway
            self.queue.put_nowait(_RESYNC)

    async def get(self, timeout: float | None = None) -> Event:
        if timeout is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._bus._subs.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventBus(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, event: Event) -> None: ...
    def subscribe(self, *kinds: type[Event] | str) -> Subscription: ...
    async def ping(self) -> None:
        """Raise when the bus cannot carry events now (``/readyz``)."""
        ...


def encode(event: Event) -> str:
    return json.dumps({"t": event.topic, "d": event.model_dump(mode="json")}, separators=(",", ":"))


def decode(payload: str | bytes) -> Event | None:
    try:
        obj = json.loads(payload)
        cls = event_class(obj["t"])
        return cls.model_validate(obj["d"]) if cls else None
    except Exception:  # a foreign or malformed message on our channel: drop it, never crash the listener
        log.warning("bus.bad_payload")
        return None


class _BaseBus:
    def __init__(self) -> None:
        self._subs: set[Subscription] = set()
        self._owed: asyncio.Task | None = None  # publishes the Resync owed for a lost event
        self._closing = False

    async def _send(self, payload: str) -> None:
        """Put one encoded event on the wire (the networked backends); raise when it cannot."""
        raise NotImplementedError

    async def publish(self, event: Event) -> None:
        try:
            await self._send(encode(event))
        except Exception as exc:
            self._lost(event, exc)

    def _lost(self, event: Event, exc: Exception) -> None:
        """An event is a hint to look again; the change it announces is committed already. A bus that
        is down (a database or Redis restart) must not turn that committed write into an error for the
        client, who would retry it and store it twice (found by tests/scale/test_pg_restart.py): the
        event is logged as lost, and a :class:`Resync` is owed — published as soon as the bus takes it,
        so every process's subscribers re-read what the lost event announced."""
        log.warning("bus.publish_lost", topic=event.topic, error=f"{exc.__class__.__name__}: {exc}"[:200])
        if not self._closing and (self._owed is None or self._owed.done()):
            self._owed = asyncio.get_running_loop().create_task(self._pay_resync())

    async def _pay_resync(self) -> None:
        delay = 0.2
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._send(encode(Resync()))
            except Exception:
                delay = min(delay * 2, 5)
                continue
            log.info("bus.resync_published")
            return

    async def _stop_owed(self) -> None:
        self._closing = True
        if self._owed is not None:
            self._owed.cancel()
            with contextlib.suppress(BaseException):
                await self._owed

    def subscribe(self, *kinds: type[Event] | str) -> Subscription:
        topics = frozenset(k if isinstance(k, str) else k.topic for k in kinds)
        sub = Subscription(self, topics)
        self._subs.add(sub)
        return sub

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, Resync):  # a process lost an event it published (see _lost)
            self._resync()
            return
        for sub in list(self._subs):
            sub._offer(event)

    def _resync(self) -> None:
        """The bus listens again after a lost connection: every subscriber re-reads the store, for
        what was published while it could not hear (the listener is back first, so nothing is missed
        between that re-read and the next event)."""
        log.info("bus.resync", subscriptions=len(self._subs))
        for sub in list(self._subs):
            sub._resync()

    def _dispatch_raw(self, payload: str | bytes) -> None:
        event = decode(payload)
        if event is not None:
            self._dispatch(event)


class MemoryBus(_BaseBus):
    """In-process bus for a single ``suite serve``."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, event: Event) -> None:
        self._dispatch(event)

    async def ping(self) -> None:
        pass


class PostgresBus(_BaseBus):
    """LISTEN/NOTIFY on one channel; a dedicated asyncpg connection listens, another publishes."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self._dsn = dsn
        self._listen = None
        self._pub: Any = None  # asyncpg.Connection (asyncpg ships no types)
        self._lock = asyncio.Lock()
        self._watch: asyncio.Task | None = None

    async def _connect_listener(self) -> None:
        import asyncpg

        conn = await asyncpg.connect(self._dsn)
        await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, payload: self._dispatch_raw(payload))
        conn.add_termination_listener(lambda _c: self._on_lost())
        self._listen = conn

    def _on_lost(self) -> None:
        if not self._closing and (self._watch is None or self._watch.done()):
            self._watch = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.2
        while not self._closing:
            try:
                await self._connect_listener()
                log.info("bus.reconnected")
                self._resync()
                return
            except Exception:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5)

    async def start(self) -> None:
        import asyncpg

        await self._connect_listener()
        self._pub = await asyncpg.connect(self._dsn)

    async def stop(self) -> None:
        await self._stop_owed()
        for conn in (self._listen, self._pub):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()

    async def ping(self) -> None:
        if self._listen is None or self._listen.is_closed():
            raise ConnectionError("bus listener is not connected")

    async def _send(self, payload: str) -> None:
        import asyncpg

        async with self._lock:
            if self._pub is None or self._pub.is_closed():
                self._pub = await asyncpg.connect(self._dsn)
            try:
                await self._pub.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError):
                # a connection broken by a server restart: one fresh connection, once
                self._pub = await asyncpg.connect(self._dsn)
                await self._pub.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


class RedisBus(_BaseBus):
    def __init__(self, url: str) -> None:
        super().__init__()
        self._url = url
        self._redis: Redis | None = None
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        import redis.asyncio as aioredis

        redis = self._redis = aioredis.from_url(self._url)
        # subscribe confirmations are read: redis-py re-subscribes on every reconnect (inside its
        # retries, unseen by us), and a confirmation after the first one is such a reconnect
        pubsub = self._pubsub = redis.pubsub(ignore_subscribe_messages=False)
        await pubsub.subscribe(CHANNEL)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        assert self._pubsub is not None
        subscribed = False
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("bus.redis_error")
                await asyncio.sleep(0.5)
                continue
            if not msg:
                continue
            if msg.get("type") == "message":
                self._dispatch_raw(msg["data"])
            elif msg.get("type") == "subscribe":
                if subscribed:  # listening again after a lost connection
                    log.info("bus.reconnected")
                    self._resync()
                subscribed = True

    async def stop(self) -> None:
        await self._stop_owed()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    async def _send(self, payload: str) -> None:
        if self._redis is None:  # a publisher that never listens (the CLI) connects on first use
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self._url)
        await self._redis.publish(CHANNEL, payload)

    async def ping(self) -> None:
        if self._redis is None or self._task is None or self._task.done():
            raise ConnectionError("bus is not running")
        await self._redis.ping()


#: The longest event line the broker and its clients read (a call signal carries an SDP of a few KiB).
LINE_LIMIT = 4 * 1024**2


class SocketBus(_BaseBus):
    """A worker's end of ``suite serve --workers``: newline-delimited events over the socket pair
    the supervisor handed down (``bus_fd``); the supervisor's broker sends every line it reads to
    every worker, the sender included. The supervisor outlives its workers (a worker that loses it
    is ended by the kernel, see ``suite.workers``), so there is no reconnect."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        import socket

        sock = socket.socket(fileno=self._fd)
        reader, self._writer = await asyncio.open_unix_connection(sock=sock, limit=LINE_LIMIT)
        self._task = asyncio.get_running_loop().create_task(self._run(reader))

    async def _run(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):  # an over-long line: skip it
                log.warning("bus.line_too_long")
                continue
            if not line:
                log.warning("bus.broker_gone")
                return
            self._dispatch_raw(line)

    async def stop(self) -> None:
        await self._stop_owed()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._writer is not None:
            self._writer.close()

    async def _send(self, payload: str) -> None:
        if self._writer is None:
            raise ConnectionError("bus is not started")
        self._writer.write(payload.encode() + b"\n")
        await self._writer.drain()

    async def ping(self) -> None:
        if self._writer is None or self._task is None or self._task.done():
            raise ConnectionError("bus broker is not connected")


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    """postgresql+asyncpg://u@h/db → postgresql://u@h/db"""
    scheme, rest = sqlalchemy_url.split("://", 1)
    return "postgresql://" + rest


def make_bus(settings) -> EventBus:
    kind = resolved_kind(settings)
    url = settings.db_url
    if kind == "memory":
        return MemoryBus()
    if kind == "postgres":
        if not url.startswith("postgresql"):
            raise ValueError("bus_backend=postgres needs a PostgreSQL database_url")
        return PostgresBus(asyncpg_dsn(url))
    if kind == "redis":
        return RedisBus(settings.redis_url)
    if kind == "socket":
        if settings.bus_fd < 0:
            raise ValueError("bus_backend=socket is set by `suite serve --workers` for its workers (bus_fd)")
        return SocketBus(settings.bus_fd)
    raise ValueError(f"unknown bus backend {kind!r} (have: memory, postgres, redis, socket)")


def resolved_kind(settings) -> str:
    """The backend ``make_bus`` picks for these settings ("auto" resolved)."""
    kind = settings.bus_backend
    if kind == "auto":
        return "postgres" if settings.db_url.startswith("postgresql") else "memory"
    return kind
