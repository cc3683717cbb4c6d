"""A small service for ``suite serve``: purges trash older than the retention and expired tus
uploads and collects unreferenced blobs, once at start and then every ``INTERVAL`` seconds (register as "files" in
``suite.service.REGISTRY``: ``"files": "suite.files.housekeeper:FilesHousekeeper"``)."""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from suite.files.service import Files
from suite.service import Service

log = structlog.get_logger("suite.files")
INTERVAL = 3600.0


class FilesHousekeeper(Service):
    name = "files"

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.files = Files(ctx)
        self._task: asyncio.Task | None = None

    async def run_once(self) -> dict[str, int]:
        done = await self.files.housekeeping()
        if any(done.values()):
            log.info("files.housekeeping", **done)
        return done

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("files.housekeeping_failed")
            await asyncio.sleep(INTERVAL)

    async def start(self) -> None:
        if self.ctx.settings.primary:  # once per installation, not once per worker
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
