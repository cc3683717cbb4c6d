"""A small base for the asyncio services (smtp, imap, gateway, …) and the runner of ``suite serve``.

A service is built from the shared ``Context``; ``start`` returns once it listens, ``stop`` lets
in-flight work finish (nothing acknowledged is lost) and then closes.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
from typing import ClassVar

import structlog

from suite.context import Context

log = structlog.get_logger("suite.service")

# name → "module:Class"; imported only when the service is asked for, so `--only imap` does not load
# the web stack and the services never import each other.
REGISTRY: dict[str, str] = {
    "gateway": "suite.gateway.service:GatewayService",
    "imap": "suite.mail.imap.server:ImapService",
    "smtp": "suite.mail.smtp.service:SmtpService",
    "voip": "suite.voip.service:VoipService",
    "files": "suite.files.housekeeper:FilesHousekeeper",
    "managesieve": "suite.mail.managesieve.server:ManageSieveService",
    # repair / rebalance / scrub of the storage network; idle unless blob_backend = "network"
    "storage": "suite.storage.network.service:StorageService",
}


class Service(abc.ABC):
    name: ClassVar[str]

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.running = False

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    def addresses(self) -> list[str]:
        return []

    def bound_ports(self) -> dict[str, int]:
        """The ports it listens on, by setting name (``{"imap_port": 2143}``): `suite serve --workers`
        starts the other workers on the ports the first one bound (a configured 0 included)."""
        return {}

    def health(self) -> dict:
        return {"running": self.running}


def service_class(name: str) -> type[Service]:
    target = REGISTRY.get(name)
    if target is None:
        raise KeyError(name)
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


class Runner:
    """Starts services in order, stops them in reverse."""

    def __init__(self, ctx: Context, names: list[str]) -> None:
        self.ctx = ctx
        from suite.wiring import ports

        # each service gets the other services' capabilities it declared a port for (suite/wiring.py)
        self.services: list[Service] = [service_class(n)(ctx, **ports(n, ctx)) for n in names]

    async def start(self) -> None:
        started: list[Service] = []
        try:
            for svc in self.services:
                await svc.start()
                svc.running = True
                started.append(svc)
        except BaseException:
            for svc in reversed(started):
                await svc.stop()
            raise

    async def stop(self) -> None:
        for svc in reversed(self.services):
            if svc.running:
                try:
                    await asyncio.wait_for(svc.stop(), timeout=30)
                except Exception:
                    log.exception("service.stop_failed", service=svc.name)
                svc.running = False

    def health(self) -> dict[str, dict]:
        return {svc.name: svc.health() for svc in self.services}
