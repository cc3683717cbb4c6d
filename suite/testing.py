"""Helpers for Suite's own tests (and anyone driving a Suite server from tests), like aiosmtpd.testing.

Every test that cannot run because something outside the repository is missing (a Debian tool, a
service, root) goes through :func:`missing`: it skips locally and *fails* under ``SUITE_REQUIRE_ALL=1``
(CI), so nothing is hidden there. Tests that wait for something poll with a deadline through
:func:`wait_until` / :func:`async_wait_until` instead of sleeping and hoping.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import secrets
import shutil
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

#: Fixtures that tests read (the mail corpus, …) live in the repository under tests/data/.
TEST_DATA = Path(os.environ.get("SUITE_TEST_DATA", Path(__file__).resolve().parents[1] / "tests" / "data"))
MAIL_CORPUS = TEST_DATA / "mail"

POSTGRES_ADMIN_DSN = os.environ.get("SUITE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

T = TypeVar("T")


def require_all() -> bool:
    """True in CI (``SUITE_REQUIRE_ALL=1``): nothing may be skipped."""
    return os.environ.get("SUITE_REQUIRE_ALL") == "1"


def missing(reason: str) -> NoReturn:
    """The one way a test gives up on a missing tool, service or fixture: skip locally; fail in CI."""
    if require_all():
        pytest.fail(f"required in CI but missing: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, package: str | None = None) -> str:
    """Path of an external program (Debian ``package``); :func:`missing` when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not installed (Debian package {package or name}; scripts/install-test-tools.sh)")
    return path


def mail_corpus() -> Path:
    """The Dovecot-recorded mail corpus (tests/data/mail); :func:`missing` when it is not there."""
    if not MAIL_CORPUS.is_dir() or not any(MAIL_CORPUS.glob("*.json")):
        missing(f"mail corpus not found at {MAIL_CORPUS}")
    return MAIL_CORPUS


def mail_corpus_names() -> list[str]:
    """Names (file stems) of the corpus messages; empty when the corpus is absent (see :func:`mail_corpus`)."""
    return sorted(p.stem for p in MAIL_CORPUS.glob("*.json")) if MAIL_CORPUS.is_dir() else []


#: Lowest port :func:`free_port` hands out (it hands out ports below the kernel's ephemeral range); the
#: test Ceph's fixed ports (13300, 16789, 17480-17483, scripts/ceph-*.sh) lie under it.
_PORT_FLOOR = 20000
_next_port: int | None = None


def _port_slice() -> tuple[int, int]:
    """This test process's share ``[lo, hi)`` of the ports between ``_PORT_FLOOR`` and the kernel's
    ephemeral range, one share per pytest-xdist worker so two workers never hand out the same port."""
    try:
        ceiling = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ceiling = 32768
    if ceiling - _PORT_FLOOR < 2000:  # an unusual ephemeral range: the kernel's own choice
        return 0, 0
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    index = int(worker) % count if worker.isdigit() else 0
    size = (ceiling - _PORT_FLOOR) // count
    return _PORT_FLOOR + index * size, _PORT_FLOOR + (index + 1) * size


def _bindable(host: str, port: int) -> bool:
    # no SO_REUSEADDR: a port with TIME_WAIT leftovers counts as taken too
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on, for a server a test starts (and may kill -9 and start again on
    the same port). Not the kernel's ``bind(0)``: that picks from the ephemeral range, which the
    kernel also gives to every outgoing connection, so by the time a killed server is restarted
    another test's client socket may sit on its port ("address already in use"). These ports lie
    below that range, each xdist worker has its own slice, and each process walks its slice from a
    random start, skipping ports in use."""
    global _next_port
    lo, hi = _port_slice()
    if hi - lo < 10:
        with socket.socket() as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
            return port
    if _next_port is None or not lo <= _next_port < hi:
        _next_port = lo + secrets.randbelow(hi - lo)
    for _ in range(hi - lo):
        port, _next_port = _next_port, lo + (_next_port + 1 - lo) % (hi - lo)
        if _bindable(host, port):
            return port
    raise RuntimeError(f"no free port in {lo}..{hi - 1}")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class WaitTimeout(AssertionError):
    """A condition polled by :func:`wait_until` did not become true before its deadline."""


def _timed_out(what: str, timeout: float, last: object) -> WaitTimeout:
    return WaitTimeout(f"{what} not true within {timeout:g}s (last value: {last!r})")


def wait_until(cond: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Poll ``cond()`` until it returns a truthy value (returned) or ``timeout`` seconds pass (raises
    :class:`WaitTimeout`, an AssertionError). The deadline only bounds a wait that should end by itself;
    tests never assert on how long it took."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what or getattr(cond, "__name__", "condition"), timeout, value)
        time.sleep(interval)


async def async_wait_until(
    cond: Callable[[], T | Awaitable[T]], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """:func:`wait_until` inside an event loop; ``cond`` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _timed_out(what or getattr(cond, "__name__", "condition"), timeout, value)
        await asyncio.sleep(interval)


def serve_env(**settings: str) -> dict[str, str]:
    """The environment of a `suite` subprocess: this one's without its SUITE_* settings, one worker
    (`suite serve` runs one per core by default; the tests of several workers ask for them), plus
    ``settings`` (``SUITE_…`` names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUITE_")}
    env["SUITE_WORKERS"] = "1"
    env.update(settings)
    return env


def socket_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` holds the server side of the loopback TCP connection between
    ``server_port`` and ``client_port`` (Linux /proc): a test sees which worker accepted it."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            next(fh)
            for row in fh:
                cols = row.split()
                local, remote, inode = cols[1], cols[2], cols[9]
                if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                    inodes.add(f"socket:[{inode}]")
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    if os.readlink(fd) in inodes:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None
