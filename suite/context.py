"""The shared parts every service gets: settings, the SQL database, the account store, the blob
store and the event bus. Services meet here and nowhere else: whatever two services of one process
share is a field declared below, never an attribute set on a context from outside."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from suite.accounts.store import AccountStore
from suite.config import Settings
from suite.metrics import Metrics
from suite.storage.blobs import BlobStore, make_backend
from suite.storage.bus import EventBus, make_bus
from suite.storage.db import make_engine, session_factory

if TYPE_CHECKING:
    from suite.storage.network import NetworkBackend
    from suite.voip.hub import CallHub


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    accounts: AccountStore
    blobs: BlobStore
    bus: EventBus
    # The process's call hub, shared by the gateway's call routes and the voip service; made on
    # first use by ``suite.voip.hub.hub_for`` (a process that serves no calls never makes one).
    call_hub: CallHub | None = None
    # Wakes this process's outbound queue worker when mail is queued here (``suite.mail.queue``);
    # made when the worker starts, None while none runs.
    queue_wakeup: asyncio.Event | None = None
    # This process's Prometheus registry and instruments (``suite.metrics``); served on /metrics.
    metrics: Metrics = field(default_factory=Metrics)
    # The storage network when ``blob_backend = "network"`` (the same object as ``blobs.backend``):
    # its repair service, metrics and provider reloads reach it here; None on disk or one S3.
    network: NetworkBackend | None = None

    async def close(self) -> None:
        await self.bus.stop()
        await self.blobs.close()
        await self.engine.dispose()


async def open_context(settings: Settings, *, start_bus: bool = True) -> Context:
    engine = make_engine(settings.db_url)
    sessions = session_factory(engine)
    bus = make_bus(settings)
    if start_bus:
        await bus.start()
    network = None
    if settings.blob_backend == "network":
        from suite.storage.network import NetworkBackend

        network = NetworkBackend.from_settings(settings, engine=engine)
    return Context(
        settings=settings,
        engine=engine,
        sessions=sessions,
        accounts=AccountStore(sessions, settings, bus),
        blobs=BlobStore(network or make_backend(settings), sessions),
        bus=bus,
        network=network,
    )
