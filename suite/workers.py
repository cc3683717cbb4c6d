"""``suite serve --workers N``: a supervisor and N worker processes that each run every service.

The workers listen on the same ports with SO_REUSEPORT (the kernel spreads new connections over
them); worker 0 starts first and binds the configured ports — 0 included — and the others are
started on the ports it reports. The supervisor binds nothing itself: it

- is the event bus broker: one socket pair per worker (``bus_backend = "socket"``,
  :class:`suite.storage.bus.SocketBus`); every line a worker writes goes to every worker, so IDLE,
  JMAP push, revocation and call signalling cross workers without Redis;
- restarts a worker that dies (logged as ``worker.died``), on the same ports and index; what the
  dead worker acknowledged was committed before the acknowledgement (the durability rule), and
  its clients reconnect to the others in the meantime;
- stops every worker on SIGTERM/SIGINT, and is their parent: a worker whose supervisor is gone is
  ended by the kernel (``PR_SET_PDEATHSIG``).

Worker 0 is the *primary* (``primary``, ``call_switch_owner``): it alone runs the once-per-
installation duties (JMAP push sender, files housekeeping, coturn, the call switch).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from suite.storage.bus import LINE_LIMIT, resolved_kind

log = structlog.get_logger("suite.workers")

PORTS_LINE = "worker-ports "  # a worker's report of its bound ports (read by the supervisor, not shown)
READY_LINE = "ready"
_PR_SET_PDEATHSIG = 1
#: A worker that dies sooner than this after its start waits before the next start (doubling).
_STABLE_SECONDS = 10.0
_MAX_BACKOFF = 10.0


def die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent (the supervisor) ends, however it ends."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the parent was gone before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def report_ports(ports: dict[str, int]) -> None:
    print(PORTS_LINE + json.dumps(ports, separators=(",", ":")), flush=True)


def worker_count(configured: int) -> int:
    return configured if configured > 0 else max(1, os.cpu_count() or 1)


class Broker:
    """The bus of the workers: lines in from any worker, out to every worker."""

    def __init__(self) -> None:
        self._writers: dict[int, asyncio.StreamWriter] = {}

    async def attach(self, index: int) -> socket.socket:
        """A socket pair for worker ``index``; returns the worker's end (to inherit)."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        reader, writer = await asyncio.open_unix_connection(sock=mine, limit=LINE_LIMIT)
        old = self._writers.pop(index, None)
        if old is not None:
            old.close()
        self._writers[index] = writer
        asyncio.get_running_loop().create_task(self._pump(index, reader, writer))
        return theirs

    async def _pump(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            except ConnectionError:
                line = b""
            if not line:
                break
            for w in list(self._writers.values()):
                # a worker that does not read (stuck, or dying) must not hold the others up: its
                # events are dropped past 16 MiB buffered (an event is a hint; sessions re-read state)
                if not w.is_closing() and w.transport.get_write_buffer_size() < 16 * 1024**2:
                    w.write(line)
        if self._writers.get(index) is writer:
            del self._writers[index]
        writer.close()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()
        self._writers.clear()


@dataclass
class Worker:
    index: int
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    backoff: float = 0.5
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ports: dict[str, int] = field(default_factory=dict)


class Supervisor:
    def __init__(self, settings, n: int, only: str | None) -> None:
        self.settings = settings
        self.n = n
        self.only = only
        self.broker = Broker()
        self.workers = [Worker(i) for i in range(n)]
        self.ports: dict[str, int] = {}
        self.stopping = False
        self._tasks: set[asyncio.Task] = set()
        # private (0700) and short: a Unix socket path must fit 108 bytes
        self.rundir = Path(tempfile.mkdtemp(prefix="suite-workers-"))

    def _env(self, index: int, fd: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SUITE_WORKERS="1", SUITE_REUSE_PORT="true")
        if resolved_kind(self.settings) == "memory":  # networked buses already cross processes
            env.update(SUITE_BUS_BACKEND="socket", SUITE_BUS_FD=str(fd))
        if index > 0:
            env.update(SUITE_PRIMARY="false", SUITE_CALL_SWITCH_OWNER="false")
        env.update({f"SUITE_{k.upper()}": str(v) for k, v in self.ports.items()})
        env["SUITE_PRIMARY_SOCKET"] = str(self.rundir / "gateway.sock")
        return env

    async def _spawn(self, w: Worker) -> None:
        theirs = await self.broker.attach(w.index)
        args = [sys.executable, "-m", "suite.cli", "serve", "--worker-index", str(w.index)]
        if self.only:
            args += ["--only", self.only]
        try:
            w.proc = await asyncio.create_subprocess_exec(
                *args,
                env=self._env(w.index, theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=(theirs.fileno(),),
                limit=LINE_LIMIT,
                # Ctrl-C at a terminal reaches the supervisor only, which stops the workers in order
                # (a worker stopping on its own signal would race its restart)
                start_new_session=True,
            )
        finally:
            theirs.close()
        w.started = time.monotonic()
        w.ready.clear()
        task = asyncio.get_running_loop().create_task(self._watch(w, w.proc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, w: Worker, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                continue
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(PORTS_LINE):
                w.ports = json.loads(line[len(PORTS_LINE) :])
            elif line.startswith(READY_LINE):
                w.ready.set()
            elif line not in ("stopping", "stopped"):
                print(line, flush=True)
        code = await proc.wait()
        if self.stopping:
            return
        alive = time.monotonic() - w.started
        log.warning("worker.died", worker=w.index, pid=proc.pid, exit=code, after_seconds=round(alive, 1))
        if not w.ready.is_set() and not self.ports:
            return  # worker 0 did not come up: start() reports it
        if alive > _STABLE_SECONDS:
            w.backoff = 0.5
        await asyncio.sleep(w.backoff)
        w.backoff = min(w.backoff * 2, _MAX_BACKOFF)
        if not self.stopping:
            await self._spawn(w)
            with contextlib.suppress(RuntimeError):  # died again: its own watcher restarts it
                await self._wait_ready(w)
                log.info("worker.restarted", worker=w.index, pid=w.proc.pid if w.proc else None)

    async def _wait_ready(self, w: Worker, timeout: float = 120) -> None:
        assert w.proc is not None
        proc = w.proc
        ready = asyncio.ensure_future(w.ready.wait())
        died = asyncio.ensure_future(proc.wait())
        try:
            await asyncio.wait({ready, died}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (ready, died):
                f.cancel()
        if not w.ready.is_set():
            raise RuntimeError(f"worker {w.index} did not start (exit {proc.returncode})")

    async def start(self) -> None:
        first = self.workers[0]
        await self._spawn(first)
        await self._wait_ready(first)
        self.ports = dict(first.ports)  # the others listen where the first one does
        for w in self.workers[1:]:
            await self._spawn(w)
        for w in self.workers[1:]:
            await self._wait_ready(w)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w.proc is not None]

    async def stop(self) -> None:
        self.stopping = True
        procs = [w.proc for w in self.workers if w.proc is not None and w.proc.returncode is None]
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), timeout=40)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                await p.wait()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(t, timeout=5)
        self.broker.close()
        shutil.rmtree(self.rundir, ignore_errors=True)
