"""Events published while a process's bus connection is down are not lost to its readers: on the
reconnect the bus tells every subscription to re-read the store, so IMAP IDLE reports the new
message and a JMAP EventSource sends a StateChange without any later event. And IDLE re-reads its
mailbox every ``imap_idle_check_interval`` seconds, for a change whose event never reached it.

The reading process (``--only imap,gateway``) signs in to PostgreSQL / Redis as a user of its own,
so the test can cut its bus connection (pg_terminate_backend / CLIENT KILL) and keep it from
reconnecting (NOLOGIN / ACL off) while an SMTP process delivers, then let it back."""

from __future__ import annotations

import asyncio
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "ops"))
from cluster import PASSWORD, Cluster, Proc, mail, reset_postgres, send

from suite.testing import POSTGRES_ADMIN_DSN, free_port, missing, port_open, wait_until

ALICE = "alice@example.test"
FAR = 3600  # an idle check interval that never fires within a test


class Idle:
    """A raw IMAP client in IDLE on INBOX (imaplib has no IDLE before Python 3.14)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self._line()  # greeting
        self._command(b'a LOGIN %s "%s"' % (ALICE.encode(), PASSWORD.encode()))
        self.exists = int(self._command(b"b SELECT INBOX").split(b" EXISTS")[0].rsplit(b"* ", 1)[1])
        self.sock.sendall(b"c IDLE\r\n")
        assert self._line().startswith(b"+")

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _command(self, cmd: bytes) -> bytes:
        tag = cmd.split(b" ", 1)[0]
        self.sock.sendall(cmd + b"\r\n")
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if line.startswith(tag + b" "):
                assert line.startswith(tag + b" OK"), lines
                return b"\r\n".join(lines)

    def wait_exists(self, timeout: float) -> int:
        """The count of the next untagged EXISTS (RFC 9051 §7.4.1) heard in IDLE."""
        self.sock.settimeout(timeout)
        while True:
            line = self._line()
            if line.endswith(b" EXISTS"):
                return int(line.split()[1])

    def close(self) -> None:
        with self.sock:
            self.sock.sendall(b"DONE\r\n")


class EventSource:
    """A JMAP EventSource (RFC 8620 §7.3) read in a thread: its StateChange events, in order."""

    def __init__(self, port: int) -> None:
        self.events: queue.Queue[str] = queue.Queue()
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", auth=(ALICE, PASSWORD), timeout=60)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            with self.client.stream("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0") as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.put(line[6:])
                    elif r.status_code != 200:
                        self.events.put(f"HTTP {r.status_code}: {line}")
        except httpx.HTTPError as exc:  # closed by close(), or the server went away: next() times out
            self.events.put(f"stream ended: {exc!r}")

    def next(self, timeout: float) -> str:
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        self.client.close()


class PostgresCut:
    """The reader's LISTEN connection cut, and its reconnects refused, through a role of its own."""

    def __init__(self, pg_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.role = f"suite_reader_{secrets.token_hex(4)}"
        self._admin(f'CREATE ROLE "{self.role}" LOGIN SUPERUSER')  # the tables' owner is the admin
        self.settings = {"database_url": pg_url, "bus_backend": "postgres"}
        reader_url = make_url(pg_url).set(username=self.role, password=None)
        self.reader_settings = {"database_url": reader_url.render_as_string(hide_password=False)}

    @staticmethod
    def _admin(sql: str, *args: object) -> list:
        import asyncpg

        async def run() -> list:
            conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
            try:
                return await conn.fetch(sql, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def cut(self) -> None:
        self._admin(f'ALTER ROLE "{self.role}" NOLOGIN')
        rows = self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND query ILIKE 'LISTEN%'",
            self.role,
        )
        assert [tuple(r) for r in rows] == [(True,)], rows  # the one LISTEN connection of the reader

    def restore(self) -> None:
        self._admin(f'ALTER ROLE "{self.role}" LOGIN')

    def close(self) -> None:
        self._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", self.role)
        self._admin(f'DROP ROLE IF EXISTS "{self.role}"')


class RedisCut:
    """A private redis-server (pub/sub channels are server-wide: other tests' events must not wake
    ours); the reader signs in as an ACL user whose connections are killed and whose sign-in is off."""

    def __init__(self, pg_url: str) -> None:
        if shutil.which("redis-server") is None:
            missing("redis-server (Debian redis-server) not installed")
        self.dir = tempfile.mkdtemp(prefix="suite-redis-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout=20, what="redis-server up")
        self._cli("ACL", "SETUSER", "reader", "on", ">reader-secret", "~*", "&*", "+@all")
        url = f"redis://127.0.0.1:{self.port}/0"
        self.settings = {"database_url": pg_url, "bus_backend": "redis", "redis_url": url}
        self.reader_settings = {"redis_url": f"redis://reader:reader-secret@127.0.0.1:{self.port}/0"}

    def _cli(self, *args: str) -> str:
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.port)
        try:
            return str(r.execute_command(*args))
        finally:
            r.close()

    def cut(self) -> None:
        self._cli("ACL", "SETUSER", "reader", "off")
        assert int(self._cli("CLIENT", "KILL", "USER", "reader")) >= 1

    def restore(self) -> None:
        self._cli("ACL", "SETUSER", "reader", "on")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(params=["postgres", "redis"])
def bus_cut(request, pg_url) -> Iterator[PostgresCut | RedisCut]:
    reset_postgres(pg_url)
    cut = PostgresCut(pg_url) if request.param == "postgres" else RedisCut(pg_url)
    yield cut
    cut.close()


def _topology(tmp_path: Path, cut: PostgresCut | RedisCut) -> tuple[Cluster, Proc, Proc]:
    c = Cluster.make(tmp_path, **cut.settings)
    c.bootstrap(users=("alice",))
    smtp = c.serve("smtp", "smtp")
    reader = c.serve("reader", "imap,gateway", imap_idle_check_interval=str(FAR), **cut.reader_settings)
    return c, smtp, reader


def _when_cut(cut: PostgresCut | RedisCut, smtp: Proc, then: Callable[[], None]) -> None:
    """Cut the reader's bus, deliver one message (acknowledged: committed, its event published to a
    bus the reader cannot hear), then let the reader reconnect; ``then`` checks what it reports."""
    cut.cut()
    try:
        send(smtp.ports["smtp_port"], [ALICE], mail("while the bus was down"))
    finally:
        cut.restore()
    then()


def test_idle_and_eventsource_hear_a_delivery_made_while_the_bus_was_down(tmp_path, bus_cut):
    c, smtp, reader = _topology(tmp_path, bus_cut)
    idle = es = None
    try:
        send(smtp.ports["smtp_port"], [ALICE], mail("before"))  # the bus carries events: IDLE hears this one
        idle = Idle(reader.ports["imap_port"])
        assert idle.exists == 1
        es = EventSource(reader.ports["http_port"])
        first = es.next(timeout=20)  # the states when the stream began

        def reported() -> None:
            assert idle is not None and es is not None
            assert idle.wait_exists(timeout=30) == 2  # no other event comes: the resync reported it
            changed = es.next(timeout=30)
            assert changed != first and '"Email"' in changed

        _when_cut(bus_cut, smtp, reported)
        assert "bus.resync" in reader.output()
    finally:
        if idle is not None:
            idle.close()
        if es is not None:
            es.close()
        assert not c.stop_all()


def test_idle_check_interval_reports_a_change_whose_event_never_came(tmp_path):
    """Two processes on SQLite with in-process buses: the SMTP process's events never reach the IMAP
    process, whose IDLE finds the delivery by its periodic re-check."""
    c = Cluster.make(tmp_path, bus_backend="memory")
    c.bootstrap(users=("alice",))
    smtp = c.serve("smtp", "smtp")
    imap = c.serve("imap", "imap", imap_idle_check_interval="1")
    idle = None
    try:
        idle = Idle(imap.ports["imap_port"])
        assert idle.exists == 0
        send(smtp.ports["smtp_port"], [ALICE], mail("no event for this one"))
        assert idle.wait_exists(timeout=30) == 1
    finally:
        if idle is not None:
            idle.close()
        assert not c.stop_all()
