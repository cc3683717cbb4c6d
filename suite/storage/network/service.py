"""The ``storage`` service of ``suite serve``: runs the repair/rebalance loop and the scrub of the
storage network (``suite.storage.network.repair``). Idle unless ``blob_backend = "network"``.

Safe in several processes: work is claimed per blob with a conditional UPDATE that moves its due
time forward by a lease (see ``Repairer._claim``), so two processes never copy the same blob at
once and a crashed process's claims run out."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from suite.service import Service
from suite.storage.network.backend import NetworkBackend
from suite.storage.network.repair import Repairer

log = structlog.get_logger("suite.storage")
POLL = 5.0  # seconds between looks at the repair queue


class StorageService(Service):
    name = "storage"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.enabled = ctx.network is not None
        self.net: NetworkBackend | None = ctx.network
        self.repairer: Repairer | None = None
        self._task: asyncio.Task | None = None
        self.last_sweep = 0.0
        self.stats = {"queued": 0, "fixed": 0, "scrubbed": 0, "bad": 0}

    async def start(self) -> None:
        if not self.enabled:
            return
        assert self.net is not None
        st = self.ctx.settings.storage
        self.repairer = Repairer(self.net, bandwidth_limit=st.bandwidth_limit, metrics=self.ctx.metrics)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def round(self, *, sweep: bool) -> None:
        assert self.repairer is not None
        st = self.ctx.settings.storage  # read each round: a provider reload may change it
        self.repairer.throttle.rate = st.bandwidth_limit
        if sweep:
            self.stats["queued"] += await self.repairer.sweep()
            checked, bad = await self.repairer.scrub(st.scrub_sample)
            self.stats["scrubbed"] += checked
            self.stats["bad"] += bad
            self.last_sweep = time.monotonic()
        self.stats["fixed"] += await self.repairer.run_due()

    async def _loop(self) -> None:
        while True:
            interval = self.ctx.settings.storage.repair_interval
            try:
                await self.round(sweep=time.monotonic() - self.last_sweep >= interval)
            except Exception:
                log.exception("storage.repair_round_failed")
            await asyncio.sleep(min(POLL, interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def health(self) -> dict:
        h: dict = {"running": self.running, "enabled": self.enabled, **self.stats}
        if self.net is not None:
            h["providers"] = {
                p.name: {"state": p.state, "up": p.up(), "latency": round(p.ewma, 4), "failures": p.failures}
                for p in self.net.providers.values()
            }
        return h
