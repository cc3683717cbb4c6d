"""Provider changes applied in a running process, without a restart.

The ``[[storage.providers]]`` list (and ``replicas``, ``exclude_zones``, ``migrate_from``) lives in the
configuration file. Every ``suite serve`` process on the storage network runs one ``ProviderReloader``
that re-reads the settings and applies them to ``ctx.network`` (``NetworkBackend.apply``) when

- the file changed (its mtime and size, looked at every ``POLL`` seconds: an edit by hand or by
  ``suite storage provider add|drain|remove``),
- a ``ProvidersChanged`` event arrives on the bus (published by the CLI after it edits the file:
  with the PostgreSQL or Redis bus every process re-reads at once), or
- the process gets SIGHUP.

Each process reads its own file: on several hosts the file is the cluster's configuration and is
the same everywhere (deployed together). Until every process has applied a change, processes may
disagree about placement for a moment; reads follow the recorded locations and the repair loop
converges, so nothing is lost either way. A file that does not parse, or has no provider, is
logged and ignored: the running list stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

import structlog

from suite.config import Settings, _toml_path
from suite.context import Context
from suite.storage.events import ProvidersChanged

log = structlog.get_logger("suite.storage.reload")
POLL = 2.0  # seconds between looks at the configuration file


def _stamp(path: Path | None) -> tuple[float, int] | None:
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_mtime, st.st_size) if st is not None else None


class ProviderReloader:
    def __init__(self, ctx: Context, load: Callable[[], Settings] = Settings, path: Path | None = None) -> None:
        self.ctx = ctx
        self.load = load
        self.path = path if path is not None else _toml_path()
        self._stamp = _stamp(self.path)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._signal = False
        self.applied = 0  # reloads that changed something (health / tests)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signal.SIGHUP, self._wake.set)
            self._signal = True
        self._task = loop.create_task(self._run())

    async def stop(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def _run(self) -> None:
        with self.ctx.bus.subscribe(ProvidersChanged) as sub:
            events = asyncio.ensure_future(sub.get())
            try:
                while True:
                    woken = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({events, woken}, timeout=POLL, return_when=asyncio.FIRST_COMPLETED)
                    asked = woken.done() or events.done()
                    woken.cancel()
                    if events.done():
                        events = asyncio.ensure_future(sub.get())
                    self._wake.clear()
                    stamp = _stamp(self.path)
                    if asked or stamp != self._stamp:
                        self._stamp = stamp
                        self.reload()
            finally:
                events.cancel()

    def reload(self) -> list[str]:
        """Re-read the settings and apply the storage part; returns what changed."""
        net = self.ctx.network
        if net is None:
            return []
        try:
            new = self.load()
            changes = net.apply(new)
        except Exception as exc:  # a half-edited file: keep what runs
            log.error("storage.reload_failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
            return []
        if changes:
            self.ctx.settings = self.ctx.settings.model_copy(update={"storage": new.storage})
            self.applied += 1
            log.info("storage.providers_reloaded", changes=changes)
        return changes
