"""The shared parts every service gets: settings, the SQL database, the account store, the blob
store and the event bus. Services meet here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from suite.accounts.store import AccountStore
from suite.config import Settings
from suite.storage.blobs import BlobStore, make_backend
from suite.storage.bus import EventBus, make_bus
from suite.storage.db import make_engine, session_factory


@dataclass
class Context:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    accounts: AccountStore
    blobs: BlobStore
    bus: EventBus

    async def close(self) -> None:
        await self.bus.stop()
        close = getattr(self.blobs.backend, "close", None)
        if close is not None:
            await close()
        await self.engine.dispose()


async def open_context(settings: Settings, *, start_bus: bool = True) -> Context:
    engine = make_engine(settings.db_url)
    sessions = session_factory(engine)
    bus = make_bus(settings)
    if start_bus:
        await bus.start()
    return Context(
        settings=settings,
        engine=engine,
        sessions=sessions,
        accounts=AccountStore(sessions, settings),
        blobs=BlobStore(make_backend(settings), sessions),
        bus=bus,
    )
